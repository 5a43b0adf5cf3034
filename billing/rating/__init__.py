"""The rating engine (SPEC §6 steps 1-4 and 7): hourly usage → rated charges per period.

- ``periods``: billing periods from a contract's billing day.
- ``usage``: usage per product and hour, set-based over ``metering.HourlyRollup``.
- ``pricing``: the price models (per unit, graduated, volume, package) as pure functions.
- ``engine``: ``compute_period`` — a period's charges as of a moment, computed and not saved,
  so an invoiced period can be re-rated and diffed (SPEC §6 step 5).
- ``batch``: ``RatingBatch``, what the periods of one ``billing.rate_periods`` batch share
  (rate cards and prices, contracts, usage), read once per batch (``engine.batch_prepare``).
- ``credits``: the drawdown ledger.
- ``due``: which periods need rating (read-only).
- ``triggers``: the hook metering calls when rollups change; it asks for a rating run.

Writes go through ``billing.services``; tasks in ``billing.tasks``.
"""
