"""VAT by issuer and customer (SPEC §6 step 8). The rate table lives here, in the code, so a
rate change is a reviewed commit with a date, not a setting someone edits.

- same country: that country's rate (0% for a country without VAT in the table);
- issuer in the EU, customer in another EU country with a VAT id: 0%, reverse charge;
- issuer in the EU, customer in another EU country without a VAT id: the issuer's rate;
- customer outside the issuer's VAT area: 0%, export.
"""

from dataclasses import dataclass
from decimal import Decimal

from .models import TaxReason

# Standard rates, percent, in force on 2026-01-01.
EU_VAT_RATES: dict[str, Decimal] = {
    code: Decimal(rate)
    for code, rate in {
        "AT": "20", "BE": "21", "BG": "20", "CY": "19", "CZ": "21", "DE": "19", "DK": "25",
        "EE": "24", "ES": "21", "FI": "25.5", "FR": "20", "GR": "24", "HR": "25", "HU": "27",
        "IE": "23", "IT": "22", "LT": "21", "LU": "17", "LV": "21", "MT": "18", "NL": "21",
        "PL": "23", "PT": "23", "RO": "21", "SE": "25", "SI": "22", "SK": "23",
    }.items()
}  # fmt: skip
# Countries outside the EU with a VAT (or GST) charged on domestic B2B services.
OTHER_VAT_RATES: dict[str, Decimal] = {
    "GB": Decimal("20"), "CH": Decimal("8.1"), "NO": Decimal("25"),
}  # fmt: skip

REVERSE_CHARGE_MENTION = "Autoliquidation / reverse charge, art. 196 Directive 2006/112/EC"
EXPORT_MENTION = (
    "VAT not applicable: services supplied outside the EU (art. 44 Directive 2006/112/EC)"
)


@dataclass(frozen=True)
class TaxRule:
    rate: Decimal  # percent
    reason: str  # TaxReason
    mention: str


def domestic_rate(country: str) -> Decimal:
    country = country.upper()
    return EU_VAT_RATES.get(country, OTHER_VAT_RATES.get(country, Decimal(0)))


def tax_rule(*, issuer_country: str, customer_country: str, customer_vat_id: str) -> TaxRule:
    issuer_country, customer_country = issuer_country.upper(), customer_country.upper()
    if issuer_country == customer_country:
        rate = domestic_rate(issuer_country)
        return TaxRule(rate, TaxReason.DOMESTIC_VAT, f"VAT {rate.normalize():f}%")
    if issuer_country in EU_VAT_RATES and customer_country in EU_VAT_RATES:
        if customer_vat_id.strip():
            return TaxRule(Decimal(0), TaxReason.REVERSE_CHARGE, REVERSE_CHARGE_MENTION)
        rate = domestic_rate(issuer_country)
        return TaxRule(rate, TaxReason.DOMESTIC_VAT, f"VAT {rate.normalize():f}%")
    return TaxRule(Decimal(0), TaxReason.EXPORT, EXPORT_MENTION)
