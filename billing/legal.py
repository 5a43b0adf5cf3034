"""An issuer's legal details: checks of its identifiers, its national currency, which details
its country's documents need, and the mentions printed from them (SPEC §3, §5 issuers).

Sources of the rules:
- France: art. R123-237 C. com. (legal form, share capital, SIREN, "RCS" and its city on every
  document), art. L441-9 and D441-5 C. com. (B2B invoices: late-payment penalty rate, the €40
  fixed recovery indemnity, the early-payment discount terms), art. 242 nonies A CGI annex II.
- Germany: §35a GmbHG, §37a HGB (legal form, seat, register court and number, all managing
  directors), §14 (4) UStG.
- Everywhere: art. 226 Directive 2006/112/EC (VAT ids), payment details (IBAN, BIC).

Identifiers are checked with python-stdnum (SIREN Luhn digit, IBAN mod 97, BIC shape, VAT id
check digits via ``tenancy.vat_ids``) and stored compacted.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel.numbers import get_territory_currencies
from stdnum import bic as std_bic
from stdnum import iban as std_iban
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import siren as std_siren

from tenancy.countries import country_problem
from tenancy.vat_ids import VatIdError, vat_id_clean

# The €40 fixed indemnity for recovery costs owed by a business paying late (D441-5 C. com.).
FR_RECOVERY_INDEMNITY = "€40"
DEFAULT_EARLY_PAYMENT = "No discount for early payment."

# Legal-detail fields of an issuer, in the order the catalog documents them.
LEGAL_FIELDS = (
    "legal_form", "share_capital", "siren", "rcs_city", "register_court", "register_number",
    "managing_directors", "iban", "bic", "payment_terms_text", "late_payment_rate",
    "early_payment_discount", "contact_name", "contact_email", "contact_phone",
)  # fmt: skip
# What each country's documents need; a missing one is a load_catalog warning.
NEEDED: dict[str, tuple[str, ...]] = {
    "FR": ("legal_form", "share_capital", "siren", "rcs_city", "late_payment_rate", "iban", "bic"),
    "DE": ("legal_form", "register_court", "register_number", "managing_directors", "iban",
           "bic"),
}  # fmt: skip
NEEDED_ELSEWHERE = ("legal_form", "iban", "bic")


def national_currency(country: str) -> str:
    """The legal tender of ``country`` today (Babel's CLDR data): FR → EUR, US → USD; "" for
    an unknown country."""
    currencies = get_territory_currencies(country.upper(), tender=True) if country else []
    return currencies[0] if currencies else ""


def legal_ids_clean(
    *, country: str, vat_id: str = "", siren: str = "", iban: str = "", bic: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """(compacted values, errors by field) for an issuer's identifiers. The country must be an
    ISO 3166-1 code (else the only error is ``country``); a field left empty is not checked,
    except that a French issuer's SIREN is taken from its VAT id; an error names why the value
    cannot be right (a SIREN that is not the VAT id's, a bad check digit...)."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    if problem := country_problem(country):
        return values, {"country": problem}
    try:
        values["vat_id"] = vat_id_clean(country=country, vat_id=vat_id)
    except VatIdError as exc:
        errors["vat_id"] = exc.message
    for name, raw, module, what in (
        ("siren", siren, std_siren, "SIREN (9 digits with a Luhn check digit)"),
        ("iban", iban, std_iban, "IBAN"),
        ("bic", bic, std_bic, "BIC (8 or 11 characters)"),
    ):
        if not (raw or "").strip():
            values[name] = ""
            continue
        try:
            values[name] = str(module.validate(raw))
        except StdnumError as exc:
            errors[name] = f"{raw!r} is not a valid {what}: {str(exc).rstrip('.').lower()}"
    if siren and country.upper() != "FR" and "siren" not in errors:
        errors["siren"] = "a SIREN is a French company number; this issuer is not in FR"
    french_vat = values.get("vat_id", "") if country.upper() == "FR" else ""
    if french_vat[4:].isdigit() and not errors:
        # A French VAT id is FR, a 2-digit key, then the company's SIREN: a missing SIREN is
        # taken from it (Factur-X rule BR-FR-10 needs one), one that differs is refused.
        if not values["siren"]:
            values["siren"] = french_vat[4:]
        elif values["siren"] != french_vat[4:]:
            errors["siren"] = (
                f"{values['siren']} is not the SIREN of the VAT id {french_vat} "
                f"(which is {french_vat[4:]})"
            )
    return values, errors


def missing_details(country: str, details: Mapping[str, Any]) -> list[str]:
    """The legal-detail fields ``country``'s documents need that ``details`` lacks."""
    needed = NEEDED.get(country.upper(), NEEDED_ELSEWHERE)
    return [name for name in needed if details.get(name) in (None, "")]


def details_snapshot(issuer: Any) -> dict[str, str]:
    """The issuer's legal details as frozen on a document at finalization: text values, the
    share capital as a decimal string, empty ones left out."""
    snapshot: dict[str, str] = {}
    for name in LEGAL_FIELDS:
        value = getattr(issuer, name, None)
        if value in (None, ""):
            continue
        snapshot[name] = f"{value:f}" if isinstance(value, Decimal) else str(value)
    return snapshot


def format_iban(iban: str) -> str:
    """IBAN in groups of four, as printed (ISO 13616 paper format)."""
    return std_iban.format(iban) if iban else ""


def issuer_identity_lines(
    *, name: str, country: str, details: Mapping[str, str], capital: str = "", seat: str = ""
) -> list[str]:
    """The company-law mentions of an issuer, one line each, for the footer of every page:
    "Tessera Cloud SAS, SAS au capital de 50 000,00 € · SIREN 552 081 317 · RCS Paris"
    (France); "Tessera Cloud GmbH · Sitz Berlin · Amtsgericht Charlottenburg, HRB 123456 B ·
    Geschäftsführer: ..." (Germany). ``capital`` is the share capital already formatted,
    ``seat`` the registered office's city."""
    country = country.upper()
    form = details.get("legal_form", "")
    parts = [name]
    if country == "FR":
        if form and capital:
            parts.append(f"{form} au capital de {capital}")
        elif form:
            parts.append(form)
        if details.get("siren"):
            parts.append(f"SIREN {std_siren.format(details['siren'])}")
        if details.get("rcs_city"):
            parts.append(f"RCS {details['rcs_city']}")
    elif country == "DE":
        if form and form not in name:
            parts.append(form)
        if seat:
            parts.append(f"Sitz {seat}")
        if capital:
            parts.append(f"Stammkapital {capital}")
        register = ", ".join(
            v for v in (details.get("register_court", ""), details.get("register_number", "")) if v
        )
        if register:
            parts.append(f"Registergericht {register}")
        if details.get("managing_directors"):
            parts.append(f"Geschäftsführer: {details['managing_directors']}")
    else:
        if form and form not in name:
            parts.append(form)
        if capital:
            parts.append(f"share capital {capital}")
    return [" · ".join(parts)]


def french_b2b_mentions(details: Mapping[str, str]) -> list[str]:
    """The payment mentions a French B2B invoice must carry (L441-9, D441-5 C. com.)."""
    lines = []
    rate = details.get("late_payment_rate")
    if rate:
        lines.append(f"Late-payment penalties (pénalités de retard): {rate}.")
    lines.append(
        f"Fixed indemnity for recovery costs in case of late payment (indemnité forfaitaire "
        f"pour frais de recouvrement): {FR_RECOVERY_INDEMNITY} (art. L441-10 and D441-5 "
        "C. com.)."
    )
    lines.append(details.get("early_payment_discount") or DEFAULT_EARLY_PAYMENT)
    return lines


@dataclass(frozen=True)
class Address:
    lines: list[str]
    postcode: str
    city: str
    country: str


def split_address(text: str, country: str) -> Address:
    """A free-text postal address as EN 16931 wants it (BG-5/BG-8: line, post code, city,
    country): the part holding a post code is the post code and city ("75002 Paris",
    "Springfield, OR 97403", "SW1A 1AA London"); a trailing country name is dropped."""
    parts = [p.strip() for chunk in text.splitlines() for p in chunk.split(",") if p.strip()]
    postcode = city = ""
    for index in range(len(parts) - 1, -1, -1):
        part = parts[index]
        match = re.fullmatch(r"(\d{4,5}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})\s+(.+)", part)
        if match:
            postcode, city = match.group(1), match.group(2)
            del parts[index:]
            break
        match = re.fullmatch(r"([A-Z]{2})\s+(\d{5}(?:-\d{4})?)", part)  # US: "OR 97403"
        if match and index > 0:
            postcode, city = match.group(2), f"{parts[index - 1]}, {match.group(1)}"
            del parts[index - 1 :]
            break
    return Address(parts or [text.strip()], postcode, city, country)
