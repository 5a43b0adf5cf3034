"""Gapless document numbers per issuer and calendar year (EU invoicing law).

The counter row is locked and incremented in the caller's transaction, the one that also
stores the number on the document: if that transaction rolls back, so does the counter, so
no number is ever skipped; two transactions never get the same number because the second
waits for the first's row lock. (A database sequence would leave gaps on rollback.) A batch
takes a block of numbers per (issuer, year) at once, under the same lock and rollback rules.
"""

from collections.abc import Mapping

from django.db import transaction
from django.db.models import F

from ..models import Issuer
from .lock_objects import lock_document_counters
from .models import DocumentCounter

Kind = DocumentCounter.Kind


def next_number(*, issuer: Issuer, year: int, kind: str) -> int:
    """The next number of ``kind`` for ``issuer`` in ``year``. Call inside the transaction
    that stores it; the counter row stays locked until that transaction ends."""
    return reserve_numbers(blocks={(issuer.pk, year): 1}, kind=kind)[(issuer.pk, year)]


def reserve_numbers(
    *, blocks: Mapping[tuple[int, int], int], kind: str
) -> dict[tuple[int, int], int]:
    """Take ``count`` consecutive numbers of ``kind`` for each ``(issuer id, year): count`` in
    ``blocks``; returns the first number of each block. Call inside the transaction that stores
    every one of them: the counter rows stay locked until it ends, and a rollback gives the
    whole block back. The caller hands the numbers out in a deterministic order.

    Counter rows are created in (issuer, year) order and locked in pk order, in one statement,
    so two batches that need the same counters wait for each other and never deadlock."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("next_number must run inside the transaction that uses the number")
    keys = sorted(key for key, count in blocks.items() if count > 0)
    if not keys:
        return {}
    # Creating a row races harmlessly: ON CONFLICT DO NOTHING, then everyone locks it.
    DocumentCounter.objects.bulk_create(
        [DocumentCounter(issuer_id=issuer_id, year=year, kind=kind, last=0)
         for issuer_id, year in keys],
        ignore_conflicts=True,
    )  # fmt: skip
    firsts = {}
    for counter in lock_document_counters(keys=keys, kind=kind):
        key = (counter.issuer_id, counter.year)
        DocumentCounter.objects.filter(pk=counter.pk).update(last=F("last") + blocks[key])
        firsts[key] = counter.last + 1
    return firsts


def format_number(*, issuer: Issuer, year: int, sequence: int, kind: str) -> str:
    """``TFR-2026-000042`` for invoices, ``TFR-CN-2026-000007`` for credit notes."""
    middle = "-CN" if kind == Kind.CREDIT_NOTE else ""
    return f"{issuer.invoice_prefix}{middle}-{year:04d}-{sequence:06d}"
