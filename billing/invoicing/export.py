"""Finance export of invoices and credit notes, JSON or CSV (SPEC §5 "Invoice export").

Amounts are decimal strings at the currency's minor unit; quantities and unit prices are
decimal strings without trailing zeros; dates ISO 8601, periods half-open (end exclusive).
Each line's ``unit_price`` is the net price (quantity × unit price = amount);
``list_unit_price`` is its price before the contract's percent discount (EN 16931 BT-148),
null (an empty CSV cell) when the line is not discounted (issue 14).
CSV has one row per line with the document's fields repeated (a document without lines has
one row with empty line fields).
"""

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.db.models import QuerySet

from ..money import minor_units
from .models import CreditNote, Invoice

CHUNK = 500
INVOICE_FIELDS = [
    "number", "org", "issuer", "status", "currency", "period_start", "period_end",
    "issue_date", "due_date", "subtotal", "credits", "tax_total", "total",
]  # fmt: skip
CREDIT_NOTE_FIELDS = [
    "number", "invoice", "org", "issuer", "currency", "issue_date", "reason",
    "subtotal", "credits", "tax_total", "total",
]  # fmt: skip
LINE_FIELDS = [
    "kind", "product", "description", "quantity", "unit", "unit_price", "list_unit_price",
    "amount",
]  # fmt: skip
TAX_FIELDS = ["rate", "basis", "amount", "reason"]


def money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(Decimal(1).scaleb(-minor_units(currency))):f}"


def number(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def _optional(value: Decimal | None) -> str | None:
    return None if value is None else number(value)


def day(moment: datetime) -> str:
    return moment.date().isoformat()


def invoice_dict(invoice: Invoice) -> dict[str, Any]:
    cur = invoice.currency
    lines = []
    for line in invoice.lines.all():
        adjusted = line.adjusts_period
        lines.append(
            {
                "kind": line.kind,
                "product": line.product.key if line.product else None,
                "description": line.description,
                "quantity": number(line.quantity),
                "unit": line.unit,
                "unit_price": number(line.unit_price),
                "list_unit_price": _optional(line.list_unit_price),
                "amount": money(line.amount, cur),
                "period": {"start": day(adjusted.start), "end": day(adjusted.end)}
                if adjusted
                else None,
            }
        )
    return {
        "number": invoice.number or None,
        "org": invoice.org.slug,
        "issuer": invoice.issuer.key,
        "status": invoice.status,
        "currency": cur,
        "period_start": day(invoice.period_start),
        "period_end": day(invoice.period_end),
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "lines": lines,
        "subtotal": money(invoice.subtotal, cur),
        "credits": money(invoice.credits, cur),
        "taxes": [_tax(t, cur) for t in invoice.taxes.all()],
        "tax_total": money(invoice.tax_total, cur),
        "total": money(invoice.total, cur),
    }


def credit_note_dict(note: CreditNote) -> dict[str, Any]:
    cur = note.currency
    return {
        "number": note.number,
        "invoice": note.invoice.number,
        "org": note.org.slug,
        "issuer": note.issuer.key,
        "currency": cur,
        "issue_date": note.issue_date.isoformat(),
        "reason": note.reason,
        "lines": [
            {
                "kind": line.kind,
                "product": line.product.key if line.product else None,
                "description": line.description,
                "quantity": number(line.quantity),
                "unit": line.unit,
                "unit_price": number(line.unit_price),
                # Credited at the invoice line's net price: its list price is the line's.
                "list_unit_price": _optional(line.invoice_line.list_unit_price),
                "amount": money(line.amount, cur),
            }
            for line in note.lines.select_related("product", "invoice_line")
        ],
        "subtotal": money(note.subtotal, cur),
        "credits": money(note.credits, cur),
        "taxes": [_tax(t, cur) for t in note.taxes.all()],
        "tax_total": money(note.tax_total, cur),
        "total": money(note.total, cur),
    }


def _tax(tax: Any, currency: str) -> dict[str, str]:
    return {
        "rate": number(tax.rate),
        "basis": money(tax.basis, currency),
        "amount": money(tax.amount, currency),
        "reason": tax.reason,
    }


def documents(
    query: QuerySet[Invoice] | QuerySet[CreditNote],
    *,
    on_error: Callable[[Invoice | CreditNote, Exception], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Export dicts, read in chunks so memory stays flat however many documents. With
    ``on_error``, a document that cannot be exported is handed to it and left out, and the
    export goes on (SPEC §8); without, the error propagates."""
    for document in query.iterator(chunk_size=CHUNK):
        try:
            if isinstance(document, Invoice):
                row = invoice_dict(document)
            else:
                row = credit_note_dict(document)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(document, exc)
            continue
        yield row


def write_einvoices(
    query: QuerySet[Invoice] | QuerySet[CreditNote],
    directory: Path,
    fmt: str,
    *,
    on_error: Callable[[Invoice | CreditNote, Exception], None] | None = None,
) -> list[str]:
    """One file per document in ``directory``: ``facturx`` → ``<number>.pdf`` (PDF/A-3 with
    ``factur-x.xml``), ``xrechnung`` → ``<number>.xml``. With ``on_error``, a document that
    cannot be written is handed to it and skipped, and the others are written (SPEC §8);
    without, the error propagates. Returns the file names written."""
    from .einvoice import document_file

    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for document in query.iterator(chunk_size=CHUNK):
        try:
            name, content, _ = document_file(document, fmt)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(document, exc)
            continue
        (directory / name).write_bytes(content)
        written.append(name)
    return written


def write_json(rows: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """A JSON array, written one document at a time."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(row, ensure_ascii=False, indent=2))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_csv(rows: Iterable[dict[str, Any]], out: IO[str], *, credit_notes: bool = False) -> int:
    head = CREDIT_NOTE_FIELDS if credit_notes else INVOICE_FIELDS
    line_fields = [f"line_{f}" for f in LINE_FIELDS]
    if not credit_notes:
        line_fields += ["line_period_start", "line_period_end"]
    tax_fields = [f"tax_{f}" for f in TAX_FIELDS]
    writer = csv.writer(out)
    writer.writerow(head + tax_fields + line_fields)
    count = 0
    for row in rows:
        document = [row[f] if row[f] is not None else "" for f in head]
        # Several rates: their values joined with ';' in the same order.
        taxes = [";".join(str(t[f]) for t in row["taxes"]) for f in TAX_FIELDS]
        for line in row["lines"] or [None]:
            cells = [""] * len(line_fields)
            if line is not None:
                cells = [line[f] if line[f] is not None else "" for f in LINE_FIELDS]
                if not credit_notes:
                    period = line["period"] or {}
                    cells += [period.get("start", ""), period.get("end", "")]
            writer.writerow(document + taxes + cells)
        count += 1
    return count
