"""Countries as ISO 3166-1 alpha-2 codes (SPEC §3: an org's and an issuer's ``country``).

The tax rule reads the country to decide OSS, reverse charge, export or out of scope (SPEC §6
step 8): an unknown code would silently read as "outside the EU" and drop the VAT. So every
door that takes a country (catalog, billing-details API, admin) accepts only ISO 3166-1 codes,
from pycountry's copy of the ISO tables, not a list kept here. The codes people confuse with
countries get a hint: ``EL`` is Greece's VAT prefix (the country is ``GR``), ``UK`` is not a
code (``GB``), ``XI`` is Northern Ireland's VAT prefix for goods (the country is ``GB``).
"""

import pycountry

_HINTS = {
    "EL": "EL is Greece's VAT prefix; the country is GR",
    "UK": "UK is not an ISO 3166 code; the United Kingdom is GB",
    "XI": "XI is Northern Ireland's VAT prefix for goods; the country is GB",
}


def country_problem(code: str) -> str | None:
    """None when ``code`` is an ISO 3166-1 alpha-2 country code in capitals, else what is
    wrong, for a person (``"ZZ is not an ISO 3166-1 country code"``)."""
    if len(code) != 2 or not code.isascii() or not code.isalpha() or not code.isupper():
        return f"{code!r} must be an ISO 3166-1 two-letter country code in capitals (e.g. FR)"
    if code in _HINTS:
        return _HINTS[code]
    if pycountry.countries.get(alpha_2=code) is None:
        return f"{code} is not an ISO 3166-1 country code"
    return None
