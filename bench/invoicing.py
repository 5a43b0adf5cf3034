"""Invoice run: N orgs' rated periods closed into drafts, then finalized (SPEC §9: 10,000 in
under 30 seconds).

    .venv/bin/python bench/invoicing.py [--orgs 10000] [--charges 5] [--database NAME]
                                        [--sqlite] [--profile] [--tiny]

Works in a scratch PostgreSQL database of its own (``--database NAME`` to keep one), or a
fresh SQLite file with ``--sqlite``. Rated periods are written directly, as the rating engine
leaves them. Prints the time of each step, invoices per second, and peak memory (RSS). The
baseline, measured in the same run, is the bulk insert of the rated charges while seeding:
the same number of rows as the invoice lines the run writes, with none of the logic.
``--profile`` also prints where the close and the finalization spend their time (pyinstrument;
the run is then slower).
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    add_common_arguments,
    parse,
    production_settings,
    scratch_database,
    versus,
)  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def database(sqlite: bool, name: str | None) -> Iterator[str]:
    if not sqlite:
        with scratch_database("invoicing", name) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as var:
        os.environ["TESSERA_VAR_DIR"] = var
        yield f"sqlite:///{var}/bench.sqlite3"


def seed(orgs: int, charges: int) -> float:
    """Write the orgs' rated periods; return the seconds the rated charges' inserts took."""
    from billing.fx.services import fx_rates_load
    from billing.models import BillingPeriod, Contract, Issuer, Product, RatedCharge
    from metering.models import Meter
    from tenancy.models import Org

    # A USD invoice with French VAT also states the VAT in EUR (art. 230 of Directive
    # 2006/112/EC): finalization needs the ECB's rate of the issue date, loaded as finance would.
    fx_rates_load(data=b"Date,USD,\n2026-11-04,1.0850,\n2026-11-03,1.0861,\n",
                  source="bench eurofxref-hist.csv")  # fmt: skip

    issuer = Issuer.objects.create(key="tessera-fr", legal_name="Tessera Cloud SAS", country="FR",
                                   vat_id="FR03552081317", invoice_prefix="TFR")  # fmt: skip
    meter = Meter.objects.create(key="gpu_time", event_type="gpu.usage", value_path="$.s",
                                 aggregation="sum", group_by={})  # fmt: skip
    products = [
        Product.objects.create(
            key=f"p{i}", name=f"Product {i}", meter=meter, unit="GPU-hour", unit_size=Decimal(3600)
        )  # fmt: skip
        for i in range(charges)
    ]
    countries = ["FR", "DE", "US", "FR", "IT"]
    Org.objects.bulk_create(
        Org(slug=f"org-{i:05d}", name=f"Org {i} SAS", country=countries[i % 5],
            vat_id="" if i % 7 == 0 else f"XX{i:09d}", currency="USD")
        for i in range(orgs)
    )  # fmt: skip
    org_ids = list(Org.objects.order_by("pk").values_list("pk", flat=True))
    Contract.objects.bulk_create(
        Contract(org_id=pk, key="c", issuer=issuer, rate_card_key="list", currency="USD",
                 start=date(2026, 1, 1))
        for pk in org_ids
    )  # fmt: skip
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    BillingPeriod.objects.bulk_create(
        BillingPeriod(org_id=org_id, contract_id=contract_id, start=start, end=end,
                      status="closing", currency="USD", rated_at=end, rated_as_of=end)
        for org_id, contract_id in Contract.objects.values_list("org_id", "pk")
    )  # fmt: skip
    rows = []
    inserting = 0.0
    for org_id, period_id in BillingPeriod.objects.values_list("org_id", "pk"):
        for line, product in enumerate(products):
            quantity = Decimal(100 + (org_id * 7 + line) % 900)
            rows.append(RatedCharge(org_id=org_id, period_id=period_id, product=product,
                                    kind="on_demand", quantity=quantity, unit_price=Decimal("2.5"),
                                    amount=quantity * Decimal("2.5"), currency="USD"))  # fmt: skip
        if len(rows) >= 10_000:
            started = time.perf_counter()
            RatedCharge.objects.bulk_create(rows)
            inserting += time.perf_counter() - started
            rows = []
    started = time.perf_counter()
    RatedCharge.objects.bulk_create(rows)
    return inserting + time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--charges", type=int, default=5, help="Rated charges per period.")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--profile", action="store_true", help="Print pyinstrument's profile.")
    add_common_arguments(parser, kind="invoicing")
    args = parse(parser, tiny={"orgs": 50})
    with database(args.sqlite, args.database) as url:
        os.environ["DATABASE_URL"] = url
        run(args)


def run(args: argparse.Namespace) -> None:
    production_settings(STRIPE_API_KEY="")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from billing.invoicing.drafting import periods_close
    from billing.invoicing.finalization import invoices_finalize
    from billing.invoicing.models import Invoice

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    baseline = seed(args.orgs, args.charges)
    seeded = time.perf_counter()
    rss_before = peak_rss_mib()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    report = periods_close(as_of=datetime(2026, 11, 3, tzinfo=UTC))
    closed = time.perf_counter()
    finalized = invoices_finalize(as_of=datetime(2026, 11, 4, tzinfo=UTC))
    done = time.perf_counter()
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
        flat = profiler.output_text(unicode=False, color=False, flat=True, show_all=True)
        print("\n".join(flat.splitlines()[:60]))  # the heaviest functions by their own time
    assert len(report.drafted_ids) == len(finalized) == args.orgs
    last = Invoice.objects.order_by("-sequence").values_list("number", flat=True).first()
    connection.close()
    close_s, finalize_s = closed - seeded, done - closed
    total = close_s + finalize_s
    lines = args.orgs * args.charges
    print(f"database: {connection.vendor}; orgs: {args.orgs}; charges per period: {args.charges}")
    print(f"seed (not timed):  {seeded - t0:7.1f} s")
    print(f"baseline, bulk insert of the {lines:,} rated charges: {baseline:7.2f} s")
    print(f"close_periods:     {close_s:7.1f} s  ({args.orgs / close_s:,.0f} drafts/s) "
          f"= {versus(close_s, baseline)}")  # fmt: skip
    print(f"finalize_invoices: {finalize_s:7.1f} s  ({args.orgs / finalize_s:,.0f} invoices/s) "
          f"= {versus(finalize_s, baseline)}")  # fmt: skip
    print(f"invoice run total: {total:7.1f} s  = {versus(total, baseline)} "
          f"(SPEC §9: < 30 s for 10,000); last: {last}")  # fmt: skip
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (after seeding: {rss_before:.0f} MiB)")


if __name__ == "__main__":
    main()
