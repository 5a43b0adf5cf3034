"""The quote PDF for the customer: terms, monthly schedule, total contract value."""

import io
from datetime import date
from decimal import Decimal

from pypdf import PdfReader

from billing.catalog import load_catalog
from billing.deals.quote import quote_number, render_quote_pdf
from billing.deals.services import TermInput, deal_create
from billing.models import Contract, Issuer, Product
from tenancy.models import Org

from .conftest import CONTRACTS, draft, line


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_new_contracts_quote(am):
    deal = draft(am)

    text = _text(render_quote_pdf(deal))

    # 8 GPUs × 744 h (Jan) + 16 × 672 (Feb) + 16 × 744 (Mar) at 2.00 = 57,216.00
    for fact in (
        "QUOTE", quote_number(deal), "Tessera Cloud SAS", "Acme AI SAS", "H100 GPU-hour",
        "2027-01-01 to 2027-03-31", "16 from 2027-02-01", "2.00", "57,216.00", "71,520.00",
        "20.00%", "2027-01", "11,904.00", "2027-02", "21,504.00", "2027-03", "23,808.00",
        "DRAFT", "take-or-pay", "excluding VAT",
    ):  # fmt: skip
        assert fact in text, fact


def test_an_amendments_quote_shows_the_contract_with_it(am):
    base = {"product": "h100", "quantity": 4, "unit_price": "3.00"}
    load_catalog({"contracts": [{**CONTRACTS[0], "reservations": [base]}]})
    deal = deal_create(
        actor=am,
        org=Org.objects.get(slug="acme"),
        currency="USD",
        rate_card_key="list-usd",
        issuer=Issuer.objects.get(key="tessera-fr"),
        amends=Contract.objects.get(key="acme-c"),
        lines=[line(quantity=2, start=date(2026, 11, 11), term_months=1,
                    unit_price=Decimal("2.80"), ramp=[])],
        terms=[TermInput(product=Product.objects.get(key="a100"), valid_from=date(2026, 11, 11),
                         unit_price=Decimal("1.20"))],
    )  # fmt: skip

    text = _text(render_quote_pdf(deal))

    # November: acme-c commits 4 × 720 × 3.00 = 8,640.00; the amendment 2 × 480 × 2.80
    for fact in (
        "Amends contract", "acme-c", "2026-11-11 to 2026-11-30", "2,688.00", "8,640.00",
        "11,328.00", "custom price 1.20 per unit", "A100 GPU-hour", "end of contract",
    ):  # fmt: skip
        assert fact in text, fact
