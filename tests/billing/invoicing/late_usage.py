"""A billing world built through the real catalog, ingestion, rollup and rating engine, for the
tests of late usage (SPEC §6 step 5): an event that lands in an invoiced period after its
invoice is re-rated by the engine itself and billed as adjustments on the next invoice."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.invoicing.drafting import CloseReport, periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.models import BillingPeriod
from billing.services import org_rate
from tenancy.models import Org

from ..conftest import CATALOG, contract, gpu, ingest

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
JAN = datetime(2027, 1, 1, tzinfo=UTC)
GRACE = timedelta(days=2)
# When late events arrive: within the late window of an October hour (35 days).
LATE = datetime(2026, 11, 3, tzinfo=UTC)
ORGS = [*CATALOG["orgs"], {"slug": "initech", "name": "Initech SARL", "country": "FR",
                           "currency": "USD"}]  # fmt: skip


def contracts(catalog: Any, *slugs: str, start: str = "2026-10-01", **terms: Any) -> None:
    """An H100 contract (2.50 per GPU-hour) from ``start`` to 2027-01-01 for each org."""
    catalog(*(contract(key=f"{slug}-c", org=slug, start=start, end="2027-01-01", **terms)
              for slug in slugs), orgs=ORGS)  # fmt: skip


def gpu_hours(slug: str, month: datetime, hours: int, *, seconds: str = "3600",
              tag: int = 0, now: datetime | None = None) -> None:  # fmt: skip
    """``hours`` events of ``seconds`` H100 GPU-seconds, one per hour from ``month``, through
    ingestion and the rollup (``tag`` keeps event ids of one month apart)."""
    n = 1000 * month.month + tag  # event ids name the hour of the day only
    ingest([gpu(hour, seconds, org=slug, n=n, day0=month) for hour in range(hours)], now=now)


def bill(month_end: datetime, *slugs: str) -> CloseReport:
    """Rate the orgs through ``month_end``, close what is due after the grace window and
    finalize it, as the scheduled runs do."""
    for slug in slugs:
        org_rate(org=Org.objects.get(slug=slug), as_of=month_end)
    report = periods_close(as_of=month_end + GRACE)
    invoices_finalize(invoice_ids=report.drafted_ids, as_of=month_end + GRACE)
    return report


def period(slug: str, start: datetime) -> BillingPeriod:
    return BillingPeriod.objects.get(org__slug=slug, start=start)


D = Decimal
