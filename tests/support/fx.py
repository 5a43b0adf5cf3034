"""ECB reference rates for tests that finalize a French issuer's invoice in another currency."""

from datetime import date, timedelta
from decimal import Decimal

from billing.fx.models import FxRate


def ecb_rates(start: date = date(2026, 1, 1), days: int = 550) -> None:
    """ECB reference rates for every day from ``start`` (1 EUR = 1.0850 USD), so that a USD
    invoice of the French issuer can state its VAT in EUR when it is finalized."""
    FxRate.objects.bulk_create(
        [
            FxRate(date=start + timedelta(days=i), currency="USD", rate=Decimal("1.0850"))
            for i in range(days)
        ],
        ignore_conflicts=True,
    )
