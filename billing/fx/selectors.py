"""Reading reference rates: the conversion an invoice states its VAT at (art. 230 Directive
2006/112/EC; SPEC §6 step 8)."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from .models import FxRate

RATE_PLACES = Decimal("1e-10")


class FxRateMissing(LookupError):
    """No usable reference rate; ``message`` says which and what to load."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Conversion:
    """1 ``to_currency`` = ``rate`` ``from_currency``, per the ECB rates of ``day``."""

    from_currency: str
    to_currency: str
    rate: Decimal
    day: date

    def convert(self, amount: Decimal) -> Decimal:
        """``amount`` in ``from_currency`` expressed in ``to_currency`` (not rounded)."""
        return amount / self.rate


def _per_eur(currency: str, day: date) -> dict[date, Decimal]:
    if currency == "EUR":
        return {}
    return dict(
        FxRate.objects.filter(currency=currency, date__lte=day)
        .order_by("-date")
        .values_list("date", "rate")[:20]
    )


def conversion_on(
    *, from_currency: str, to_currency: str, day: date, max_age_days: int
) -> Conversion:
    """The ECB reference conversion of the latest date on or before ``day`` that has both
    currencies (EUR is the ECB's base, 1), no older than ``max_age_days``. A cross rate (say
    USD for a Danish issuer's DKK) goes through the euro, as the ECB's own rates do.

    Raises ``FxRateMissing`` when no such rate was loaded (``load_fx_rates``).
    """
    from_currency, to_currency = from_currency.upper(), to_currency.upper()
    rates = {c: _per_eur(c, day) for c in {from_currency, to_currency} - {"EUR"}}
    days = None
    for per_day in rates.values():
        days = set(per_day) if days is None else days & set(per_day)
    usable = sorted(d for d in (days or ()) if d >= day - timedelta(days=max_age_days))
    if not usable:
        wanted = " and ".join(sorted(rates)) or "EUR"
        raise FxRateMissing(
            f"No ECB reference rate for {wanted} between "
            f"{(day - timedelta(days=max_age_days)).isoformat()} and {day.isoformat()}: load "
            "the ECB's rates with load_fx_rates (eurofxref.csv or eurofxref-hist.csv)."
        )
    on = usable[-1]

    def per_eur(currency: str) -> Decimal:
        return Decimal(1) if currency == "EUR" else rates[currency][on]

    rate = (per_eur(from_currency) / per_eur(to_currency)).quantize(
        RATE_PLACES, rounding=ROUND_HALF_UP
    )
    return Conversion(from_currency, to_currency, rate, on)
