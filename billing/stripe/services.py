"""Push finalized invoices to Stripe, step by step, resumably (SPEC §5, issue 5).

One ``StripeInvoiceSync`` row per invoice records what is done: the customer (on the org),
the Stripe invoice id, each invoice item created, finalization, and the last local terminal
status pushed (void / uncollectible). Each step is saved as soon as Stripe answers, and each
request carries an idempotency key derived from Tessera's ids, so a run that crashes or gets
an error at any step is simply run again: done steps are skipped, and a step whose response
was lost is replayed by Stripe from its key instead of being applied twice. (Stripe keeps keys
24 hours: a sync left failing longer than that is retried from the saved steps, and its one
unsaved step could be applied twice; ``sync_pending`` retries every few minutes.)
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import stripe
from django.db.models import F, Q
from django.utils import timezone
from stripe import RequestOptions
from stripe.params import CustomerCreateParams, CustomerCreateParamsAddress

from audit.services import audit_record
from tenancy.models import Org

from ..invoicing.models import Invoice, InvoiceLine, InvoiceTax, StripeInvoiceSync
from ..money import minor_units
from .client import stripe_client

LEASE = timedelta(minutes=5)
State = StripeInvoiceSync.State
PUSHED_STATUSES = (Invoice.Status.VOID, Invoice.Status.UNCOLLECTIBLE)


class SyncBusy(Exception):
    """Another worker holds this invoice's sync lease."""


@dataclass(frozen=True)
class PlannedItem:
    key: str  # our id for the item, stable across runs
    amount: int  # minor units
    description: str


def to_minor(amount: Decimal, currency: str) -> int:
    minor = amount.scaleb(minor_units(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(minor)


def planned_items(invoice: Invoice) -> list[PlannedItem]:
    """The Stripe invoice items of an invoice: its non-zero lines, its credits (negative) and
    its taxes, so that Stripe's total equals Tessera's to the cent."""
    items = [
        PlannedItem(f"line-{line.pk}", to_minor(line.amount, invoice.currency), line.description)
        for line in InvoiceLine.objects.filter(invoice=invoice).order_by("position")
        if line.amount
    ]
    if invoice.credits:
        items.append(
            PlannedItem("credits", -to_minor(invoice.credits, invoice.currency), "Credits applied")
        )
    for tax in InvoiceTax.objects.filter(invoice=invoice).order_by("rate"):
        if tax.amount:
            label = f"VAT {tax.rate.normalize():f}% on {tax.basis}"
            items.append(
                PlannedItem(f"tax-{tax.pk}", to_minor(tax.amount, invoice.currency), label)
            )
    return items


def _key(invoice: Invoice, step: str) -> RequestOptions:
    return {"idempotency_key": f"tessera-invoice-{invoice.pk}-{step}"}


def _claim(invoice: Invoice) -> StripeInvoiceSync:
    """Take the invoice's sync lease (a timestamp, so no row lock spans Stripe calls)."""
    sync, _ = StripeInvoiceSync.objects.get_or_create(
        invoice=invoice, defaults={"org_id": invoice.org_id}
    )
    now = timezone.now()
    claimed = StripeInvoiceSync.objects.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now), pk=sync.pk
    ).update(locked_until=now + LEASE)
    if not claimed:
        raise SyncBusy(f"invoice {invoice.pk} is being synced by another worker")
    sync.refresh_from_db()
    return sync


def invoice_sync(
    *, invoice_id: int, client: stripe.StripeClient | None = None
) -> StripeInvoiceSync:
    """Make Stripe hold this finalized invoice (customer, items, invoice, finalized, and its
    void / uncollectible status). Resumable and idempotent; raises the Stripe error after
    saving it on the sync row, so a task can retry. Call it outside any transaction: each
    step must be committed as soon as Stripe has answered it."""
    invoice = Invoice.objects.select_related("org").get(pk=invoice_id)
    if invoice.is_draft:
        raise ValueError(f"invoice {invoice_id} is a draft: nothing to send to Stripe")
    client = client or stripe_client()
    sync = _claim(invoice)
    try:
        _run(client, invoice, sync)
    except stripe.StripeError as exc:
        sync.state = State.FAILED
        sync.attempts += 1
        sync.last_error = f"{type(exc).__name__}: {exc.user_message or exc}"[:2000]
        sync.locked_until = None
        sync.save(update_fields=["state", "attempts", "last_error", "locked_until", "updated_at"])
        raise
    sync.state = State.DONE
    sync.last_error = ""
    sync.locked_until = None
    sync.save(update_fields=["state", "last_error", "locked_until", "updated_at"])
    # Every completed sync is on the record (issue 15).
    audit_record(
        action="invoice.stripe_synced",
        object_type="invoice",
        object_key=invoice.number,
        changes={"stripe_invoice": sync.stripe_invoice_id, "items": len(sync.items),
                 "status": sync.pushed_status or "open", "attempts": sync.attempts + 1},
        actor="stripe sync",
        org=invoice.org,
    )  # fmt: skip
    return sync


def _run(client: stripe.StripeClient, invoice: Invoice, sync: StripeInvoiceSync) -> None:
    if invoice.status == Invoice.Status.VOID and not sync.stripe_invoice_id:
        # Voided before it ever reached Stripe: there is nothing to collect there.
        sync.pushed_status = invoice.status
        sync.save(update_fields=["pushed_status", "updated_at"])
        return
    customer_id = customer_ensure(client=client, org=invoice.org)
    currency = invoice.currency.lower()
    if not sync.stripe_invoice_id:
        created = client.v1.invoices.create(
            params={
                "customer": customer_id,
                "currency": currency,
                "collection_method": "send_invoice",
                "days_until_due": invoice.payment_terms_days,
                "number": str(invoice.number),
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "description": f"Invoice {invoice.number}",
                "metadata": {
                    "tessera_invoice_id": str(invoice.pk),
                    "tessera_number": str(invoice.number),
                },
            },
            options=_key(invoice, "create"),
        )
        sync.stripe_invoice_id = str(created.id)
        sync.save(update_fields=["stripe_invoice_id", "updated_at"])
    for item in planned_items(invoice):
        if item.key in sync.items:
            continue
        created_item = client.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "invoice": sync.stripe_invoice_id,
                "amount": item.amount,
                "currency": currency,
                "description": item.description,
                "metadata": {"tessera_invoice_id": str(invoice.pk), "tessera_item": item.key},
            },
            options=_key(invoice, f"item-{item.key}"),
        )
        sync.items[item.key] = str(created_item.id)
        sync.save(update_fields=["items", "updated_at"])
    if not sync.stripe_finalized:
        client.v1.invoices.finalize_invoice(
            sync.stripe_invoice_id,
            params={"auto_advance": False},
            options=_key(invoice, "finalize"),
        )
        sync.stripe_finalized = True
        sync.save(update_fields=["stripe_finalized", "updated_at"])
    if invoice.status in PUSHED_STATUSES and sync.pushed_status != invoice.status:
        if invoice.status == Invoice.Status.VOID:
            client.v1.invoices.void_invoice(sync.stripe_invoice_id, options=_key(invoice, "void"))
        else:
            client.v1.invoices.mark_uncollectible(
                sync.stripe_invoice_id, options=_key(invoice, "uncollectible")
            )
        sync.pushed_status = invoice.status
        sync.save(update_fields=["pushed_status", "updated_at"])


def customer_ensure(*, client: stripe.StripeClient, org: Org) -> str:
    """The org's Stripe customer id, created once (idempotency key from the org's id)."""
    if org.stripe_customer_id:
        return org.stripe_customer_id
    lines = [line.strip() for line in org.billing_address.splitlines() if line.strip()]
    address: CustomerCreateParamsAddress = {"country": org.country.upper()}
    if lines:
        address["line1"] = lines[0]
    if len(lines) > 1:
        address["line2"] = ", ".join(lines[1:])
    params: CustomerCreateParams = {
        "name": org.name,
        "address": address,
        "metadata": {"tessera_org": org.slug, "vat_id": org.vat_id},
    }
    customer = client.v1.customers.create(
        params=params,
        options={"idempotency_key": f"tessera-org-{org.pk}-customer"},
    )
    Org.objects.filter(pk=org.pk, stripe_customer_id="").update(stripe_customer_id=str(customer.id))
    org.refresh_from_db(fields=["stripe_customer_id"])
    return org.stripe_customer_id


def invoices_to_sync() -> list[int]:
    """Finalized (or later) invoices that Stripe does not fully hold yet."""
    not_done = Invoice.objects.exclude(status=Invoice.Status.DRAFT).filter(
        Q(stripe_sync__isnull=True) | ~Q(stripe_sync__state=State.DONE)
    )
    status_to_push = Invoice.objects.filter(
        status__in=PUSHED_STATUSES, stripe_sync__state=State.DONE
    ).exclude(stripe_sync__pushed_status=F("status"))
    ids = set(not_done.values_list("pk", flat=True)) | set(
        status_to_push.values_list("pk", flat=True)
    )
    return sorted(ids)
