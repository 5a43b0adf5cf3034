"""The invoice PDF: a real document with the number, the total and the VAT mention."""

import io
from datetime import UTC, datetime
from decimal import Decimal

from pypdf import PdfReader

from billing.invoicing.drafting import periods_close
from billing.invoicing.models import Invoice, StripeInvoiceSync
from billing.invoicing.pdf import render_invoice_pdf
from billing.invoicing.status import invoice_void

from ...factories import IssuerFactory
from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, DISCOUNTED_LLAMA, rated_period, worked_charges


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_pdf_has_number_total_and_reverse_charge_mention(world):
    rated_period(world, country="DE", vat_id="DE811907980", charges=worked_charges(world),
                 credits=Decimal("500.00"))  # fmt: skip
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))

    pdf = render_invoice_pdf(invoice)

    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    assert "TFR-2026-000001" in text
    assert "13,092.75" in text  # total: reverse charge, so subtotal − credits
    assert "Autoliquidation / reverse charge, art. 196 Directive 2006/112/EC" in text
    for fact in ("Tessera Cloud SAS", "FR03552081317", "DE811907980", "Acme AI SAS",
                 "2026-12-04", "net 30 days", "Credit welcome-", "-500.00"):  # fmt: skip
        assert fact in text, fact


def test_pdf_of_a_domestic_invoice_shows_the_vat_line(world):
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))

    text = _text(render_invoice_pdf(invoice))

    assert "VAT 20% on 13,092.75" in text
    assert "2,618.55" in text
    assert "15,711.30" in text


def test_a_draft_pdf_says_draft(world):
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]

    text = _text(render_invoice_pdf(draft))

    assert "DRAFT" in text


def test_a_french_b2b_invoice_carries_the_mandatory_mentions_and_vat_in_eur(world):
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))

    text = " ".join(_text(render_invoice_pdf(invoice)).split())

    for mention in (
        "SAS au capital de €50,000.00",  # legal form and share capital (R123-237 C. com.)
        "SIREN 552 081 317",
        "RCS Paris",
        "Late-payment penalties (pénalités de retard): three times the French legal interest",
        "€40 (art. L441-10 and D441-5 C. com.)",
        "No discount for early payment.",
        "IBAN FR76 3000 6000 0112 3456 7890 189, BIC AGRIFRPP",
        "VAT in EUR 2,413.41 EUR",  # art. 230: 2,618.55 USD at 1 EUR = 1.085 USD
        "at 1 EUR = 1.085 USD ECB, 2026-11-04",
    ):
        assert mention in text, mention


def test_a_german_invoice_carries_register_court_number_and_directors(world):
    de = IssuerFactory.create(key="tessera-de", legal_name="Tessera Cloud GmbH", country="DE",
                       vat_id="DE811907980", invoice_prefix="TDE", siren="", rcs_city="",
                       legal_form="GmbH", share_capital=Decimal("25000.00"),
                       register_court="Amtsgericht Charlottenburg",
                       register_number="HRB 234567 B", managing_directors="Anna Schmidt",
                       iban="DE89370400440532013000", bic="COBADEFFXXX", late_payment_rate="",
                       address="Friedrichstrasse 68\n10117 Berlin")  # fmt: skip
    rated_period(world, country="DE", vat_id="DE136695976", issuer=de,
                 charges=worked_charges(world))  # fmt: skip
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))

    text = " ".join(_text(render_invoice_pdf(invoice)).split())

    for mention in ("Tessera Cloud GmbH · Sitz Berlin", "Stammkapital €25,000.00",
                    "Registergericht Amtsgericht Charlottenburg, HRB 234567 B",
                    "Geschäftsführer: Anna Schmidt", "VAT 19% on 13,592.75",
                    "IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX"):  # fmt: skip
        assert mention in text, mention
    assert "pénalités" not in text


def test_us_to_us_has_no_vat_line(world):
    us = IssuerFactory.create(key="tessera-us", legal_name="Tessera Cloud, Inc.", country="US",
                       vat_id="", invoice_prefix="TUS", siren="", rcs_city="",
                       legal_form="", share_capital=None, late_payment_rate="")  # fmt: skip
    rated_period(world, country="US", vat_id="", issuer=us, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))

    text = _text(render_invoice_pdf(invoice))

    assert "VAT" not in text
    assert "13,592.75" in text
    assert invoice.taxes.get().reason == "out_of_scope"


def test_a_discounted_line_shows_its_list_price_and_the_discount(world):
    # Llama tier 1: 1,000 × 0.90 = 900.00 at 10% off its list price 1.00.
    rated_period(world, charges=worked_charges(world), list_prices=DISCOUNTED_LLAMA)
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))

    lines = _text(render_invoice_pdf(invoice)).splitlines()

    at = lines.index("List price 1.00, 10% discount (-0.10)")
    # The cell's rows first, then the line's quantity, unit, net unit price and amount.
    assert lines[at - 1 : at + 5] == [
        "On demand", "List price 1.00, 10% discount (-0.10)", "1,000", "1M tokens", "0.90",
        "900.00",
    ]  # fmt: skip
    assert sum("List price" in line for line in lines) == 1  # the other lines are at list


def test_a_void_pdf_says_void_and_asks_for_no_payment(world):
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))
    link = "https://invoice.stripe.com/i/acct_1"
    StripeInvoiceSync.objects.create(
        org=invoice.org, invoice=invoice, state="done", hosted_invoice_url=link
    )
    payable = " ".join(_text(render_invoice_pdf(invoice)).split())

    voided = invoice_void(invoice_id=invoice.pk, reason="billed twice")
    assert voided.status_changed_at is not None
    void = " ".join(_text(render_invoice_pdf(Invoice.objects.get(pk=invoice.pk))).split())

    assert f"Pay online: {link}" in payable
    assert "Total due (USD)" in payable
    assert "VOID" not in payable
    assert "VOID" in void
    assert f"Status VOID {voided.status_changed_at.date().isoformat()}" in void
    assert "Total (void, USD)" in void
    assert "This invoice was void on" in void
    assert "it is no longer payable" in void
    for wording in ("Total due", "Pay online", "invoice.stripe.com", "IBAN", "Payment terms"):
        assert wording not in void, wording
