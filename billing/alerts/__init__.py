"""Spend and usage alerts (SPEC §5): thresholds per org, evaluated after every rating, fired
once per threshold and period, shown in the portal, emailed, and sent as ``alert.triggered``.

- ``models``: ``Alert`` (what to watch) and ``AlertFiring`` (it crossed, once per period).
- ``evaluation``: the value each kind watches, from rated results only.
- ``services``: writes (set alerts, evaluate, fire); ``tasks``: email and beat's backstop.
"""
