"""invoice.finalized and credit_note.issued go out as signed webhooks (SPEC §5), once, in
the transaction that finalizes or credits; a batch finalization emits one per invoice."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from standardwebhooks import Webhook

from billing.invoicing.credit_notes import credit_note_issue
from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from tenancy.models import Org
from webhooks.models import WebhookDelivery, WebhookEvent
from webhooks.services import webhook_endpoint_create

from ...support.receiver import serve
from .conftest import AFTER_GRACE, rated_period, worked_charges


@pytest.fixture
def receiver(settings):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    yield from serve()


def test_finalizing_and_crediting_send_signed_events(
    world, receiver, django_capture_on_commit_callbacks
):
    rated_period(world, charges=worked_charges(world))
    acme = Org.objects.get(slug="acme")
    _, secret = webhook_endpoint_create(org=acme, url=receiver.url)
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    assert not WebhookEvent.objects.exists()  # a draft is not news
    with django_capture_on_commit_callbacks(execute=True):
        invoice = finalized(draft.pk, AFTER_GRACE)
        finalized(draft.pk, AFTER_GRACE)  # again: nothing new
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_issue(
            invoice_id=invoice.pk, reason="Billed twice", as_of=datetime(2026, 11, 20, tzinfo=UTC)
        )
    issued, credited = (
        Webhook(secret.secret).verify(r.body, r.headers) for r in receiver.wait_for(2)
    )
    assert issued["type"] == "invoice.finalized"
    assert Decimal(issued["data"]["tax_total"]) == invoice.tax_total
    assert Decimal(issued["data"]["total"]) == invoice.total
    assert issued["data"] | {"links": None} == {
        "id": invoice.pk,
        "number": "TFR-2026-000001",
        "org": "acme",
        "status": "finalized",
        "currency": "USD",
        "period_start": "2026-10-01T00:00:00Z",
        "period_end": "2026-11-01T00:00:00Z",
        "issue_date": "2026-11-03",
        "due_date": "2026-12-03",
        "subtotal": "13592.7500",
        "credits": "0.0000",
        "tax_total": issued["data"]["tax_total"],
        "total": issued["data"]["total"],
        "links": None,
    }
    assert credited["type"] == "credit_note.issued"
    assert credited["data"]["number"] == note.number
    assert credited["data"]["invoice"] == {"id": invoice.pk, "number": "TFR-2026-000001"}
    assert Decimal(credited["data"]["total"]) == invoice.total
    assert len(receiver.requests) == 2


def test_a_batch_finalization_emits_one_event_per_invoice_in_one_go(
    world, receiver, django_capture_on_commit_callbacks
):
    for slug in ("acme", "globex", "initech"):
        rated_period(world, slug=slug, charges=worked_charges(world))
    webhook_endpoint_create(org=None, url=receiver.url)  # the platform's ERP
    drafts = periods_close(as_of=AFTER_GRACE).drafted
    with django_capture_on_commit_callbacks(execute=True):
        invoices_finalize(invoice_ids=[d.pk for d in drafts], as_of=AFTER_GRACE)
    received = receiver.wait_for(3)
    assert sorted(r.headers["webhook-id"] for r in received) == sorted(
        WebhookEvent.objects.values_list("msg_id", flat=True)
    )
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 3


def finalized(invoice_id, as_of):
    invoices_finalize(invoice_ids=[invoice_id], as_of=as_of)
    return Invoice.objects.get(pk=invoice_id)
