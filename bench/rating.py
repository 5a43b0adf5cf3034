"""Rating benchmark (SPEC §9): a month of hourly usage for 1,000 orgs × 5 products, rated.

    .venv/bin/python bench/rating.py [--orgs 1000] [--hours 720] [--workers 1]
                                     [--celery] [--database NAME] [--sqlite] [--profile]
                                     [--tiny]

Works in a scratch PostgreSQL database of its own (``--database NAME`` to keep one), or a
fresh SQLite file with ``--sqlite``: a catalog of 5 products (per unit, volume, graduated,
package, and one reserved with a ramp and a burst price), one contract per org, and the
hourly rollups, written directly with COPY (PostgreSQL) or bulk inserts (SQLite) — the rating
reads rollups, never events. Then it rates every org's period once, in this process, as a
worker does (``--workers N``: N forked processes, sharded by org): it opens the periods, then
rates them in batches of ``TESSERA_RATING_BATCH`` (``billing.services.periods_rate``, what
``billing.rate_periods`` runs), and prints the time and the peak memory. The baseline,
measured in the same run, is reading every one of those rollups into Python: the floor under
any rating of them.

``--celery`` (PostgreSQL only) rates through real Celery workers instead, as production does:
it starts ``--workers`` ``celery -A config worker`` processes (prefork, one pool process each)
on the scratch database and the Redis database ``TESSERA_BENCH_BROKER`` (default
``redis://127.0.0.1:6379/10``) under a key prefix of the run's own, opens the orgs' periods
(what ``billing.rate_due`` does first), enqueues the periods as ``rate_due`` does: in batches
of ``TESSERA_RATING_BATCH`` periods (default 50) in org order, one ``billing.rate_periods``
task each (a batch reads what its periods share once, then rates each period in its own
transaction), polls the database until every period is rated, and prints the wall time (from
opening the periods to the last one rated) and the peak RSS of each worker's pool process
(``VmHWM``). The workers get a warm shutdown at the end.

Every run prints a checksum of the rated charges (count and sum of amounts per kind), to
compare two versions of the engine on the same seed: they must agree to the cent.
``--profile`` (in-process, one worker) also prints where the rating spends its time
(pyinstrument).
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    BROKER,
    CeleryWorkers,
    add_common_arguments,
    parse,
    production_settings,
    scratch_database,
    versus,
    wait_for,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
PRODUCTS = [
    # (key, meter, filter, unit_size)
    ("h100", "gpu_time", {"gpu_model": "H100", "region": "eu-north"}, 3600),
    ("a100", "gpu_time", {"gpu_model": "A100", "region": "eu-north"}, 3600),
    ("l40s", "gpu_time", {"gpu_model": "L40S", "region": "eu-north"}, 3600),
    ("llama-in", "llm_input", {"model": "llama"}, 1_000_000),
    ("llama-out", "llm_output", {"model": "llama"}, 1_000_000),
]


def catalog(orgs: int) -> dict:
    return {
        "issuers": [{"key": "bench", "legal_name": "Bench SAS", "country": "FR",
                     "invoice_prefix": "BEN"}],
        "meters": [
            {"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
             "aggregation": "sum", "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"}},
            {"key": "llm_input", "event_type": "llm.tokens", "value": "$.input_tokens",
             "aggregation": "sum", "group_by": {"model": "$.model"}},
            {"key": "llm_output", "event_type": "llm.tokens", "value": "$.output_tokens",
             "aggregation": "sum", "group_by": {"model": "$.model"}},
        ],
        "products": [
            {"key": k, "name": k, "meter": m, "filter": f, "unit": "u", "unit_size": s}
            for k, m, f, s in PRODUCTS
        ],
        "rate_cards": [{"key": "list", "currency": "USD", "effective_from": "2026-01-01",
                        "prices": [
            {"product": "h100", "model": "per_unit", "unit_price": "2.50"},
            {"product": "a100", "model": "volume", "tiers": [
                {"up_to": 500, "unit_price": "1.60"}, {"up_to": None, "unit_price": "1.40"}]},
            {"product": "l40s", "model": "per_unit", "unit_price": "0.90"},
            {"product": "llama-in", "model": "graduated", "tiers": [
                {"up_to": 100, "unit_price": "0.90"}, {"up_to": None, "unit_price": "0.70"}]},
            {"product": "llama-out", "model": "package", "package_size": 10,
             "unit_price": "9.00"},
        ]}],
        "orgs": [{"slug": f"bench-{i:05d}", "name": f"Bench {i}", "country": "FR",
                  "currency": "USD"} for i in range(orgs)],
        "contracts": [
            {"key": f"bench-{i:05d}", "org": f"bench-{i:05d}", "issuer": "bench",
             "rate_card": "list", "start": "2026-11-01", "discounts": [{"percent": "5"}],
             "reservations": [{"product": "h100", "quantity": 4, "unit_price": "2.00",
                               "end": "2027-11-01", "burst_unit_price": "2.60",
                               "ramp": [{"from": "2026-11-16", "quantity": 6}]}],
             "spend_commitments": [{"amount": "8000.00", "per": "period"}],
             "credits": [{"key": "welcome", "amount": "100.00", "expires": "2026-12-01"}]}
            for i in range(orgs)
        ],
    }  # fmt: skip


def rollup_rows(
    org_ids: list[int], meters: dict[str, int], hours: int
) -> Iterator[tuple[int, int, datetime, dict[str, str], str, Decimal]]:
    """Deterministic usage: GPUs busy vary by org and hour (bursting above the reservation)."""
    from metering.rollups import dims_key

    for org_id in org_ids:
        for h in range(hours):
            hour = START + timedelta(hours=h)
            busy = (org_id * 7 + h) % 9
            values = [
                ("gpu_time", {"gpu_model": "H100", "region": "eu-north"}, busy * 3600),
                ("gpu_time", {"gpu_model": "A100", "region": "eu-north"}, (h % 3) * 3600),
                ("gpu_time", {"gpu_model": "L40S", "region": "eu-north"}, 1800 + org_id % 60),
                ("llm_input", {"model": "llama"}, 250_000 + (org_id * h) % 100_000),
                ("llm_output", {"model": "llama"}, 40_000 + h * 11),
            ]
            for meter, dims, value in values:
                key = dims_key(dims)
                yield org_id, meters[meter], hour, dims, key, Decimal(value)


def write_rollups(org_ids: list[int], hours: int) -> int:
    from django.db import connection

    from metering.models import HourlyRollup, Meter

    meters = dict(Meter.objects.values_list("key", "pk"))
    now = datetime.now(UTC)
    count = 0
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                "COPY metering_hourlyrollup (org_id, meter_id, hour, dimensions, dims_key, value, "
                "event_count, latest_tiebreak, updated_at) FROM STDIN"
            ) as copy,
        ):
            for org_id, meter_id, hour, dims, key, value in rollup_rows(org_ids, meters, hours):
                copy.write_row((org_id, meter_id, hour, json.dumps(dims), key, value, 60, "", now))
                count += 1
        return count
    batch = []
    for org_id, meter_id, hour, dims, key, value in rollup_rows(org_ids, meters, hours):
        batch.append(HourlyRollup(org_id=org_id, meter_id=meter_id, hour=hour, dimensions=dims,
                                  dims_key=key, value=value, event_count=60))  # fmt: skip
        if len(batch) == 5000:
            HourlyRollup.objects.bulk_create(batch)
            count += len(batch)
            batch = []
    HourlyRollup.objects.bulk_create(batch)
    return count + len(batch)


def read_rollups(org_ids: list[int]) -> tuple[int, float]:
    """The baseline: every rollup of these orgs read into Python, org by org as rating reads
    them. Returns (rows, seconds)."""
    from metering.models import HourlyRollup

    started = time.perf_counter()
    rows = 0
    for org_id in org_ids:
        rows += len(
            list(HourlyRollup.objects.filter(org_id=org_id).values_list("meter_id", "hour",
                                                                          "dimensions", "value"))
        )  # fmt: skip
    return rows, time.perf_counter() - started


def rate_shard(job: tuple, progress: bool = False) -> tuple[float, int]:
    """Rate these orgs as a worker does: open their periods, then rate them in batches of
    ``TESSERA_RATING_BATCH`` (``periods_rate``, what ``billing.rate_periods`` runs); return
    (peak RSS in MiB, peak traced Python heap in bytes)."""
    from django.conf import settings

    from billing.models import BillingPeriod, Contract
    from billing.rating.due import in_batches
    from billing.rating.periods import periods_ensure
    from billing.services import periods_rate

    org_ids, as_of, trace, profile = job
    if trace:
        tracemalloc.start()
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    t0 = time.perf_counter()
    for contract in Contract.objects.filter(org_id__in=org_ids).order_by("org_id", "start"):
        periods_ensure(contract=contract, through=as_of)
    due = list(
        BillingPeriod.objects.filter(org_id__in=org_ids, start__lt=as_of)
        .order_by("org_id", "start")
        .values_list("pk", "org_id")
    )
    rated = 0
    for batch in in_batches(due, settings.TESSERA_RATING_BATCH):
        outcomes = periods_rate(period_ids=batch, as_of=as_of)
        if not all(outcomes.values()):
            raise RuntimeError("a period failed to rate (quarantined)")
        rated += len(outcomes)
        if progress and rated % 100 < len(batch):
            print(f"  rated {rated}/{len(due)} periods, {time.perf_counter() - t0:.1f} s")
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
        flat = profiler.output_text(unicode=False, color=False, flat=True, show_all=True)
        print("\n".join(flat.splitlines()[:60]))  # the heaviest functions by their own time
    heap = tracemalloc.get_traced_memory()[1] if trace else 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, heap


def checksum(org_ids: list[int]) -> str:
    """The rated charges of these orgs as one line: count and sum of amounts per kind, and the
    periods' subtotals and forecasts. Two versions of the engine rate alike when it agrees."""
    from django.db.models import Count, Sum

    from billing.models import BillingPeriod, RatedCharge, ReservationUsage

    kinds = (
        RatedCharge.objects.filter(org_id__in=org_ids)
        .values("kind")
        .annotate(n=Count("pk"), total=Sum("amount"))
        .order_by("kind")
    )
    periods = BillingPeriod.objects.filter(org_id__in=org_ids).aggregate(
        subtotal=Sum("subtotal"), forecast=Sum("forecast")
    )
    parts = [f"{row['kind']} {row['n']} {row['total']}" for row in kinds]
    parts.append(f"subtotals {periods['subtotal']}, forecasts {periods['forecast']}")
    # And every field of every row, descriptions and hourly netting included.
    digest = hashlib.sha256()
    rows = RatedCharge.objects.filter(org_id__in=org_ids).order_by(
        "org_id", "period__start", "product__key", "kind", "line"
    )
    fields = ("org_id", "product__key", "kind", "line", "quantity", "unit_price",
              "list_unit_price", "amount", "description")  # fmt: skip
    for row in rows.values_list(*fields):
        digest.update(repr(row).encode())
    usage = ReservationUsage.objects.filter(org_id__in=org_ids).order_by("org_id", "reservation_id")
    for row in usage.values_list("org_id", "reserved", "used", "covered", "burst", "hours"):
        digest.update(repr(row).encode())
    parts.append(f"rows sha256 {digest.hexdigest()[:16]}")
    return "checksum: " + "; ".join(parts)


def target(*, orgs: int, hours: int, workers: int, elapsed: float) -> str:
    """SPEC §9's rating targets, as this run measures them: a month of hourly usage for 1,000
    orgs × 5 products in under 30 s on one worker; 10,000 orgs in under 5 minutes on two."""
    if hours < 720 or orgs < 1000:
        return "target (SPEC §9): not measured at this size (a full month, 1,000 orgs or more)"
    if workers == 1:
        limit, words = 30 * orgs / 1000, "under 30 s per 1,000 orgs on one worker"
    else:
        limit, words = 300 * orgs / 10_000, "under 5 min per 10,000 orgs on two workers"
    return f"target (SPEC §9): {words} — {'met' if elapsed < limit else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=720, help="At most 720 (November).")
    parser.add_argument("--workers", type=int, default=1, help="Processes, sharded by org.")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="Also trace the Python heap (about 3× slower)."
    )
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="In-process, one worker: pyinstrument's profile."
    )
    parser.add_argument(
        "--celery", action="store_true",
        help="Rate through --workers real Celery worker processes (enqueue, then wait).",
    )  # fmt: skip
    parser.add_argument(
        "--deadline", type=float, default=3600.0,
        help="--celery: seconds to wait for every period to be rated before giving up.",
    )  # fmt: skip
    add_common_arguments(parser, kind="rating")
    args = parse(parser, tiny={"orgs": 5, "hours": 48})
    if args.celery and (args.sqlite or args.tracemalloc or args.profile):
        parser.error("--celery runs on PostgreSQL, without --tracemalloc or --profile")
    if args.profile and args.workers > 1:
        parser.error("--profile profiles one in-process worker")
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="tessera-bench-") as var:
            run(args, f"sqlite:///{var}/bench.sqlite3")
    else:
        with scratch_database("rating", args.database) as url:
            run(args, url)


def run(args: argparse.Namespace, database_url: str) -> None:
    production_settings(DATABASE_URL=database_url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from billing.catalog import load_catalog
    from billing.models import RatedCharge
    from tenancy.models import Org

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    load_catalog(catalog(args.orgs))
    orgs = list(Org.objects.filter(slug__startswith="bench-").order_by("pk")[: args.orgs])
    ids = [o.pk for o in orgs]
    rows = write_rollups(ids, args.hours)
    print(f"setup: {len(orgs)} orgs, {rows:,} hourly rollups in {time.perf_counter() - t0:.1f} s")
    read, baseline = read_rollups(ids)
    assert read == rows, (read, rows)

    as_of = START + timedelta(hours=args.hours)
    if args.celery:
        rate_with_celery(args, database_url, ids, as_of, rows=rows, baseline=baseline)
        return
    t0 = time.perf_counter()
    if args.workers > 1:
        # Like Celery workers sharded by org: each process rates its share, own connection.
        connection.close()
        shards = [
            (ids[i :: args.workers], as_of, args.tracemalloc, False) for i in range(args.workers)
        ]
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            results = pool.map(rate_shard, shards)
    else:
        results = [rate_shard((ids, as_of, args.tracemalloc, args.profile), progress=True)]
    elapsed = time.perf_counter() - t0
    rss = max(r[0] for r in results)
    heap = max(r[1] for r in results)
    charges = RatedCharge.objects.filter(org__in=orgs).count()
    summary = checksum(ids)
    connection.close()
    print(f"baseline, reading the {rows:,} rollups org by org: {baseline:.2f} s")
    print(
        f"rating: {len(orgs)} orgs × {len(PRODUCTS)} products × {args.hours} h "
        f"= {len(orgs) * len(PRODUCTS) * args.hours:,} product-hours in {elapsed:.1f} s "
        f"= {versus(elapsed, baseline)} "
        f"({len(orgs) / elapsed:.0f} orgs/s, {args.workers} worker(s)); {charges:,} charges"
    )
    traced = f", Python heap {heap / 2**20:.1f} MiB (tracemalloc)" if args.tracemalloc else ""
    print(f"peak memory per worker: RSS {rss:.0f} MiB{traced}")
    print(summary)
    print(target(orgs=args.orgs, hours=args.hours, workers=args.workers, elapsed=elapsed))


def rate_with_celery(
    args: argparse.Namespace,
    database_url: str,
    ids: list[int],
    as_of: datetime,
    *,
    rows: int,
    baseline: float,
) -> None:
    """Rate every org's period through ``args.workers`` real Celery workers (see the module
    docstring) and print the figures."""
    from django.conf import settings
    from django.db import connection

    from billing.models import BillingPeriod, Contract, RatedCharge
    from billing.rating.due import in_batches
    from billing.rating.periods import periods_ensure
    from metering.models import QuarantinedWork

    connection.close()  # the workers connect on their own; this process polls afresh
    prefix = f"tessera-bench-rating-{os.getpid()}:"
    with CeleryWorkers(
        args.workers, database_url=database_url, broker=BROKER, prefix=prefix
    ) as workers:
        # Started while nothing is queued, as production's are: startup is not rating time.
        print(f"broker: {BROKER}, keys under {prefix}")
        wait_for(workers.ready, timeout=120, what="Celery workers starting")
        sender = workers.sender()
        t0 = time.perf_counter()
        # What billing.rate_due does before it fans out: give every contract its periods.
        for contract in Contract.objects.filter(org_id__in=ids):
            periods_ensure(contract=contract, through=as_of)
        # Then, as it does, the periods in batches of TESSERA_RATING_BATCH in org order (an
        # org's periods together), one billing.rate_periods task each.
        due = list(
            BillingPeriod.objects.filter(org_id__in=ids, start__lt=as_of)
            .order_by("org_id", "start")
            .values_list("pk", "org_id")
        )
        periods = [pk for pk, _ in due]
        batches = in_batches(due, settings.TESSERA_RATING_BATCH)
        for batch in batches:
            sender.send_task("billing.rate_periods", args=(batch, as_of.isoformat()))
        enqueued = time.perf_counter() - t0
        print(
            f"  enqueued {len(periods):,} periods in {len(batches):,} billing.rate_periods "
            f"tasks (batches of {settings.TESSERA_RATING_BATCH}) in {enqueued:.1f} s"
        )
        last_report = [time.perf_counter()]

        def all_rated() -> bool:
            # Cheap queries, as the poll shares the CPUs with the workers: the scratch
            # database holds this run's periods and nothing else.
            if not workers.alive():
                raise RuntimeError("a Celery worker exited while rating")
            if QuarantinedWork.objects.filter(kind=QuarantinedWork.Kind.RATING).exists():
                raise RuntimeError("a period failed to rate (quarantined)")
            left = BillingPeriod.objects.filter(start__lt=as_of, rated_at__isnull=True).count()
            if time.perf_counter() - last_report[0] >= 10:
                last_report[0] = time.perf_counter()
                done = len(periods) - left
                print(f"  rated {done:,}/{len(periods):,} periods, {last_report[0] - t0:.1f} s")
            return left == 0

        wait_for(all_rated, timeout=args.deadline, what="rating through Celery", interval=0.5)
        elapsed = time.perf_counter() - t0
        peaks = workers.peak_rss()
        sender.close()
    charges = RatedCharge.objects.filter(org_id__in=ids).count()
    summary = checksum(ids)
    load = os.getloadavg()
    connection.close()
    print(f"baseline, reading the {rows:,} rollups org by org: {baseline:.2f} s")
    print(
        f"rating through Celery: {len(ids)} orgs × {len(PRODUCTS)} products × {args.hours} h "
        f"= {len(ids) * len(PRODUCTS) * args.hours:,} product-hours in {elapsed:.1f} s "
        f"= {versus(elapsed, baseline)} "
        f"({len(ids) / elapsed:.1f} orgs/s, {args.workers} worker(s)); {charges:,} charges"
    )
    for i, (main_rss, pool_rss) in enumerate(peaks):
        pools = ", ".join(f"{rss:.0f}" for rss in pool_rss)
        print(f"peak RSS, worker {i}: pool process {pools} MiB (main process {main_rss:.0f} MiB)")
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(summary)
    print(target(orgs=args.orgs, hours=args.hours, workers=args.workers, elapsed=elapsed))


if __name__ == "__main__":
    main()
