"""Invoice lines that read right (issue 14): credits named per grant on the PDF and in the
e-invoice (one BG-20 allowance per grant), and every line's quantity × unit price is its
amount."""

import io
from datetime import UTC, date, datetime
from decimal import Decimal

from lxml import etree
from pypdf import PdfReader

from billing.invoicing.drafting import periods_close
from billing.invoicing.einvoice import NS, cii_xml, document_of
from billing.invoicing.pdf import render_invoice_pdf
from billing.invoicing.selectors import CreditPart, invoice_credit_parts
from billing.models import CreditDraw, CreditGrant

from ...factories import RatedChargeFactory
from ...support.einvoice import fatal, schematron_failures, xsd_errors
from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, rated_period, worked_charges

ISSUED = datetime(2026, 11, 4, tzinfo=UTC)


def _two_grants(world):
    """The period draws 500.00 from welcome-… (conftest) and 120.50 from a second grant."""
    period = rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    grant = CreditGrant.objects.create(
        org=period.org, key="gpu-launch", amount=Decimal("200.00"), currency="USD",
        balance=Decimal("79.50"), effective=date(2026, 1, 1), priority=2,
    )  # fmt: skip
    CreditDraw.objects.create(
        org=period.org, grant=grant, period=period, amount=Decimal("120.50"),
        balance_after=Decimal("79.50"),
    )  # fmt: skip
    return period


def test_credits_are_named_per_grant_on_the_pdf_and_the_e_invoice(world):
    period = _two_grants(world)
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=ISSUED)
    assert invoice.credits == Decimal("620.50")

    parts = invoice_credit_parts(org=invoice.org, invoice=invoice)
    assert parts == [
        CreditPart(f"welcome-{period.pk}", f"Credit welcome-{period.pk}", Decimal("500.00")),
        CreditPart("gpu-launch", "Credit gpu-launch", Decimal("120.50")),
    ]
    text = "\n".join(
        page.extract_text() for page in PdfReader(io.BytesIO(render_invoice_pdf(invoice))).pages
    )
    assert f"Credit welcome-{period.pk}" in text
    assert "-500.00" in text
    assert "Credit gpu-launch" in text
    assert "-120.50" in text
    assert "Credits applied" not in text

    xml = cii_xml(document_of(invoice))
    root = etree.fromstring(xml)
    allowances = root.xpath("//ram:SpecifiedTradeAllowanceCharge", namespaces=NS)
    assert [
        (a.findtext("ram:Reason", namespaces=NS), a.findtext("ram:ActualAmount", namespaces=NS))
        for a in allowances
    ] == [(f"Credit welcome-{period.pk}", "500.00"), ("Credit gpu-launch", "120.50")]
    assert root.xpath("string(//ram:AllowanceTotalAmount)", namespaces=NS) == "620.50"
    assert xsd_errors(xml) == []
    assert fatal(schematron_failures(xml)) == []


def test_a_void_invoice_keeps_naming_the_grants_it_applied(world):
    period = _two_grants(world)
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalize(draft.pk, as_of=ISSUED)
    # a later give-back of the grant (as a void writes) is not this invoice's
    grant = CreditGrant.objects.get(key="gpu-launch")
    CreditDraw.objects.create(
        org=period.org, grant=grant, period=period, amount=Decimal("-120.50"),
        balance_after=Decimal("200.00"),
    )  # fmt: skip

    parts = invoice_credit_parts(org=invoice.org, invoice=invoice)

    assert [(p.grant, p.amount) for p in parts] == [
        (f"welcome-{period.pk}", Decimal("500.00")),
        ("gpu-launch", Decimal("120.50")),
    ]


def test_a_discounted_package_line_states_its_discount_from_its_stored_prices(world):
    # given 7 packages of 10M tokens at 22.50, 10% off the list price 25.00 of a package;
    # the rating's description carries the blocks, its discount words are not read
    period = rated_period(world)
    RatedChargeFactory.create(
        period=period, org=period.org, product=world.llama, kind="on_demand", line=0,
        description="7 × 10 (61.78 used)", quantity=Decimal(7), unit_price=Decimal("22.50"),
        list_unit_price=Decimal("25.00"), amount=Decimal("157.50"),
    )  # fmt: skip

    (line,) = periods_close(as_of=AFTER_GRACE).drafted[0].lines.all()

    assert line.description == (
        "Llama 3.1 70B input, 1M tokens: on demand "
        "(7 packages of 10M tokens (61.78M used); 10% off list price 25.00)"
    )
    assert (line.unit, line.quantity, line.unit_price, line.list_unit_price, line.amount) == (
        "package of 10M tokens", Decimal(7), Decimal("22.50"), Decimal("25.00"),
        Decimal("157.50"),
    )  # fmt: skip
    assert line.quantity * line.unit_price == line.amount


def test_a_package_charge_rated_before_list_prices_were_stored_keeps_its_words(world):
    period = rated_period(world)
    RatedChargeFactory.create(
        period=period, org=period.org, product=world.llama, kind="on_demand", line=0,
        description="7 × 10 (61.78 used); 10% off list price 25.00 (amendment)",
        quantity=Decimal(7), unit_price=Decimal("22.50"), amount=Decimal("157.50"),
    )  # fmt: skip

    (line,) = periods_close(as_of=AFTER_GRACE).drafted[0].lines.all()

    assert line.description.endswith(
        "(7 packages of 10M tokens (61.78M used); 10% off list price 25.00 (amendment))"
    )
    assert line.list_unit_price is None
