"""``load_fx_rates FILE``: store the ECB reference rates of a published CSV (SPEC §5)."""

from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from .ecb import read_ecb_bytes
from .models import FxRate

BATCH = 5000


@dataclass(frozen=True)
class FxLoadReport:
    created: int
    updated: int
    unchanged: int
    first: str  # ISO date of the oldest rate in the file
    last: str
    currencies: int


@transaction.atomic
def fx_rates_load(*, data: bytes, source: str) -> FxLoadReport:
    """Validate the whole file (``ecb.read_ecb_bytes``; an ``EcbFileError`` names each bad
    line and nothing is written), then upsert each (currency, date). Loading a file twice
    changes nothing; a rate the ECB corrected is replaced."""
    rates = read_ecb_bytes(data)
    days = sorted({rate.date for rate in rates})
    existing = {
        (row.currency, row.date): row.rate
        for row in FxRate.objects.filter(date__gte=days[0], date__lte=days[-1]).only(
            "currency", "date", "rate"
        )
    }
    created = updated = unchanged = 0
    rows = []
    for rate in rates:
        known = existing.get((rate.currency, rate.date))
        if known is None:
            created += 1
        elif known == rate.rate:
            unchanged += 1
            continue
        else:
            updated += 1
        rows.append(FxRate(date=rate.date, currency=rate.currency, rate=rate.rate, source=source))
    FxRate.objects.bulk_create(
        rows,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["currency", "date"],
        update_fields=["rate", "source", "loaded_at"],
    )
    return FxLoadReport(
        created=created,
        updated=updated,
        unchanged=unchanged,
        first=days[0].isoformat(),
        last=days[-1].isoformat(),
        currencies=len({rate.currency for rate in rates}),
    )


def fx_rates_load_file(*, path: str | Path) -> FxLoadReport:
    path = Path(path)
    return fx_rates_load(data=path.read_bytes(), source=path.name)
