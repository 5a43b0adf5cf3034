"""load_catalog: VAT ids checked (format and check digits), issuers' legal details, and a
warning when one a country's documents need is missing (SPEC §5)."""

import io

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from billing.catalog import CatalogError, load_catalog
from billing.models import Issuer
from billing.services import BillingDetailsError, org_billing_details_update
from tenancy.models import Org

ISSUERS = """
issuers:
  - {key: tessera-fr, legal_name: Tessera Cloud SAS, country: FR, vat_id: FR 03 552 081 317,
     invoice_prefix: TFR, legal_form: SAS, share_capital: "50000.00", siren: "552 081 317",
     rcs_city: Paris, iban: "FR76 3000 6000 0112 3456 7890 189", bic: AGRIFRPP,
     late_payment_rate: three times the French legal interest rate,
     contact_email: billing@tessera.example}
  - {key: tessera-de, legal_name: Tessera Cloud GmbH, country: DE, vat_id: DE811907980,
     invoice_prefix: TDE, legal_form: GmbH, register_court: Amtsgericht Charlottenburg,
     register_number: HRB 123456 B}
"""


@pytest.mark.django_db
def test_issuers_load_their_legal_details_compacted_and_warn_about_missing_ones():
    report = load_catalog(yaml.safe_load(ISSUERS))

    fr = Issuer.objects.get(key="tessera-fr")
    assert (fr.vat_id, fr.siren, fr.iban) == (
        "FR03552081317", "552081317", "FR7630006000011234567890189")  # fmt: skip
    assert (fr.legal_form, str(fr.share_capital), fr.rcs_city) == ("SAS", "50000.00", "Paris")
    assert report.warnings == [
        "issuers[1] (tessera-de).managing_directors: missing; DE documents need it and will "
        "omit it",
        "issuers[1] (tessera-de).iban: missing; DE documents need it and will omit it",
        "issuers[1] (tessera-de).bic: missing; DE documents need it and will omit it",
    ]


@pytest.mark.django_db
def test_an_invalid_german_vat_id_is_refused_at_load_and_nothing_is_written(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        ISSUERS
        + """
orgs:
  - {slug: hooli, name: Hooli Deutschland GmbH, country: DE, vat_id: DE123456789,
     currency: EUR}
"""
    )
    err = io.StringIO()

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("load_catalog", str(path), stdout=io.StringIO(), stderr=err)

    assert (
        "orgs[0] (hooli).vat_id: 'DE123456789' is not a valid DE VAT id: the number's "
        "checksum or check digit is invalid" in err.getvalue()
    )
    assert not Org.objects.exists()
    assert not Issuer.objects.exists()


@pytest.mark.django_db
def test_bad_issuer_identifiers_name_the_field():
    bad = yaml.safe_load(ISSUERS)
    bad["issuers"][0].update(siren="552081318", iban="FR7630006000011234567890188", bic="X")
    bad["issuers"][1]["vat_id"] = "FR03552081317"

    with pytest.raises(CatalogError) as caught:
        load_catalog(bad)

    fields = sorted(e.split(":")[0] for e in caught.value.errors)
    assert fields == [
        "issuers[0] (tessera-fr).bic",
        "issuers[0] (tessera-fr).iban",
        "issuers[0] (tessera-fr).siren",
        "issuers[1] (tessera-de).vat_id",
    ]
    assert not Issuer.objects.exists()


@pytest.mark.django_db
def test_the_admin_form_refuses_an_invalid_vat_id():
    from django.core.exceptions import ValidationError

    org = Org(slug="hooli", name="Hooli", country="DE", vat_id="DE123456789", currency="EUR")
    with pytest.raises(ValidationError) as caught:
        org.full_clean()
    assert list(caught.value.message_dict) == ["vat_id"]

    org.vat_id = "de 811 907 980"
    org.full_clean()
    assert org.vat_id == "DE811907980"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("country", "message"),
    [
        ("ZZ", "ZZ is not an ISO 3166-1 country code"),
        ("EL", "EL is Greece's VAT prefix; the country is GR"),
        ("UK", "UK is not an ISO 3166 code; the United Kingdom is GB"),
        ("XI", "XI is Northern Ireland's VAT prefix for goods; the country is GB"),
    ],
)
def test_a_country_that_is_not_iso_3166_is_refused_everywhere_it_is_entered(country, message):
    """An unknown country would read as "outside the EU" and drop the VAT (SPEC §6 step 8)."""
    catalog = yaml.safe_load(ISSUERS)
    catalog["orgs"] = [{"slug": "atk", "name": "Atk", "country": country, "currency": "EUR"}]
    catalog["issuers"][1]["country"] = country

    with pytest.raises(CatalogError) as refused:
        load_catalog(catalog)

    assert f"orgs[0] (atk).country: {message}" in refused.value.errors
    assert f"issuers[1] (tessera-de).country: {message}" in refused.value.errors
    assert not Org.objects.exists()
    # The billing-details API and the admin's model validation say the same.
    org = Org.objects.create(slug="acme", name="Acme", country="FR", currency="EUR")
    with pytest.raises(BillingDetailsError) as api:
        org_billing_details_update(org=org, country=country)
    assert api.value.fields == {"country": [message]}
    org.country = country
    with pytest.raises(ValidationError) as admin:
        org.full_clean()
    assert admin.value.message_dict["country"] == [message]


@pytest.mark.django_db
def test_a_french_issuer_takes_its_siren_from_its_vat_id_and_a_different_one_is_refused():
    catalog = yaml.safe_load(ISSUERS)
    del catalog["issuers"][0]["siren"]
    load_catalog(catalog)
    assert Issuer.objects.get(key="tessera-fr").siren == "552081317"

    catalog["issuers"][0]["siren"] = "732829320"  # a valid SIREN, but another company's
    with pytest.raises(CatalogError) as refused:
        load_catalog(catalog)
    assert refused.value.errors == [
        "issuers[0] (tessera-fr).siren: 732829320 is not the SIREN of the VAT id FR03552081317 "
        "(which is 552081317)"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("share_capital", "message"),
    [
        ("1000.005", "'1000.005' has more than 2 decimal places"),
        ("123456789012345678901234", "'123456789012345678901234' is too large (at most 18 "
         "digits before the decimal point)"),
    ],
)  # fmt: skip
def test_a_share_capital_the_column_cannot_hold_exactly_is_refused(share_capital, message):
    catalog = yaml.safe_load(ISSUERS)
    catalog["issuers"][0]["share_capital"] = share_capital

    with pytest.raises(CatalogError) as refused:
        load_catalog(catalog)

    assert refused.value.errors == [f"issuers[0] (tessera-fr).share_capital: {message}"]
    assert not Issuer.objects.exists()
