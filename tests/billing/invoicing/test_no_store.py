"""Invoice PDFs (API and finance console) answer Cache-Control: no-store."""

from django.test import Client

from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from tenancy.models import Membership, Org
from tenancy.services import staff_user_create

from ...factories import MembershipFactory, UserFactory
from .conftest import AFTER_GRACE, rated_period, worked_charges


def test_pdfs_are_never_stored(world):
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice = finalized(draft.pk, AFTER_GRACE)
    customer = UserFactory.create()
    MembershipFactory.create(
        org=Org.objects.get(slug="acme"), user=customer, role=Membership.Role.VIEWER
    )
    client, finance = Client(), Client()
    client.force_login(customer)
    finance.force_login(staff_user_create(username="fin", role="finance"))
    for response in (
        client.get(f"/api/v1/invoices/{invoice.pk}/pdf"),
        finance.get(f"/finance/invoices/{invoice.pk}/pdf"),
    ):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert "no-store" in response["Cache-Control"]


def finalized(invoice_id, as_of):
    invoices_finalize(invoice_ids=[invoice_id], as_of=as_of)
    return Invoice.objects.get(pk=invoice_id)
