"""VAT by issuer and customer (SPEC §6 step 8). The rate table lives here, in the code, so a
rate change is a reviewed commit with a date, not a setting someone edits.

Cloud services are electronically supplied services (art. 7 Regulation 282/2011); their place
of supply is the customer's (art. 44 Directive 2006/112/EC for a business, art. 58 for a
consumer). So:

- same country: that country's rate (0% for a country without VAT in the table), ``domestic_vat``;
- issuer in the EU, customer in another EU country with a *valid* VAT id (format and check
  digits, ``tenancy.vat_ids``): 0%, ``reverse_charge`` (art. 196; EN 16931 category AE);
- issuer in the EU, customer in another EU country without a valid id (a consumer): the
  *customer's* country rate, ``oss`` (art. 58, declared through the One-Stop Shop, art. 369a);
- customer in another country outside the EU (or a GB/CH/NO issuer's foreign customer): 0%,
  ``export`` (EN 16931 category G);
- issuer in a country without VAT (a US issuer, to a US customer or anyone): no VAT line,
  ``out_of_scope`` (category O).

Each reason maps to an EN 16931 VAT category (BT-118) and, for 0%, to its exemption reason
text and VATEX code (BT-120, BT-121), used by the PDF and the e-invoice alike.
"""

from dataclasses import dataclass
from decimal import Decimal

from tenancy.vat_ids import EU_COUNTRIES, vat_id_is_valid

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
assert set(EU_VAT_RATES) == EU_COUNTRIES, "every member state has a rate"
# Countries outside the EU with a VAT (or GST) charged on domestic B2B services.
OTHER_VAT_RATES: dict[str, Decimal] = {
    "GB": Decimal("20"), "CH": Decimal("8.1"), "NO": Decimal("25"),
}  # fmt: skip

REVERSE_CHARGE_MENTION = "Autoliquidation / reverse charge, art. 196 Directive 2006/112/EC"
EXPORT_MENTION = (
    "VAT not applicable: services supplied outside the EU (art. 44 Directive 2006/112/EC)"
)
OUT_OF_SCOPE_MENTION = "Not subject to VAT"


@dataclass(frozen=True)
class Category:
    """An EN 16931 VAT category (UNTDID 5305) with the exemption reason a 0% needs."""

    code: str  # BT-118 / BT-151
    exemption_code: str = ""  # BT-121 (VATEX code list)
    exemption_text: str = ""  # BT-120


CATEGORIES: dict[str, Category] = {
    TaxReason.DOMESTIC_VAT: Category("S"),
    TaxReason.OSS: Category("S"),
    TaxReason.REVERSE_CHARGE: Category("AE", "VATEX-EU-AE", "Reverse charge"),
    TaxReason.EXPORT: Category("G", "VATEX-EU-G", "Export outside the EU"),
    TaxReason.OUT_OF_SCOPE: Category("O", "VATEX-EU-O", "Not subject to VAT"),
}


def category(reason: str, rate: Decimal = Decimal(0)) -> Category:
    """The EN 16931 category of a tax reason; a domestic 0% (a country without VAT in the
    table) is zero-rated, category Z."""
    if reason == TaxReason.DOMESTIC_VAT and not rate:
        return Category("Z")
    return CATEGORIES[reason]


@dataclass(frozen=True)
class TaxRule:
    rate: Decimal  # percent
    reason: str  # TaxReason
    mention: str


def domestic_rate(country: str) -> Decimal:
    country = country.upper()
    return EU_VAT_RATES.get(country, OTHER_VAT_RATES.get(country, Decimal(0)))


def _percent(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def tax_rule(*, issuer_country: str, customer_country: str, customer_vat_id: str) -> TaxRule:
    """The VAT of an invoice from ``issuer_country`` to a customer (SPEC §6 step 8; see the
    module docstring for the rules and their articles). ``customer_vat_id`` counts only when
    it is a valid id of the customer's country."""
    issuer_country, customer_country = issuer_country.upper(), customer_country.upper()
    issuer_in_eu = issuer_country in EU_COUNTRIES
    if not issuer_in_eu and not domestic_rate(issuer_country):
        # An issuer in a country without VAT (the US) charges none, wherever its customer is.
        return TaxRule(Decimal(0), TaxReason.OUT_OF_SCOPE, OUT_OF_SCOPE_MENTION)
    if issuer_country == customer_country:
        rate = domestic_rate(issuer_country)
        return TaxRule(rate, TaxReason.DOMESTIC_VAT, f"VAT {_percent(rate)}%")
    if issuer_in_eu and customer_country in EU_COUNTRIES:
        if vat_id_is_valid(country=customer_country, vat_id=customer_vat_id):
            return TaxRule(Decimal(0), TaxReason.REVERSE_CHARGE, REVERSE_CHARGE_MENTION)
        rate = EU_VAT_RATES[customer_country]
        return TaxRule(
            rate,
            TaxReason.OSS,
            f"VAT {_percent(rate)}% of {customer_country} (place of supply: the customer's "
            "country, art. 58 Directive 2006/112/EC; declared through the One-Stop Shop)",
        )
    return TaxRule(Decimal(0), TaxReason.EXPORT, EXPORT_MENTION)
