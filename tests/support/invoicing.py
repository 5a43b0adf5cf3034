"""Shortcuts for tests that need one finalized invoice."""

from typing import Any

from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice


def finalize(invoice_id: int, **options: Any) -> Invoice:
    """The invoice after ``invoices_finalize`` of it alone (``options``: as_of, user)."""
    invoices_finalize(invoice_ids=[invoice_id], **options)
    return Invoice.objects.get(pk=invoice_id)
