"""VAT identification numbers: format and check digits, checked when an id is entered (SPEC §3,
§6 step 8). The rules are python-stdnum's, one module per country, not a table kept here.

An EU id carries its member state's prefix (``DE811907980``; Greece ``EL``); the prefix must
be the party's own country, since reverse charge (art. 196 Directive 2006/112/EC) needs an id
of the member state where the customer is established. Outside the EU an id is checked
by the country's own scheme where stdnum has one (GB, CH, NO, AU, ...); a country without a
VAT id scheme (US) takes no id at all.

Whether an id exists at VIES is not checked: that needs the network, and a document must not
depend on a call to an outside service at issue time.
"""

from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

# The VAT prefix of a member state where it is not its ISO 3166 code.
_EU_PREFIX = {"GR": "EL"}
# The EU member states by ISO 3166 code (stdnum also lists XI, Northern Ireland, for goods).
EU_COUNTRIES = frozenset(
    {code.upper() for code in eu_vat.MEMBER_STATES if code not in ("gr", "xi")} | {"GR"}
)


class VatIdError(ValueError):
    """An id that cannot be a VAT id of its country; ``message`` says why, for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def vat_prefix(country: str) -> str:
    """The two letters an EU VAT id of ``country`` starts with (``GR`` → ``EL``)."""
    return _EU_PREFIX.get(country.upper(), country.upper())


def vat_id_clean(*, country: str, vat_id: str) -> str:
    """``vat_id`` compacted (no spaces, dots or dashes, upper case) once checked against
    ``country``'s scheme; ``""`` for an empty id.

    Raises ``VatIdError`` for a wrong length, a wrong check digit, an EU id with another
    member state's prefix, or an id for a country that has no VAT id scheme.
    """
    raw = (vat_id or "").strip()
    if not raw:
        return ""
    country = (country or "").strip().upper()
    if country in EU_COUNTRIES:
        prefix = vat_prefix(country)
        number = "".join(ch for ch in raw.upper() if ch.isalnum())
        if not number[:2].isalpha():
            number = prefix + number
        if number[:2] != prefix:
            if number[:2] == country:  # GR094259216: Greece's ids start with EL, not GR
                raise VatIdError(f"{raw!r}: a {country} VAT id starts with {prefix}, not {country}")
            raise VatIdError(
                f"{raw!r} is a VAT id of {number[:2]}, not of {country} (it must start with "
                f"{prefix})"
            )
        return _checked(eu_vat, number, raw, country)
    module = get_cc_module(country.lower(), "vat") if len(country) == 2 else None
    if module is None:
        raise VatIdError(f"{country or 'this country'} has no VAT id scheme; leave it empty")
    number = _checked(module, module.compact(raw), raw, country)
    # Printed as the country writes it: GB980780684, not the bare digits stdnum keeps; a UK id
    # under Northern Ireland's XI prefix keeps it (XI980780684).
    written = raw.upper().lstrip()[:2]
    prefixes = {country, "XI"} if country == "GB" else {country}
    if written in prefixes and not number.startswith(written):
        number = written + number
    return number


def _checked(module: object, number: str, raw: str, country: str) -> str:
    try:
        return str(module.validate(number))  # type: ignore[attr-defined]
    except StdnumError as exc:
        raise VatIdError(f"{raw!r} is not a valid {country} VAT id: {_reason(exc)}") from None


def _reason(exc: StdnumError) -> str:
    text = str(exc).rstrip(".")
    return text[:1].lower() + text[1:]


def vat_id_is_valid(*, country: str, vat_id: str) -> bool:
    """True when ``vat_id`` is a non-empty, well-formed id of ``country`` (see
    ``vat_id_clean``). Used by the tax rules, so that an id stored before ids were checked
    never turns on reverse charge by being non-empty."""
    if not (vat_id or "").strip():
        return False
    try:
        vat_id_clean(country=country, vat_id=vat_id)
    except VatIdError:
        return False
    return True
