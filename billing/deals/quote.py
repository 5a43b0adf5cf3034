"""A deal as a quote for the customer (reportlab, like ``billing.invoicing.pdf``): who offers
what to whom, the reserved GPUs line by line with their ramps and prices, the on-demand
terms, the monthly schedule and the total contract value.

Rendered on demand from the deal as it stands: a draft or a deal pending approval is marked
DRAFT on every page; an approved or signed deal's quote is the offer as it was signed.
"""

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any
from xml.sax.saxutils import escape

from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from ..invoicing.pdf import INK, MUTED, RULE, STYLES, amount, band, heading, price, quantity
from .economics import Economics, deal_economics, line_end
from .models import Deal, DealLine, DealTerm

FINAL = (Deal.Status.APPROVED, Deal.Status.SIGNED)


def _p(text: str, style: str = "body") -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), STYLES[style])


def _day(end: date) -> str:
    return (end - timedelta(days=1)).isoformat()


def quote_number(deal: Deal) -> str:
    return f"Q-{deal.org.slug.upper()}-{deal.pk:05d}"


def render_quote_pdf(deal: Deal) -> bytes:
    """The quote's PDF bytes. Raises ``EconomicsError`` when the deal cannot be valued."""
    lines = list(deal.lines.select_related("product"))
    terms = list(deal.terms.select_related("product"))
    economics = deal_economics(deal=deal, lines=lines)
    number = quote_number(deal)
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=20 * mm,
        title=f"Quote {number}",
        author=deal.issuer.legal_name,
    )
    story: list[Flowable] = [_header(deal, number), Spacer(1, 7 * mm), _customer(deal)]
    story += [Spacer(1, 6 * mm), _p("RESERVED CAPACITY", "label"), _lines(deal, lines)]
    if terms:
        story += [Spacer(1, 5 * mm), _p("ON-DEMAND TERMS", "label"), _terms(deal, terms)]
    story += [Spacer(1, 5 * mm), _totals(deal, economics)]
    story += [Spacer(1, 6 * mm), _p("MONTHLY SCHEDULE", "label"), _schedule(deal, economics)]
    story += [Spacer(1, 6 * mm), _p(_conditions(deal, economics), "body")]

    def decorate(canvas: Canvas, document: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(MUTED)
        canvas.drawString(18 * mm, 10 * mm, deal.issuer.legal_name)
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"Quote {number} · page {document.page}")
        if deal.status not in FINAL:
            canvas.setFont("Helvetica-Bold", 90)
            canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.12))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, "DRAFT")
        canvas.restoreState()

    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def _header(deal: Deal, number: str) -> Table:
    issuer: list[Flowable] = [_p(deal.issuer.legal_name, "issuer")]
    if deal.issuer.address:
        issuer.append(_p(deal.issuer.address))
    if deal.issuer.vat_id:
        issuer.append(_p(f"VAT ID: {deal.issuer.vat_id}"))
    facts = [
        ("Quote", number),
        ("Date", timezone.now().date().isoformat()),
        ("Status", deal.get_status_display()),
    ]
    if deal.amends is not None:
        facts.append(("Amends contract", deal.amends.key))
    return heading(issuer, "QUOTE", facts)


def _customer(deal: Deal) -> Table:
    org = deal.org
    cells: list[Flowable] = [_p("PREPARED FOR", "label"), _p(org.name, "group")]
    if org.billing_address:
        cells.append(_p(org.billing_address))
    cells.append(_p(f"Country: {org.country}" + (f" · VAT ID: {org.vat_id}" if org.vat_id else "")))
    if deal.title:
        cells.append(_p(deal.title, "body"))
    return band(cells)


def _table(rows: list[list[Any]], widths: Sequence[float], right_from: int) -> Table:
    style: list[Any] = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (right_from, 0), (-1, -1), "RIGHT"),
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
    ]
    for row in range(1, len(rows)):
        style.append(("LINEBELOW", (0, row), (-1, row), 0.25, RULE))
    return Table(rows, colWidths=[w * mm for w in widths], style=TableStyle(style), repeatRows=1)


def _gpus(line: DealLine) -> str:
    steps = "".join(f"\n{s['quantity']} from {s['from']}" for s in line.ramp)
    return f"{line.quantity}{steps}"


def _lines(deal: Deal, lines: list[DealLine]) -> Table:
    currency = deal.currency
    rows: list[list[Any]] = [
        [_p(h, "label") for h in ("Product", "GPUs", "Term", "Price / GPU-hour",
                                  "Burst / GPU-hour", f"Committed ({currency})")]
    ]  # fmt: skip
    economics = deal_economics(deal=deal, lines=lines)
    for value in economics.lines:
        line = value.line
        burst = price(line.burst_unit_price) if line.burst_unit_price is not None else "on demand"
        rows.append(
            [
                _p(line.product.name, "cell"),
                _p(_gpus(line), "cell"),
                _p(f"{line.start.isoformat()} to {_day(line_end(line))}", "cell"),
                price(line.unit_price),
                burst,
                amount(value.value.quantize(Decimal("0.01")), currency),
            ]
        )
    return _table(rows, [42, 32, 36, 20, 20, 24], right_from=3)


def _term_text(term: DealTerm) -> str:
    if term.unit_price is not None:
        return f"custom price {price(term.unit_price)} per unit"
    assert term.discount_percent is not None
    return f"{term.discount_percent.normalize():f}% off list"


def _terms(deal: Deal, terms: list[DealTerm]) -> Table:
    rows: list[list[Any]] = [[_p(h, "label") for h in ("Product", "Term", "From", "Until")]]
    for term in terms:
        rows.append(
            [
                _p(term.product.name if term.product else "Every product", "cell"),
                _term_text(term),
                term.valid_from.isoformat(),
                _day(term.valid_until) if term.valid_until else "end of contract",
            ]
        )
    return _table(rows, [70, 54, 25, 25], right_from=4)


def _totals(deal: Deal, economics: Economics) -> Table:
    currency = deal.currency
    rows = [
        ["Total contract value", amount(economics.total_contract_value, currency)],
        ["At list price", amount(economics.list_value, currency)],
    ]
    if economics.discount_percent > 0:
        rows.append(["Your discount", f"{economics.discount_percent}%"])
    if deal.amends is not None:
        rows.append(
            [
                f"Contract {deal.amends.key} over these months, with this amendment",
                amount(economics.value_with_deal, currency),
            ]
        )
    return Table(
        rows,
        colWidths=[90 * mm, 34 * mm],
        hAlign="RIGHT",
        style=TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("TEXTCOLOR", (0, 0), (-1, -1), INK),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, 0), 10.5),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
            ]
        ),
    )


def _schedule(deal: Deal, economics: Economics) -> Table:
    currency = deal.currency
    amending = deal.amends is not None
    heads = ["Month", "GPU-hours", f"This deal ({currency})"]
    if amending:
        heads += [f"Current contract ({currency})", f"With this amendment ({currency})"]
    rows: list[list[Any]] = [[_p(h, "label") for h in heads]]
    for month in economics.monthly:
        row = [
            month.month.strftime("%Y-%m"),
            quantity(month.gpu_hours),
            amount(month.amount, currency),
        ]
        if amending:
            row += [amount(month.current, currency), amount(month.with_deal, currency)]
        rows.append(row)
    total = ["Total", quantity(sum((m.gpu_hours for m in economics.monthly), Decimal(0))),
             amount(sum((m.amount for m in economics.monthly), Decimal(0)), currency)]  # fmt: skip
    if amending:
        total += [
            amount(economics.current_value, currency),
            amount(economics.value_with_deal, currency),
        ]
    rows.append(total)
    widths = [26, 30, 38, 40, 40] if amending else [40, 50, 50]
    table = _table(rows, widths, right_from=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, INK),
            ]
        )
    )
    return table


def _conditions(deal: Deal, economics: Economics) -> str:
    end = _day(economics.end)
    amends = (
        f" This quote amends contract {deal.amends.key}: its existing terms are unchanged, "
        "the lines above are added to it from their dates."
        if deal.amends is not None
        else ""
    )
    return (
        f"Amounts in {deal.currency}, excluding VAT. Reserved capacity is take-or-pay: each "
        "reserved GPU is billed for every hour of its term, used or not; usage above the "
        "reserved GPUs in an hour is billed at the burst price (on demand: the contract's "
        "on-demand price after its discount). "
        f"Term {economics.start.isoformat()} to {end}; billed monthly; the monthly amounts are "
        "rounded each month and may differ from the total by rounding."
        f"{amends} This quote is not an invoice."
    )
