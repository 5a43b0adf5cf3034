"""The invoice as a PDF a finance team would send (reportlab, pure Python).

Rendered on demand from the stored invoice: a finalized invoice never changes, so neither does
its PDF. A draft is marked DRAFT on every page and has no number.
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
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

from ..money import minor_units
from .models import Invoice, InvoiceLine, LineKind

INK = colors.HexColor("#1f2937")
MUTED = colors.HexColor("#6b7280")
RULE = colors.HexColor("#d1d5db")
BAND = colors.HexColor("#f3f4f6")

_base = getSampleStyleSheet()
STYLES = {
    "title": ParagraphStyle("title", parent=_base["Title"], fontSize=20, alignment=TA_RIGHT,
                            textColor=INK, spaceAfter=2),
    "issuer": ParagraphStyle("issuer", parent=_base["Heading2"], textColor=INK, spaceAfter=2),
    "body": ParagraphStyle("body", parent=_base["BodyText"], fontSize=9, leading=12,
                           textColor=INK),
    "small": ParagraphStyle("small", parent=_base["BodyText"], fontSize=7.5, leading=10,
                            textColor=MUTED),
    "right": ParagraphStyle("right", parent=_base["BodyText"], fontSize=9, leading=12,
                            alignment=TA_RIGHT, textColor=INK),
    "label": ParagraphStyle("label", parent=_base["BodyText"], fontSize=7.5, leading=10,
                            textColor=MUTED, spaceAfter=1),
    "cell": ParagraphStyle("cell", parent=_base["BodyText"], fontSize=8.5, leading=11),
    "group": ParagraphStyle("group", parent=_base["BodyText"], fontSize=8.5, leading=11,
                            fontName="Helvetica-Bold"),
}  # fmt: skip


def amount(value: Decimal, currency: str) -> str:
    places = minor_units(currency)
    return f"{value:,.{places}f}"


def quantity(value: Decimal) -> str:
    text = f"{value.quantize(Decimal('0.000001')).normalize():f}"
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}" if whole.lstrip("-").isdigit() else whole
    if whole.startswith("-") and not grouped.startswith("-"):
        grouped = "-" + grouped
    return f"{grouped}.{fraction}" if fraction else grouped


def price(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    if "." not in text:
        return f"{text}.00"
    whole, fraction = text.split(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _p(text: str, style: str = "body") -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), STYLES[style])


def _last_day(invoice_end: datetime) -> str:
    return (invoice_end - timedelta(days=1)).date().isoformat()


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's PDF bytes."""
    buffer = BytesIO()
    title = f"Invoice {invoice.number}" if invoice.number else f"Draft invoice #{invoice.pk}"
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=20 * mm,
        title=title,
        author=invoice.issuer_name,
    )
    currency = invoice.currency
    story: list[Flowable] = [
        _header(invoice),
        Spacer(1, 8 * mm),
        _parties(invoice),
        Spacer(1, 7 * mm),
    ]
    lines = list(invoice.lines.all().select_related("product", "adjusts_period"))
    story.append(_lines_table(lines, currency))
    story.append(Spacer(1, 4 * mm))
    story.append(_totals_table(invoice))
    story.append(Spacer(1, 6 * mm))
    for tax in invoice.taxes.all():
        if tax.mention and not tax.mention.startswith("VAT "):
            story.append(_p(tax.mention, "body"))
    terms = (
        f"Payment terms: net {invoice.payment_terms_days} days"
        + (f", due by {invoice.due_date.isoformat()}" if invoice.due_date else "")
        + f". Please quote {invoice.number or 'the invoice number'} with your payment. "
        f"Amounts in {currency}."
    )
    story += [Spacer(1, 2 * mm), _p(terms, "body")]

    def decorate(canvas: Canvas, document: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(MUTED)
        footer = f"{invoice.issuer_name}" + (
            f" · VAT {invoice.issuer_vat_id}" if invoice.issuer_vat_id else ""
        )
        canvas.drawString(18 * mm, 10 * mm, footer)
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"{title} · page {document.page}")
        if invoice.is_draft:
            canvas.setFont("Helvetica-Bold", 90)
            canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.12))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, "DRAFT")
        canvas.restoreState()

    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def _header(invoice: Invoice) -> Table:
    issuer = [_p(invoice.issuer_name, "issuer")]
    if invoice.issuer_address:
        issuer.append(_p(invoice.issuer_address))
    issuer.append(_p(f"Country: {invoice.issuer_country}"))
    if invoice.issuer_vat_id:
        issuer.append(_p(f"VAT ID: {invoice.issuer_vat_id}"))
    facts = [
        ("Invoice number", invoice.number or "DRAFT (numbered when finalized)"),
        ("Issue date", invoice.issue_date.isoformat() if invoice.issue_date else "—"),
        ("Due date", invoice.due_date.isoformat() if invoice.due_date else "—"),
        (
            "Billing period",
            f"{invoice.period_start.date().isoformat()} to {_last_day(invoice.period_end)}",
        ),
    ]
    if invoice.kind == Invoice.Kind.FINAL_ADJUSTMENT:
        facts.append(("Kind", "Final adjustment (late usage)"))
    return heading(issuer, "INVOICE", facts)


def heading(left: Sequence[Flowable], title: str, facts: list[tuple[str, str]]) -> Table:
    """The top of a document: who issues it on the left; its title and facts on the right."""
    right: list[Flowable] = [Paragraph(title, STYLES["title"])]
    right.append(
        Table(
            [[_p(k, "label"), _p(v, "right")] for k, v in facts],
            colWidths=[30 * mm, 48 * mm],
            style=TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                    ("TOPPADDING", (0, 0), (-1, -1), 1),
                ]
            ),
        )
    )
    return Table(
        [[left, right]],
        colWidths=[96 * mm, 78 * mm],
        style=TableStyle(
            [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]
        ),  # fmt: skip
    )


def _parties(invoice: Invoice) -> Table:
    bill_to: list[Flowable] = [_p("BILL TO", "label"), _p(invoice.customer_name, "group")]
    if invoice.customer_address:
        bill_to.append(_p(invoice.customer_address))
    bill_to.append(_p(f"Country: {invoice.customer_country}"))
    if invoice.customer_vat_id:
        bill_to.append(_p(f"VAT ID: {invoice.customer_vat_id}"))
    return band(bill_to)


def band(cells: Sequence[Flowable]) -> Table:
    """A shaded box across the page: the customer's details."""
    return Table(
        [[cells]],
        colWidths=[174 * mm],
        style=TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), BAND),
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), 8),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        ),
    )


def _lines_table(lines: list[InvoiceLine], currency: str) -> Table:
    """Lines grouped by product (current period first), then adjustments by period."""
    rows: list[list[Any]] = [
        [_p("Description", "label"), _p("Quantity", "label"), _p("Unit", "label"),
         _p("Unit price", "label"), _p(f"Amount ({currency})", "label")]
    ]  # fmt: skip
    style: list[Any] = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("ALIGN", (3, 0), (4, -1), "RIGHT"),
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
    ]
    groups: dict[str, list[InvoiceLine]] = defaultdict(list)
    adjustments: dict[str, list[InvoiceLine]] = defaultdict(list)
    for line in lines:
        if line.kind == LineKind.ADJUSTMENT and line.adjusts_period is not None:
            period = line.adjusts_period
            key = f"{period.start.date().isoformat()} to {_last_day(period.end)}"
            adjustments[key].append(line)
        else:
            groups[line.product.name if line.product else "Contract"].append(line)

    def group(heading: str, members: list[InvoiceLine]) -> None:
        rows.append([_p(heading, "group"), "", "", "", ""])
        style.append(("SPAN", (0, len(rows) - 1), (-1, len(rows) - 1)))
        style.append(("BACKGROUND", (0, len(rows) - 1), (-1, len(rows) - 1), BAND))
        for line in members:
            # Under its product's heading a line need not repeat the product's name.
            prefix = f"{line.product.name}: " if line.product else ""
            text = line.description.removeprefix(prefix) if prefix else line.description
            rows.append(
                [
                    _p(text[:1].upper() + text[1:], "cell"),
                    quantity(line.quantity),
                    line.unit,
                    price(line.unit_price),
                    amount(line.amount, currency),
                ]
            )
            style.append(("LINEBELOW", (0, len(rows) - 1), (-1, len(rows) - 1), 0.25, RULE))

    for heading, members in groups.items():
        group(heading, members)
    for heading, members in adjustments.items():
        group(f"Prior-period adjustments: {heading}", members)
    if len(rows) == 1:
        rows.append([_p("No charges in this period.", "cell"), "", "", "", ""])
    return Table(
        rows,
        colWidths=[80 * mm, 24 * mm, 20 * mm, 24 * mm, 26 * mm],
        style=TableStyle(style),
        repeatRows=1,
    )


def _totals_table(invoice: Invoice) -> Table:
    currency = invoice.currency
    rows: list[list[str]] = [["Subtotal", amount(invoice.subtotal, currency)]]
    if invoice.credits:
        rows.append(["Credits applied", f"-{amount(invoice.credits, currency)}"])
    for tax in invoice.taxes.all():
        label = {
            "reverse_charge": "VAT 0% (reverse charge)",
            "export": "VAT 0% (export)",
        }.get(tax.reason, f"VAT {tax.rate.normalize():f}%")
        rows.append([f"{label} on {amount(tax.basis, currency)}", amount(tax.amount, currency)])
    rows.append([f"Total due ({currency})", amount(invoice.total, currency)])
    last = len(rows) - 1
    return Table(
        rows,
        colWidths=[60 * mm, 30 * mm],
        hAlign="RIGHT",
        style=TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("TEXTCOLOR", (0, 0), (-1, -1), INK),
                ("LINEABOVE", (0, last), (-1, last), 0.8, INK),
                ("FONTNAME", (0, last), (-1, last), "Helvetica-Bold"),
                ("FONTSIZE", (0, last), (-1, last), 10.5),
                ("TOPPADDING", (0, last), (-1, last), 5),
            ]
        ),
    )
