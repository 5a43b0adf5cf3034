"""Invoices and credit notes as PDFs a finance team would send (reportlab, pure Python).

Rendered on demand from the stored document: a finalized invoice never changes (its legal
details and VAT conversion are frozen on it), so neither does its PDF. A draft is marked DRAFT
on every page and has no number. A void invoice is marked VOID on every page, states when it
was voided, and has no payment section or "Total due": it is no longer payable (as Stripe's
and Orb's void invoices), and has no e-invoice (``einvoice.einvoice_refusal``). Fonts are
TrueType and embedded (Bitstream Vera, shipped with reportlab), so the same PDF becomes a
PDF/A-3 Factur-X (``einvoice.facturx_pdf``).

What every document carries, per the issuer's country (``billing.legal``):
- every page's footer: the issuer's company-law identity (France: legal form and share
  capital, SIREN, RCS city; Germany: register court and number, managing directors) and VAT id;
- the parties with their VAT ids, number, dates, the period, lines, totals; a discounted
  line states its list price and the discount under its description (issue 14: discounts
  shown as such; the unit price is the net one, so quantity × unit price = amount);
- the VAT line per rate with its legal mention (reverse charge, export, OSS), none when out of
  scope; the VAT in national currency with the ECB rate and its date when the currency differs
  (art. 230 Directive 2006/112/EC);
- payment: due date, terms, IBAN and BIC, the Stripe payment link when Stripe holds it; for a
  French issuer's business customer the late-payment rate, the €40 recovery indemnity and the
  early-payment discount statement (L441-9, D441-5 C. com.).
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from ..legal import (
    format_iban,
    french_b2b_mentions,
    issuer_identity_lines,
    national_currency,
    split_address,
)
from ..money import format_money
from ..rating.pricing import discount_percent
from .models import CreditNote, Invoice, LineKind, TaxReason
from .selectors import invoice_credit_parts

INK = colors.HexColor("#1f2937")
MUTED = colors.HexColor("#6b7280")
RULE = colors.HexColor("#d1d5db")
BAND = colors.HexColor("#f3f4f6")
FONT, BOLD = "Vera", "Vera-Bold"
# Tax reasons whose legal mention is printed (domestic VAT is its VAT line; out of scope has
# no VAT line and nothing to say).
MENTIONED = (TaxReason.REVERSE_CHARGE, TaxReason.EXPORT, TaxReason.OSS)


@cache
def _register_fonts() -> None:
    folder = Path(reportlab.__file__).parent / "fonts"
    faces = {FONT: "Vera.ttf", BOLD: "VeraBd.ttf", "Vera-Italic": "VeraIt.ttf",
             "Vera-BoldItalic": "VeraBI.ttf"}  # fmt: skip
    for name, file in faces.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=BOLD, italic="Vera-Italic", boldItalic="Vera-BoldItalic"
    )


_register_fonts()  # at import: every user of STYLES (the deal desk's quote too) has the fonts


def _style(name: str, size: float, leading: float, color: Any = INK, **extra: Any) -> Any:
    return ParagraphStyle(name, fontName=extra.pop("fontName", FONT), fontSize=size,
                          leading=leading, textColor=color, **extra)  # fmt: skip


STYLES = {
    "title": _style("title", 18, 22, fontName=BOLD, alignment=TA_RIGHT, spaceAfter=2),
    "issuer": _style("issuer", 13, 16, fontName=BOLD, spaceAfter=2),
    "body": _style("body", 8.5, 11.5),
    "small": _style("small", 7, 9, MUTED),
    "right": _style("right", 8.5, 11.5, alignment=TA_RIGHT),
    "label": _style("label", 7, 9, MUTED, spaceAfter=1),
    "cell": _style("cell", 8, 10.5),
    "group": _style("group", 8, 10.5, fontName=BOLD),
    "heading": _style("heading", 8, 10.5, fontName=BOLD, spaceBefore=4, spaceAfter=1),
}


def amount(value: Decimal, currency: str) -> str:
    """An amount at the currency's minor unit, grouped (Babel): "1,234.50", "12,345" JPY."""
    return format_money(value, currency, symbol=False)


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


def _last_day(end: Any) -> str:
    return (end - timedelta(days=1)).date().isoformat()


@dataclass
class Row:
    group: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    list_unit_price: Decimal | None = None  # before the discount; None: not discounted


def discount_line(list_unit_price: Decimal | None, unit_price: Decimal) -> str:
    """What a discounted line says under its description: "List price 2.50, 10% discount
    (-0.25)" (EN 16931 BT-148 and BT-147, per unit); "" when it is not discounted."""
    if list_unit_price is None:
        return ""
    percent = discount_percent(list_unit_price, unit_price)
    return (
        f"List price {price(list_unit_price)}, {percent:f}% discount "
        f"(-{price(list_unit_price - unit_price)})"
    )


@dataclass
class Sheet:
    """What one PDF shows, read from an invoice or a credit note."""

    kind: str  # "INVOICE" | "CREDIT NOTE"
    title: str
    draft: bool
    currency: str
    issuer_name: str
    issuer_address: str
    issuer_country: str
    issuer_vat_id: str
    details: dict[str, str]
    customer_name: str
    customer_address: str
    customer_country: str
    customer_vat_id: str
    facts: list[tuple[str, str]]
    rows: list[Row]
    subtotal: Decimal
    credits: Decimal
    taxes: list[Any]
    total: Decimal
    total_label: str
    national: tuple[str, Decimal, Decimal, date] | None  # currency, VAT, rate, rate date
    notes: list[str] = field(default_factory=list)
    payment: list[str] = field(default_factory=list)
    credit_parts: list[tuple[str, Decimal]] = field(default_factory=list)  # (label, amount)
    void: bool = False  # marked VOID on every page


def _capital(details: dict[str, str], country: str) -> str:
    capital = details.get("share_capital")
    currency = national_currency(country)
    return format_money(Decimal(capital), currency) if capital and currency else ""


def identity(name: str, country: str, details: dict[str, str], address: str = "") -> list[str]:
    return issuer_identity_lines(
        name=name,
        country=country,
        details=details,
        capital=_capital(details, country),
        seat=split_address(address, country).city if address else "",
    )


def _payment_lines(
    details: dict[str, str], *, due: str, terms: str, reference: str, link: str
) -> list[str]:
    lines = [f"Payment terms: {terms}" + (f", due by {due}" if due else "") + "."]
    if details.get("payment_terms_text"):
        lines.append(details["payment_terms_text"])
    if details.get("iban"):
        bank = f"Bank transfer to IBAN {format_iban(details['iban'])}"
        if details.get("bic"):
            bank += f", BIC {details['bic']}"
        lines.append(f"{bank}; please quote {reference}.")
    if link:
        lines.append(f"Pay online: {link}")
    return lines


def _notes(reason_mentions: list[str], country: str, b2b: bool, details: dict[str, str]) -> list:
    notes = list(reason_mentions)
    if country == "FR" and b2b:
        notes += french_b2b_mentions(details)
    return notes


def _without_product(description: str, product: Any) -> str:
    """Under its product's heading a line need not repeat the product's name."""
    prefix = f"{product.name}: " if product else ""
    text = description.removeprefix(prefix) if prefix else description
    return text[:1].upper() + text[1:]


def invoice_sheet(invoice: Invoice) -> Sheet:
    currency = invoice.currency
    details = dict(invoice.issuer_details or {})
    if invoice.is_draft:
        from ..legal import details_snapshot

        details = details_snapshot(invoice.issuer)
    taxes = list(invoice.taxes.all())
    rows = []
    for line in invoice.lines.all().select_related("product", "adjusts_period"):
        if line.kind == LineKind.ADJUSTMENT and line.adjusts_period is not None:
            period = line.adjusts_period
            group = (
                f"Prior-period adjustments: {period.start.date().isoformat()} to "
                f"{_last_day(period.end)}"
            )
        else:
            group = line.product.name if line.product else "Contract"
        rows.append(Row(group, _without_product(line.description, line.product), line.quantity,
                        line.unit, line.unit_price, line.amount,
                        line.list_unit_price))  # fmt: skip
    national = None
    if invoice.tax_currency and invoice.tax_total_national is not None and invoice.tax_fx_date:
        national = (invoice.tax_currency, invoice.tax_total_national,
                    invoice.tax_fx_rate or Decimal(0), invoice.tax_fx_date)  # fmt: skip
    link = ""
    sync = getattr(invoice, "stripe_sync", None) if invoice.pk else None
    if sync is not None:
        link = sync.hosted_invoice_url
    reason_mentions = [t.mention for t in taxes if t.mention and t.reason in MENTIONED]
    b2b = any(t.reason != TaxReason.OSS for t in taxes)
    number = invoice.number or "DRAFT (numbered when finalized)"
    void = invoice.status == Invoice.Status.VOID
    voided = invoice.status_changed_at.date().isoformat() if invoice.status_changed_at else ""
    payment = _payment_lines(
        details,
        due=invoice.due_date.isoformat() if invoice.due_date else "",
        terms=f"net {invoice.payment_terms_days} days",
        reference=invoice.number or "the invoice number",
        link=link,
    )
    if void:
        when = f" on {voided}" if voided else ""
        payment = [f"This invoice was void{when}: it is no longer payable; nothing is owed on it."]
        replaced = getattr(invoice, "replaced_by", None)  # its reissue, once drafted
        if replaced is not None and replaced.number:
            payment.append(f"It is replaced by invoice {replaced.number}.")
    return Sheet(
        kind="INVOICE",
        title=f"Invoice {invoice.number}" if invoice.number else f"Draft invoice #{invoice.pk}",
        draft=invoice.is_draft,
        currency=currency,
        issuer_name=invoice.issuer_name,
        issuer_address=invoice.issuer_address,
        issuer_country=invoice.issuer_country,
        issuer_vat_id=invoice.issuer_vat_id,
        details=details,
        customer_name=invoice.customer_name,
        customer_address=invoice.customer_address,
        customer_country=invoice.customer_country,
        customer_vat_id=invoice.customer_vat_id,
        facts=[
            ("Invoice number", number),
            ("Issue date", invoice.issue_date.isoformat() if invoice.issue_date else "—"),
            ("Due date", invoice.due_date.isoformat() if invoice.due_date else "—"),
            (
                "Billing period",
                f"{invoice.period_start.date().isoformat()} to {_last_day(invoice.period_end)}",
            ),
            *(
                [("Kind", "Final adjustment (late usage)")]
                if invoice.kind == Invoice.Kind.FINAL_ADJUSTMENT
                else []
            ),
            *([("Status", f"VOID {voided}".strip())] if void else []),
        ],  # fmt: skip
        rows=rows,
        subtotal=invoice.subtotal,
        credits=invoice.credits,
        taxes=taxes,
        total=invoice.total,
        total_label=f"Total (void, {currency})" if void else f"Total due ({currency})",
        national=national,
        notes=_notes(reason_mentions, invoice.issuer_country, b2b, details),
        payment=payment,
        credit_parts=[
            (p.label, p.amount) for p in invoice_credit_parts(org=invoice.org, invoice=invoice)
        ],
        void=void,
    )


def credit_note_sheet(note: CreditNote) -> Sheet:
    from .fx import credit_note_tax_national

    invoice = note.invoice
    details = dict(invoice.issuer_details or {})
    taxes = list(note.taxes.all())
    # A credited line keeps its invoice line's net price, so its list price too.
    rows = [
        Row(line.product.name if line.product else "Contract",
            _without_product(line.description, line.product), line.quantity, line.unit,
            line.unit_price, line.amount, line.invoice_line.list_unit_price)
        for line in note.lines.all().select_related("product", "invoice_line")
    ]  # fmt: skip
    national = None
    vat = credit_note_tax_national(note)
    if vat is not None and invoice.tax_fx_date:
        national = (invoice.tax_currency, vat, invoice.tax_fx_rate or Decimal(0),
                    invoice.tax_fx_date)  # fmt: skip
    reason_mentions = [t.mention for t in taxes if t.mention and t.reason in MENTIONED]
    issued = invoice.issue_date.isoformat() if invoice.issue_date else ""
    return Sheet(
        kind="CREDIT NOTE",
        title=f"Credit note {note.number}",
        draft=False,
        currency=note.currency,
        issuer_name=invoice.issuer_name,
        issuer_address=invoice.issuer_address,
        issuer_country=invoice.issuer_country,
        issuer_vat_id=invoice.issuer_vat_id,
        details=details,
        customer_name=invoice.customer_name,
        customer_address=invoice.customer_address,
        customer_country=invoice.customer_country,
        customer_vat_id=invoice.customer_vat_id,
        facts=[
            ("Credit note number", note.number),
            ("Issue date", note.issue_date.isoformat()),
            ("Credits invoice", f"{invoice.number} of {issued}"),
            (
                "Billing period",
                f"{invoice.period_start.date().isoformat()} to {_last_day(invoice.period_end)}",
            ),
        ],  # fmt: skip
        rows=rows,
        subtotal=note.subtotal,
        credits=note.credits,
        taxes=taxes,
        total=note.total,
        total_label=f"Total credited ({note.currency})",
        national=national,
        notes=[f"Reason: {note.reason}", *reason_mentions],
        payment=[
            f"This credit note reduces what is owed on invoice {invoice.number}; an amount "
            "already paid is refunded or carried to the next invoice."
        ],
    )


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's PDF bytes."""
    return render_sheet(invoice_sheet(invoice))


def render_credit_note_pdf(note: CreditNote) -> bytes:
    """The credit note's PDF bytes."""
    return render_sheet(credit_note_sheet(note))


def render_document_pdf(document: Invoice | CreditNote) -> bytes:
    if isinstance(document, CreditNote):
        return render_credit_note_pdf(document)
    return render_invoice_pdf(document)


def render_sheet(sheet: Sheet) -> bytes:
    _register_fonts()
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=24 * mm,
        title=sheet.title,
        author=sheet.issuer_name,
        subject=sheet.title,
        creator="Tessera",
        invariant=True,
        initialFontName=FONT,  # else the canvas lists Helvetica, a font PDF/A cannot embed
    )
    story: list[Any] = [_header(sheet), Spacer(1, 7 * mm), _parties(sheet), Spacer(1, 6 * mm)]
    story.append(_lines_table(sheet))
    story.append(Spacer(1, 4 * mm))
    story.append(_totals_table(sheet))
    story.append(Spacer(1, 5 * mm))
    tail: list[Any] = []
    if sheet.notes:
        tail.append(_p("Legal mentions", "heading"))
        tail += [_p(note, "body") for note in sheet.notes]
    if sheet.payment:
        tail.append(_p("Payment", "heading"))
        tail += [_p(line, "body") for line in sheet.payment]
    story.append(KeepTogether(tail))
    parts = " · ".join(
        identity(sheet.issuer_name, sheet.issuer_country, sheet.details, sheet.issuer_address)
    )
    parts += f" · VAT {sheet.issuer_vat_id}" if sheet.issuer_vat_id else ""
    footer = _wrap(parts.split(" · "), width=A4[0] - 36 * mm, size=6.5)

    def decorate(canvas: Canvas, document: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 6.5)
        canvas.setFillColor(MUTED)
        y = 11 * mm + 3 * mm * len(footer)
        for line in footer:
            canvas.drawString(18 * mm, y, line)
            y -= 3 * mm
        canvas.drawRightString(A4[0] - 18 * mm, 8 * mm, f"{sheet.title} · page {document.page}")
        if sheet.draft or sheet.void:
            canvas.setFont(BOLD, 90)
            canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.12))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, "VOID" if sheet.void else "DRAFT")
        canvas.restoreState()

    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def _wrap(parts: list[str], *, width: float, size: float) -> list[str]:
    """``parts`` joined with " · " into as few lines as fit ``width`` points."""
    lines: list[str] = []
    for part in parts:
        candidate = f"{lines[-1]} · {part}" if lines else part
        if lines and pdfmetrics.stringWidth(candidate, FONT, size) <= width:
            lines[-1] = candidate
        else:
            lines.append(part)
    return lines


def _header(sheet: Sheet) -> Table:
    issuer = [_p(sheet.issuer_name, "issuer")]
    if sheet.issuer_address:
        issuer.append(_p(sheet.issuer_address))
    issuer.append(_p(f"Country: {sheet.issuer_country}"))
    if sheet.issuer_vat_id:
        issuer.append(_p(f"VAT ID: {sheet.issuer_vat_id}"))
    contact = " · ".join(
        v for v in (sheet.details.get("contact_email"), sheet.details.get("contact_phone")) if v
    )
    if contact:
        issuer.append(_p(contact))
    return heading(issuer, sheet.kind, sheet.facts)


def heading(left: Sequence[Flowable], title: str, facts: list[tuple[str, str]]) -> Table:
    """The top of a document: who issues it on the left; its title and facts on the right."""
    _register_fonts()
    right: list[Any] = [Paragraph(title, STYLES["title"])]
    right.append(
        Table(
            [[_p(k, "label"), _p(v, "right")] for k, v in facts],
            colWidths=[28 * mm, 52 * mm],
            style=TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), FONT),
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
        colWidths=[94 * mm, 80 * mm],
        style=TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ]
        ),  # fmt: skip
    )


def _parties(sheet: Sheet) -> Table:
    label = "BILL TO" if sheet.kind == "INVOICE" else "CREDIT TO"
    bill_to: list[Any] = [_p(label, "label"), _p(sheet.customer_name, "group")]
    if sheet.customer_address:
        bill_to.append(_p(sheet.customer_address))
    bill_to.append(_p(f"Country: {sheet.customer_country}"))
    if sheet.customer_vat_id:
        bill_to.append(_p(f"VAT ID: {sheet.customer_vat_id}"))
    return band(bill_to)


def band(cells: Sequence[Flowable]) -> Table:
    """A shaded box across the page: the customer's details."""
    return Table(
        [[cells]],
        colWidths=[174 * mm],
        style=TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("BACKGROUND", (0, 0), (-1, -1), BAND),
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), 8),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        ),
    )


def _lines_table(sheet: Sheet) -> Table:
    """Lines grouped by product (current period first), then adjustments by period."""
    currency = sheet.currency
    rows: list[list[Any]] = [
        [_p("Description", "label"), _p("Quantity", "label"), _p("Unit", "label"),
         _p("Unit price", "label"), _p(f"Amount ({currency})", "label")]
    ]  # fmt: skip
    style: list[Any] = [
        ("FONTNAME", (0, 0), (-1, -1), FONT),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("ALIGN", (3, 0), (4, -1), "RIGHT"),
        ("FONTSIZE", (0, 0), (-1, -1), 8),
    ]
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in sheet.rows:
        groups[row.group].append(row)
    # Current-period groups first, then prior-period adjustments (as drafted).
    ordered = sorted(groups.items(), key=lambda item: item[0].startswith("Prior-period"))
    for heading, members in ordered:
        rows.append([_p(heading, "group"), "", "", "", ""])
        style.append(("SPAN", (0, len(rows) - 1), (-1, len(rows) - 1)))
        style.append(("BACKGROUND", (0, len(rows) - 1), (-1, len(rows) - 1), BAND))
        for row in members:
            described: Any = _p(row.description, "cell")
            discount = discount_line(row.list_unit_price, row.unit_price)
            if discount:
                described = [described, _p(discount, "small")]
            rows.append([described, quantity(row.quantity), _p(row.unit, "cell"),
                         price(row.unit_price), amount(row.amount, currency)])  # fmt: skip
            style.append(("LINEBELOW", (0, len(rows) - 1), (-1, len(rows) - 1), 0.25, RULE))
    if len(rows) == 1:
        rows.append([_p("No charges in this period.", "cell"), "", "", "", ""])
    return Table(
        rows,
        colWidths=[78 * mm, 24 * mm, 24 * mm, 22 * mm, 26 * mm],
        style=TableStyle(style),
        repeatRows=1,
    )


def tax_label(tax: Any, currency: str) -> str:
    """ "VAT 20% on 13,092.75"; reverse charge and export say so."""
    label = {
        TaxReason.REVERSE_CHARGE: "VAT 0% (reverse charge)",
        TaxReason.EXPORT: "VAT 0% (export)",
        TaxReason.OSS: f"VAT {tax.rate.normalize():f}% (OSS)",
    }.get(tax.reason, f"VAT {tax.rate.normalize():f}%")
    return f"{label} on {amount(tax.basis, currency)}"


def _totals_table(sheet: Sheet) -> Table:
    currency = sheet.currency
    rows: list[list[str]] = [["Subtotal", amount(sheet.subtotal, currency)]]
    if sheet.credit_parts:  # credits named per grant
        rows += [[label, f"-{amount(part, currency)}"] for label, part in sheet.credit_parts]
    elif sheet.credits:
        label = "Credits applied" if sheet.kind == "INVOICE" else "Invoice credits given back"
        rows.append([label, f"-{amount(sheet.credits, currency)}"])
    for tax in sheet.taxes:
        if tax.reason == TaxReason.OUT_OF_SCOPE:
            continue  # out of scope of VAT: no VAT line (SPEC §6 step 8)
        rows.append([tax_label(tax, currency), amount(tax.amount, currency)])
    rows.append([sheet.total_label, amount(sheet.total, currency)])
    last = len(rows) - 1
    if sheet.national:
        national, vat, rate, day = sheet.national
        rows.append([f"VAT in {national}", f"{amount(vat, national)} {national}"])
        rows.append([f"at 1 {national} = {rate.normalize():f} {currency}", f"ECB, {day}"])
    return Table(
        rows,
        colWidths=[66 * mm, 34 * mm],
        hAlign="RIGHT",
        style=TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                ("TEXTCOLOR", (0, 0), (-1, -1), INK),
                ("LINEABOVE", (0, last), (-1, last), 0.8, INK),
                ("FONTNAME", (0, last), (-1, last), BOLD),
                ("FONTSIZE", (0, last), (-1, last), 10),
                ("TOPPADDING", (0, last), (-1, last), 5),
                ("TEXTCOLOR", (0, last + 1), (-1, -1), MUTED),
                ("FONTSIZE", (0, last + 1), (-1, -1), 7.5),
            ]
        ),
    )
