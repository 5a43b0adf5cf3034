"""EN 16931 e-invoices (SPEC §3, §5): every tax case and credit notes pass the official XSD
and the EN 16931 schematron (and the French CTC rules for the French issuer), checked offline
with SaxonC; Factur-X is a PDF/A-3 with factur-x.xml embedded; export_invoices writes them."""

import io
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from lxml import etree
from pypdf import PdfReader

from billing.fx.models import FxRate
from billing.invoicing.credit_notes import credit_note_issue
from billing.invoicing.drafting import periods_close
from billing.invoicing.einvoice import NS, cii_xml, document_file, document_of
from billing.invoicing.errors import InvoicingError
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from billing.legal import split_address
from tests.support.invoicing import finalize

from ...factories import IssuerFactory
from ...support.einvoice import fatal, schematron_failures, xsd_errors
from ...support.fx import ecb_rates
from .conftest import AFTER_GRACE, DISCOUNTED_LLAMA, rated_period, worked_charges

ISSUED = datetime(2026, 11, 4, tzinfo=UTC)


def _finalized(world, **org):
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"), **org)
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    return finalize(draft.pk, as_of=ISSUED)


@pytest.fixture
def usd_rate(db):
    """Only the rate of 3 November (the world's daily rates removed)."""
    FxRate.objects.exclude(date=date(2026, 11, 3)).delete()


def _xpath(xml: bytes, path: str) -> list[str]:
    return [str(v) for v in etree.fromstring(xml).xpath(path, namespaces=NS)]


def _rule(failure: str) -> str:
    return failure.split(" ")[1].rstrip(":")


def _valid(
    xml: bytes, *, french: bool, french_fails: frozenset[str] | set[str] = frozenset()
) -> None:
    assert xsd_errors(xml) == []
    assert fatal(schematron_failures(xml)) == []
    if french:
        failures = {_rule(f) for f in fatal(schematron_failures(xml, "fr-ctc"))}
        assert failures == (french_fails or set())


CASES = [
    # customer country, VAT id, EN 16931 category, rate, exemption code, French CTC failures
    ("DE", "DE811907980", "AE", "0", "VATEX-EU-AE", set()),  # reverse charge
    # A Belgian consumer: OSS at Belgium's rate. The French CTC rules accept French VAT rates
    # only (BR-FR-16): a B2C sale is outside the French e-invoicing mandate (it is e-reported),
    # so these rules do not apply to it; EN 16931 itself passes.
    ("BE", "", "S", "21", None, {"BR-FR-16_BT-119", "BR-FR-16_BT-152", "BR-FR-16_BT-96_BT-103"}),
    ("FR", "FR44732829320", "S", "20", None, set()),  # domestic
    ("US", "", "G", "0", "VATEX-EU-G", set()),  # export
]


@pytest.mark.parametrize(("country", "vat_id", "code", "rate", "exemption", "french_fails"), CASES)
def test_each_tax_case_passes_en16931_and_the_french_ctc_rules(
    world, usd_rate, country, vat_id, code, rate, exemption, french_fails
):
    invoice = _finalized(world, country=country, vat_id=vat_id)

    xml = cii_xml(document_of(invoice))

    _valid(xml, french=True, french_fails=french_fails)
    tax = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"
    assert _xpath(xml, f"{tax}/ram:CategoryCode/text()") == [code]
    assert _xpath(xml, f"{tax}/ram:RateApplicablePercent/text()") == [rate]
    assert _xpath(xml, f"{tax}/ram:ExemptionReasonCode/text()") == (
        [exemption] if exemption else []
    )
    sums = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    assert _xpath(xml, f"{sums}/ram:LineTotalAmount/text()") == ["13592.75"]
    assert _xpath(xml, f"{sums}/ram:AllowanceTotalAmount/text()") == ["500.00"]
    assert _xpath(xml, f"{sums}/ram:DuePayableAmount/text()") == [f"{invoice.total:.2f}"]


def test_a_usd_invoice_states_its_vat_in_eur_at_the_loaded_rate(world, usd_rate):
    invoice = _finalized(world, country="FR", vat_id="FR44732829320")

    xml = cii_xml(document_of(invoice))

    # VAT 20% of 13,092.75 = 2,618.55 USD; 1 EUR = 1.0850 USD on 2026-11-03 → 2,413.41 EUR
    assert (invoice.tax_currency, invoice.tax_fx_rate, invoice.tax_fx_date) == (
        "EUR", Decimal("1.0850000000"), date(2026, 11, 3))  # fmt: skip
    assert invoice.tax_total_national == Decimal("2413.41")
    assert _xpath(xml, "//ram:TaxCurrencyCode/text()") == ["EUR"]
    assert _xpath(xml, "//ram:TaxTotalAmount[@currencyID='EUR']/text()") == ["2413.41"]
    assert _xpath(xml, "//ram:TaxTotalAmount[@currencyID='USD']/text()") == ["2618.55"]


def test_without_a_loaded_rate_those_drafts_wait_named_once_and_the_rest_are_finalized(world):
    FxRate.objects.all().delete()
    us = IssuerFactory.create(key="tessera-us", legal_name="Tessera Cloud, Inc.", country="US",
                              vat_id="", invoice_prefix="TUS")  # fmt: skip
    for slug in ("acme", "bolt"):  # USD invoices of the French issuer: VAT stated in EUR too
        rated_period(world, slug=slug, charges=worked_charges(world))
    rated_period(world, slug="gadget", country="US", vat_id="", issuer=us,
                 charges=worked_charges(world))  # fmt: skip
    drafts = {d.org.slug: d.pk for d in periods_close(as_of=AFTER_GRACE).drafted}

    with pytest.raises(InvoicingError) as refused:
        invoices_finalize(as_of=ISSUED)

    assert refused.value.code == "fx_rate_missing"
    # One sentence for the reason both share, naming both invoices, not one sentence each.
    assert refused.value.message.count("No ECB reference rate for USD") == 1
    assert f"2 invoices stay drafts: id {drafts['acme']}, {drafts['bolt']}" in refused.value.message
    status = dict(Invoice.objects.values_list("org__slug", "status"))
    assert status == {"acme": "draft", "bolt": "draft", "gadget": "finalized"}

    ecb_rates()
    assert invoices_finalize(as_of=ISSUED) == [drafts["acme"], drafts["bolt"]]
    assert set(Invoice.objects.values_list("status", flat=True)) == {"finalized"}
    assert Invoice.objects.get(pk=drafts["acme"]).tax_fx_rate == Decimal("1.0850")


def test_us_to_us_is_out_of_scope_category_o_without_vat_ids(world):
    us = IssuerFactory.create(key="tessera-us", legal_name="Tessera Cloud, Inc.", country="US",
                       vat_id="", invoice_prefix="TUS", siren="", rcs_city="", legal_form="",
                       share_capital=None, iban="", bic="", late_payment_rate="",
                       address="500 Market St, San Francisco, CA 94105, USA")  # fmt: skip
    invoice = _finalized(world, country="US", vat_id="", issuer=us)

    xml = cii_xml(document_of(invoice))

    _valid(xml, french=False)
    assert invoice.tax_currency == ""
    assert _xpath(xml, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/"
                       "ram:CategoryCode/text()") == ["O"]  # fmt: skip
    assert _xpath(xml, "//ram:SpecifiedTaxRegistration/ram:ID/text()") == []


def test_a_credit_note_is_type_381_referencing_its_invoice(world, usd_rate):
    invoice = _finalized(world, country="DE", vat_id="DE811907980")
    note = credit_note_issue(invoice_id=invoice.pk, reason="goodwill", as_of=ISSUED)

    xml = cii_xml(document_of(note))

    _valid(xml, french=True)
    assert _xpath(xml, "//rsm:ExchangedDocument/ram:TypeCode/text()") == ["381"]
    assert _xpath(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID/text()") == [
        invoice.number
    ]
    assert _xpath(xml, "//ram:DuePayableAmount/text()") == [f"{note.total:.2f}"]


def test_the_xrechnung_profile_passes_en16931(world, usd_rate):
    invoice = _finalized(world, country="DE", vat_id="DE811907980")

    xml = cii_xml(document_of(invoice), profile="xrechnung")

    # The Factur-X schematron knows only its own profile ids (BT-24): that is its one
    # complaint; under the EN 16931 id the same document passes every EN 16931 rule.
    xrechnung_id = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
    assert _xpath(xml, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID/text()") == [
        xrechnung_id
    ]
    assert [_rule(f) for f in fatal(schematron_failures(xml))] == ["FX-SCH-A-000556"]
    _valid(xml.replace(xrechnung_id.encode(), b"urn:cen.eu:en16931:2017"), french=False)
    assert _xpath(xml, "//ram:BuyerReference/text()") == ["acme"]


def test_factur_x_is_a_pdf_a_3_with_the_xml_embedded(world, usd_rate):
    invoice = _finalized(world, country="DE", vat_id="DE811907980")

    name, pdf, media_type = document_file(invoice, "facturx")

    assert (name, media_type) == (f"{invoice.number}.pdf", "application/pdf")
    reader = PdfReader(io.BytesIO(pdf))
    assert list(reader.attachments) == ["factur-x.xml"]
    embedded = reader.attachments["factur-x.xml"][0]
    assert embedded == cii_xml(document_of(invoice))
    root: Any = reader.trailer["/Root"]  # pypdf types the catalog as a plain PdfObject
    assert root["/OutputIntents"][0].get_object()["/S"] == "/GTS_PDFA1"
    assert root["/AF"][0].get_object()["/AFRelationship"] == "/Data"
    metadata = root["/Metadata"].get_object().get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in metadata
    assert b"EN 16931" in metadata
    resources: list[Any] = [page["/Resources"] for page in reader.pages]
    fonts = [font.get_object() for r in resources for font in r["/Font"].values()]
    for font in fonts:  # every font embedded (PDF/A): TrueType subsets with their files
        assert "/FontDescriptor" in font, font["/BaseFont"]
        assert "/FontFile2" in font["/FontDescriptor"].get_object(), font["/BaseFont"]


def test_export_invoices_writes_one_file_per_invoice_and_credit_note(world, usd_rate, tmp_path):
    invoice = _finalized(world, country="DE", vat_id="DE811907980")
    note = credit_note_issue(invoice_id=invoice.pk, reason="goodwill", as_of=ISSUED)
    err = io.StringIO()

    call_command("export_invoices", period="2026-10", format="facturx",
                 output=str(tmp_path / "fx"), stderr=err)  # fmt: skip
    call_command("export_invoices", period="2026-10", format="xrechnung",
                 output=str(tmp_path / "xr"), stderr=err)  # fmt: skip
    xrechnung = (tmp_path / "xr" / f"{invoice.number}.xml").read_bytes()
    call_command("export_invoices", period="2026-11", format="facturx", credit_notes=True,
                 output=str(tmp_path / "cn"), stderr=err)  # fmt: skip

    assert [p.name for p in Path(tmp_path / "fx").iterdir()] == [f"{invoice.number}.pdf"]
    assert [p.name for p in Path(tmp_path / "xr").iterdir()] == [f"{invoice.number}.xml"]
    assert [p.name for p in Path(tmp_path / "cn").iterdir()] == [f"{note.number}.pdf"]
    assert xsd_errors(xrechnung) == []


def test_addresses_are_split_into_line_post_code_and_city():
    paris = split_address("12 rue de la Paix, 75002 Paris, France", "FR")
    berlin = split_address("Friedrichstrasse 1\n10117 Berlin", "DE")
    oregon = split_address("1 Globex Way, Springfield, OR 97403, USA", "US")

    assert (paris.lines, paris.postcode, paris.city) == (["12 rue de la Paix"], "75002", "Paris")
    assert (berlin.lines, berlin.postcode, berlin.city) == (["Friedrichstrasse 1"], "10117",
                                                            "Berlin")  # fmt: skip
    assert (oregon.lines, oregon.postcode, oregon.city) == (["1 Globex Way"], "97403",
                                                            "Springfield, OR")  # fmt: skip


LINE = "//ram:IncludedSupplyChainTradeLineItem[ram:AssociatedDocumentLineDocument/ram:LineID='{}']"
GROSS = "/ram:SpecifiedLineTradeAgreement/ram:GrossPriceProductTradePrice"
NET = "/ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice"


def _prices(xml: bytes, line_id: str) -> dict[str, list[str]]:
    line = LINE.format(line_id)
    return {
        "gross": _xpath(xml, f"{line}{GROSS}/ram:ChargeAmount/text()"),
        "gross_base": _xpath(xml, f"{line}{GROSS}/ram:BasisQuantity/text()"),
        "indicator": _xpath(
            xml,
            f"{line}{GROSS}/ram:AppliedTradeAllowanceCharge/ram:ChargeIndicator/udt:Indicator/text()",
        ),
        "discount": _xpath(
            xml, f"{line}{GROSS}/ram:AppliedTradeAllowanceCharge/ram:ActualAmount/text()"
        ),
        "net": _xpath(xml, f"{line}{NET}/ram:ChargeAmount/text()"),
        "net_base": _xpath(xml, f"{line}{NET}/ram:BasisQuantity/text()"),
    }


def _discounted(world, **org):
    # Llama tier 1 (line 4): 1,000 × 0.90 = 900.00 at 10% off its list price 1.00.
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"),
                 list_prices=DISCOUNTED_LLAMA, **org)  # fmt: skip
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    return finalize(draft.pk, as_of=ISSUED)


def test_a_discounted_line_states_its_gross_price_and_the_discount(world, usd_rate):
    invoice = _discounted(world, country="FR", vat_id="FR44732829320")

    xml = cii_xml(document_of(invoice))

    _valid(xml, french=True)
    # BT-148 gross 1.00, BT-147 discount 0.10, BT-146 net 0.90 = 1.00 − 0.10, per unit.
    assert _prices(xml, "4") == {"gross": ["1"], "gross_base": [], "indicator": ["false"],
                                 "discount": ["0.1"], "net": ["0.9"], "net_base": []}  # fmt: skip
    line = LINE.format("4")
    assert _xpath(xml, f"{line}//ram:BilledQuantity/text()") == ["1000"]
    assert _xpath(xml, f"{line}//ram:LineTotalAmount/text()") == ["900.00"]
    # The lines at list price state no gross price.
    assert len(_xpath(xml, f"//{GROSS[1:]}/ram:ChargeAmount/text()")) == 1
    _valid(cii_xml(document_of(invoice), profile="xrechnung").replace(
        b"#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0", b""), french=False)  # fmt: skip


def test_a_discounted_token_price_is_stated_per_the_same_base_quantity(world, usd_rate):
    invoice = _discounted(world, country="DE", vat_id="DE811907980")
    document = document_of(invoice)
    # The same 900.00 billed per token: 2,400,000,000 × 0.000000375 (25% off 0.0000005).
    document.lines[3] = replace(
        document.lines[3],
        quantity=Decimal(2_400_000_000),
        price=Decimal("0.000000375"),
        list_price=Decimal("0.0000005"),
    )

    xml = cii_xml(document)

    _valid(xml, french=True)
    # Six decimals hold neither price per token: both per 1,000 tokens, 0.0005 − 0.000125.
    assert _prices(xml, "4") == {"gross": ["0.0005"], "gross_base": ["1000"],
                                 "indicator": ["false"], "discount": ["0.000125"],
                                 "net": ["0.000375"], "net_base": ["1000"]}  # fmt: skip


def test_a_credit_note_of_a_discounted_line_states_the_same_prices(world, usd_rate):
    invoice = _discounted(world, country="DE", vat_id="DE811907980")
    note = credit_note_issue(invoice_id=invoice.pk, reason="goodwill", as_of=ISSUED)

    xml = cii_xml(document_of(note))

    _valid(xml, french=True)
    # The credit note lists the lines with an amount (covered, 0.00, is left out): line 3.
    assert _prices(xml, "3") == {"gross": ["1"], "gross_base": [], "indicator": ["false"],
                                 "discount": ["0.1"], "net": ["0.9"], "net_base": []}  # fmt: skip
