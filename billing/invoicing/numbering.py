"""Gapless document numbers per issuer and calendar year (EU invoicing law).

The counter row is locked and incremented in the caller's transaction, the one that also
stores the number on the document: if that transaction rolls back, so does the counter, so
no number is ever skipped; two transactions never get the same number because the second
waits for the first's row lock. (A database sequence would leave gaps on rollback.)
"""

from django.db import transaction
from django.db.models import F

from ..models import Issuer
from .models import DocumentCounter

Kind = DocumentCounter.Kind


def next_number(*, issuer: Issuer, year: int, kind: str) -> int:
    """The next number of ``kind`` for ``issuer`` in ``year``. Call inside the transaction
    that stores it; the counter row stays locked until that transaction ends."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("next_number must run inside the transaction that uses the number")
    # Creating the row races harmlessly: ON CONFLICT DO NOTHING, then everyone locks it.
    DocumentCounter.objects.bulk_create(
        [DocumentCounter(issuer=issuer, year=year, kind=kind, last=0)], ignore_conflicts=True
    )
    counter = DocumentCounter.objects.select_for_update().get(issuer=issuer, year=year, kind=kind)
    DocumentCounter.objects.filter(pk=counter.pk).update(last=F("last") + 1)
    return counter.last + 1


def format_number(*, issuer: Issuer, year: int, sequence: int, kind: str) -> str:
    """``TFR-2026-000042`` for invoices, ``TFR-CN-2026-000007`` for credit notes."""
    middle = "-CN" if kind == Kind.CREDIT_NOTE else ""
    return f"{issuer.invoice_prefix}{middle}-{year:04d}-{sequence:06d}"
