"""The invoice PDF: a real document with the number, the total and the VAT mention."""

import io
from datetime import UTC, datetime
from decimal import Decimal

from pypdf import PdfReader

from billing.invoicing.drafting import periods_close
from billing.invoicing.pdf import render_invoice_pdf

from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, rated_period, worked_charges


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
    for fact in ("Tessera Cloud SAS", "FR40123456789", "DE811907980", "Acme AI SAS",
                 "2026-12-04", "net 30 days", "Credits applied", "-500.00"):  # fmt: skip
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
