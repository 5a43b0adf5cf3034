"""VAT ids: format and check digits per country, with python-stdnum (SPEC §6 step 8)."""

import pytest

from tenancy.vat_ids import VatIdError, vat_id_clean, vat_id_is_valid


@pytest.mark.parametrize(
    ("country", "raw", "clean"),
    [
        ("DE", "DE811907980", "DE811907980"),
        ("DE", "de 811 907 980", "DE811907980"),
        ("DE", "811907980", "DE811907980"),  # the prefix is the country's
        ("FR", "FR 03 552 081 317", "FR03552081317"),
        ("BE", "BE0403019261", "BE0403019261"),
        ("GR", "EL094259216", "EL094259216"),  # Greece's prefix is EL
        ("GB", "GB980780684", "GB980780684"),
        ("GB", "XI 980 7806 84", "XI980780684"),  # Northern Ireland's prefix is kept
        ("FR", "", ""),
    ],
)
def test_valid_ids_are_compacted(country, raw, clean):
    assert vat_id_clean(country=country, vat_id=raw) == clean


@pytest.mark.parametrize(
    ("country", "raw", "why"),
    [
        ("DE", "DE123456789", "checksum"),
        ("DE", "DE81190798", "length"),
        ("FR", "FR40123456789", "checksum"),
        ("DE", "FR03552081317", "a VAT id of FR, not of DE"),
        ("US", "123456789", "US has no VAT id scheme"),
        ("GR", "GR094259216", "a GR VAT id starts with EL, not GR"),
    ],
)
def test_invalid_ids_say_why(country, raw, why):
    with pytest.raises(VatIdError, match=why):
        vat_id_clean(country=country, vat_id=raw)
    assert vat_id_is_valid(country=country, vat_id=raw) is False


def test_an_empty_id_is_not_a_valid_one():
    assert vat_id_is_valid(country="DE", vat_id="") is False
    assert vat_id_is_valid(country="DE", vat_id="DE811907980") is True
