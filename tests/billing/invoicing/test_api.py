"""Invoicing API: finance reads and acts; customers read their own finalized invoices."""

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from pypdf import PdfReader
from rest_framework.test import APIClient

from billing.invoicing.drafting import periods_close
from billing.invoicing.models import Invoice
from billing.invoicing.status import invoice_void
from tenancy.models import Membership, Org
from tenancy.services import api_key_create

from ...factories import UserFactory
from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, rated_period, worked_charges


@pytest.fixture
def invoices(world):
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    rated_period(world, slug="globex", charges=worked_charges(world))
    drafts = periods_close(as_of=AFTER_GRACE).drafted
    finalize(drafts[0].pk, as_of=AFTER_GRACE)
    return {i.org.slug: Invoice.objects.get(pk=i.pk) for i in drafts}


def _staff(role: str) -> APIClient:
    user: Any = UserFactory.create(username=role)
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    client = APIClient()
    client.force_authenticate(user)
    return client


def _member(slug: str) -> APIClient:
    user: Any = UserFactory.create(username=f"owner-{slug}")
    Membership.objects.create(org=Org.objects.get(slug=slug), user=user, role="owner")
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_finance_lists_every_invoice_with_filters(invoices):
    finance = _staff("finance")

    everything = finance.get("/api/v1/invoices", {"period": "2026-10"}).json()["results"]
    drafts = finance.get("/api/v1/invoices", {"status": "draft"}).json()["results"]

    assert sorted((i["org"], i["status"]) for i in everything) == [
        ("acme", "finalized"), ("globex", "draft")]  # fmt: skip
    assert [i["org"] for i in drafts] == ["globex"]


def test_finance_finalizes_voids_and_credits_through_the_api(invoices):
    finance = _staff("finance")
    globex = invoices["globex"]

    finalized = finance.post(f"/api/v1/invoices/{globex.pk}/finalize").json()
    no_reason = finance.post(f"/api/v1/invoices/{globex.pk}/void", {}, format="json")
    note = finance.post(f"/api/v1/invoices/{globex.pk}/credit-notes", {"reason": "goodwill"},
                        format="json")  # fmt: skip
    void = finance.post(f"/api/v1/invoices/{globex.pk}/void", {"reason": "wrong org"},
                        format="json")  # fmt: skip

    assert finalized["number"] == "TFR-2026-000002"
    assert no_reason.status_code == 400
    assert note.status_code == 201
    assert note.json()["number"] == "TFR-CN-2026-000001"
    assert (void.status_code, void.json()["status"]) == (200, "void")


def test_customers_read_their_own_finalized_invoices_only(invoices):
    acme = _member("acme")

    listed = acme.get("/api/v1/invoices").json()["results"]
    mine = acme.get(f"/api/v1/invoices/{invoices['acme'].pk}")
    theirs = acme.get(f"/api/v1/invoices/{invoices['globex'].pk}")
    pdf = acme.get(f"/api/v1/invoices/{invoices['acme'].pk}/pdf")

    assert [i["number"] for i in listed] == ["TFR-2026-000001"]
    assert mine.status_code == 200
    assert theirs.status_code == 404
    assert (pdf.status_code, pdf["Content-Type"], pdf.content[:5]) == (
        200,
        "application/pdf",
        b"%PDF-",
    )
    # its invoice is a draft
    assert _member("globex").get("/api/v1/invoices").json()["results"] == []


def test_customers_and_keys_cannot_act_or_export(invoices):
    acme = _member("acme")
    key = APIClient()
    raw = api_key_create(org=invoices["acme"].org, name="r", scope="read").raw_key
    key.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    globex = invoices["globex"]

    assert acme.post(f"/api/v1/invoices/{globex.pk}/finalize").status_code == 403
    assert acme.get("/api/v1/invoices/export", {"period": "2026-10"}).status_code == 403
    assert _staff("operator").post(f"/api/v1/invoices/{globex.pk}/finalize").status_code == 403
    assert [i["org"] for i in key.get("/api/v1/invoices").json()["results"]] == ["acme"]
    assert Invoice.objects.get(pk=globex.pk).status == "draft"


def test_finance_export_from_the_api_matches_the_command(invoices):
    finance = _staff("finance")

    as_json = finance.get("/api/v1/invoices/export", {"period": "2026-10"}).json()
    as_csv = finance.get("/api/v1/invoices/export", {"period": "2026-10", "format": "csv",
                                                     "issuer": "tessera-fr"})  # fmt: skip

    assert [i["number"] for i in as_json] == ["TFR-2026-000001"]
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode())))
    assert {r["number"] for r in rows} == {"TFR-2026-000001"}
    assert len(rows) == 5


def test_a_void_invoice_has_no_e_invoice_only_its_pdf_marked_void(invoices):
    acme = invoices["acme"]
    invoice_void(invoice_id=acme.pk, reason="billed twice")
    voided_at = Invoice.objects.get(pk=acme.pk).status_changed_at
    assert voided_at is not None
    voided_on = voided_at.date().isoformat()
    customer, finance = _member("acme"), _staff("finance")

    for client in (customer, finance):
        for fmt in ("facturx", "xrechnung"):
            refused = client.get(f"/api/v1/invoices/{acme.pk}/{fmt}")
            assert (refused.status_code, refused.json()["code"]) == (409, "invoice_void"), fmt
            assert f"void on {voided_on}: it is no longer payable" in refused.json()["message"]
        pdf = client.get(f"/api/v1/invoices/{acme.pk}/pdf")
        assert (pdf.status_code, pdf.content[:5]) == (200, b"%PDF-")
        assert "VOID" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)


def test_the_api_export_leaves_void_invoices_out_unless_asked_for(invoices):
    invoice_void(invoice_id=invoices["acme"].pk, reason="billed twice")
    finance = _staff("finance")

    default = finance.get("/api/v1/invoices/export", {"period": "2026-10"}).json()
    asked = finance.get("/api/v1/invoices/export", {"period": "2026-10", "status": "void"}).json()

    assert default == []  # globex's is a draft, acme's void
    assert [(i["number"], i["status"]) for i in asked] == [("TFR-2026-000001", "void")]
