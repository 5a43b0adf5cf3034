"""Row locks of invoicing: invoices and document counters. The only place
``select_for_update`` appears for them; several rows are locked in one statement in pk order.
Periods are locked through ``billing.lock_objects`` (always before invoices and counters).
"""

from collections.abc import Iterable

from django.db.models import Q

from .models import DocumentCounter, Invoice, StripeEvent


def lock_invoice(*, invoice_id: int) -> Invoice:
    """Lock one invoice's row. Raises ``Invoice.DoesNotExist``."""
    return Invoice.objects.select_for_update().get(pk=invoice_id)


def lock_invoices(*, invoice_ids: Iterable[int]) -> dict[int, Invoice]:
    """Lock the invoices in one statement, in pk order; returns them by pk (a missing one is
    absent)."""
    query = Invoice.objects.select_for_update().filter(pk__in=list(invoice_ids))
    return {invoice.pk: invoice for invoice in query.order_by("pk")}


def lock_document_counters(*, keys: Iterable[tuple[int, int]], kind: str) -> list[DocumentCounter]:
    """Lock the ``kind`` counters of the (issuer id, year) ``keys`` that exist, in pk order."""
    wanted = Q()
    for issuer_id, year in keys:
        wanted |= Q(issuer_id=issuer_id, year=year)
    return list(
        DocumentCounter.objects.select_for_update().filter(wanted, kind=kind).order_by("pk")
    )


def lock_stripe_event(*, event_pk: int) -> StripeEvent:
    """Lock one received Stripe event: it is applied once, by one request."""
    return StripeEvent.objects.select_for_update().get(pk=event_pk)
