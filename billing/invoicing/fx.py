"""VAT in the issuer's national currency (art. 230 Directive 2006/112/EC; SPEC §6 step 8).

When an invoice's currency is not its issuer's national currency (a USD invoice from the
French entity), its VAT is also stated in the national currency, converted at the ECB
reference rate of the issue date (the latest published on or before it, loaded with
``load_fx_rates``). The rate, its date and the converted VAT are frozen on the invoice at
finalization. A credit note states its VAT at its invoice's frozen rate: it corrects VAT that
was declared at that rate.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings

from ..fx.selectors import Conversion, FxRateMissing, conversion_on
from ..legal import national_currency
from ..money import round_amount
from .models import CreditNote, Invoice

__all__ = ["FxRateMissing", "NationalVat", "credit_note_tax_national", "national_vat"]


@dataclass(frozen=True)
class NationalVat:
    """``tax_total`` restated: 1 ``currency`` = ``rate`` invoice-currency units on ``day``."""

    currency: str
    rate: Decimal
    day: date
    amount: Decimal


def national_vat(
    *,
    issuer_country: str,
    currency: str,
    tax_total: Decimal,
    issue_date: date,
    rounding: str,
    cache: dict[tuple[str, str, date], Conversion] | None = None,
) -> NationalVat | None:
    """The VAT restated for an invoice issued on ``issue_date``, or None when the invoice is
    in its issuer's national currency (or the country's is unknown). Raises
    ``FxRateMissing`` when no recent enough ECB rate is loaded. ``cache`` keeps the
    conversions a batch has looked up, so a chunk reads each rate once."""
    national = national_currency(issuer_country)
    if not national or national == currency.upper():
        return None
    key = (currency.upper(), national, issue_date)
    conversion = cache.get(key) if cache is not None else None
    if conversion is None:
        conversion = conversion_on(
            from_currency=currency,
            to_currency=national,
            day=issue_date,
            max_age_days=settings.TESSERA_FX_MAX_AGE_DAYS,
        )
        if cache is not None:
            cache[key] = conversion
    amount = round_amount(conversion.convert(tax_total), national, rounding)
    return NationalVat(national, conversion.rate, conversion.day, amount)


def credit_note_tax_national(note: CreditNote) -> Decimal | None:
    """The credit note's VAT in its invoice's national currency, at the invoice's rate."""
    invoice: Invoice = note.invoice
    if not invoice.tax_currency or not invoice.tax_fx_rate:
        return None
    return round_amount(note.tax_total / invoice.tax_fx_rate, invoice.tax_currency)
