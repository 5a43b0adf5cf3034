"""The deal desk (SPEC §3 "Deal", "Capacity pool").

- ``models``: deals, their lines and their append-only audit trail.
- ``schedule``: quantities over time (lines with ramps, reservations, pools) as step functions.
- ``economics``: total contract value, list value, discount, monthly commitment.
- ``capacity``: capacity pools less reservations, per month; a deal's fit.
- ``simulation``: the org's real past usage priced on its current contract and under the deal.
- ``services``: the writes (create, update, submit, approve, reject, sign).
- ``selectors``: what each caller may see.
"""
