"""``/api/v1/deals/...`` and ``/api/v1/capacity``: the same rules as the pages, JSON errors
with stable codes."""

import pytest
from rest_framework.test import APIClient

from billing.deals.models import Deal
from billing.models import Contract
from tenancy.models import ApiKey, Org
from tenancy.services import api_key_create

from .conftest import draft

BODY = {
    "org": "acme",
    "title": "H100 expansion",
    "currency": "USD",
    "rate_card": "list-usd",
    "issuer": "tessera-fr",
    "lines": [
        {"product": "h100", "quantity": 8, "start": "2027-01-01", "term_months": 3,
         "unit_price": "2.00", "ramp": [{"from": "2027-02-01", "quantity": 16}]},
    ],
}  # fmt: skip


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_create_then_walk_the_whole_path(am, finance):
    created = api(am).post("/api/v1/deals", BODY, format="json")

    assert created.status_code == 201, created.data
    body = created.json()
    deal_id = body["deal"]["id"]
    assert body["economics"]["total_contract_value"] == "57216.0000"
    assert body["economics"]["discount_percent"] == "20.00"
    assert body["fit"]["shortfalls"] == ["short by 4 GPUs in 2027-02 (H100 eu-north)"]
    assert body["actions"] == {
        "edit": True, "submit": True, "approve": False, "reject": False, "sign": False,
    }  # fmt: skip

    submitted = api(am).post(f"/api/v1/deals/{deal_id}/submit")
    approved = api(finance).post(f"/api/v1/deals/{deal_id}/approve", {"comment": "ok"})
    signed = api(finance).post(f"/api/v1/deals/{deal_id}/sign")
    again = api(am).post(f"/api/v1/deals/{deal_id}/sign")

    assert submitted.json()["deal"]["status"] == "pending_approval"
    assert approved.json()["deal"]["status"] == "approved"
    assert (
        signed.json()["deal"]["contract"] == again.json()["deal"]["contract"] == f"deal-{deal_id}"
    )
    assert Contract.objects.filter(key=f"deal-{deal_id}").count() == 1
    assert [e["action"] for e in again.json()["events"]] == [
        "created", "submitted", "approved", "signed",
    ]  # fmt: skip


def test_simulate(am):
    deal = draft(am)

    response = api(am).get(f"/api/v1/deals/{deal.pk}/simulate?months=3")

    assert response.status_code == 200
    assert [m["month"] for m in response.json()["months"]] == sorted(
        m["month"] for m in response.json()["months"]
    )
    assert len(response.json()["months"]) == 3
    assert api(am).get(f"/api/v1/deals/{deal.pk}/simulate?months=99").json()["code"] == (
        "validation_error"
    )


def test_update_only_a_draft(am, finance):
    deal = draft(am)
    body = {**BODY, "title": "Renamed"}
    body.pop("org")

    assert api(am).put(f"/api/v1/deals/{deal.pk}", body, format="json").status_code == 200
    api(am).post(f"/api/v1/deals/{deal.pk}/submit")
    refused = api(am).put(f"/api/v1/deals/{deal.pk}", body, format="json")

    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_transition")
    assert api(finance).put(f"/api/v1/deals/{deal.pk}", body, format="json").status_code == 403


def test_validation_errors_name_the_field(am):
    body = {
        **BODY,
        "lines": [{**BODY["lines"][0], "ramp": [{"from": "2027-09-01", "quantity": 4}]}],
    }

    response = api(am).post("/api/v1/deals", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["fields"] == {
        "lines.0.ramp": ["2027-09-01 is outside the line's term (2027-01-01, 2027-04-01)"]
    }
    assert not Deal.objects.exists()


def test_an_account_manager_cannot_draft_or_read_for_another_org(am, other_am):
    deal = draft(am)

    for_acme = api(other_am).post("/api/v1/deals", BODY, format="json")
    for_nobody = api(other_am).post("/api/v1/deals", {**BODY, "org": "nope"}, format="json")

    assert (for_acme.status_code, for_acme.json()["code"]) == (403, "permission_denied")
    assert for_acme.json()["message"] == for_nobody.json()["message"].replace("nope", "acme")
    assert api(other_am).get(f"/api/v1/deals/{deal.pk}").status_code == 403
    assert api(other_am).get("/api/v1/deals/424242").status_code == 403
    assert api(other_am).get("/api/v1/deals").json()["results"] == []
    assert Deal.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/deals"), ("post", "/api/v1/deals"), ("get", "/api/v1/deals/{id}"),
        ("put", "/api/v1/deals/{id}"), ("get", "/api/v1/deals/{id}/simulate"),
        ("post", "/api/v1/deals/{id}/submit"), ("post", "/api/v1/deals/{id}/approve"),
        ("post", "/api/v1/deals/{id}/reject"), ("post", "/api/v1/deals/{id}/sign"),
        ("get", "/api/v1/capacity"),
    ],
)  # fmt: skip
def test_customers_operators_and_org_keys_get_403(am, customer, operator, method, path):
    deal = draft(am)
    key = api_key_create(name="k", org=Org.objects.get(slug="acme"), scope=ApiKey.Scope.READ)
    by_key = APIClient()
    by_key.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")

    for client in (api(customer), api(operator), by_key):
        response = getattr(client, method)(path.format(id=deal.pk), {}, format="json")
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert Deal.objects.get().status == Deal.Status.DRAFT


def test_finance_cannot_approve_a_deal_it_drafted(am, finance):
    finance.groups.add(*am.groups.all())  # finance who is also an account manager
    Org.objects.filter(slug="acme").update(account_manager=finance)
    deal = draft(finance)
    api(finance).post(f"/api/v1/deals/{deal.pk}/submit")

    response = api(finance).post(f"/api/v1/deals/{deal.pk}/approve")

    assert response.status_code == 403
    assert Deal.objects.get().status == Deal.Status.PENDING_APPROVAL


def test_capacity(am):
    response = api(am).get("/api/v1/capacity?from=2027-01&months=2")

    assert response.status_code == 200
    (pool,) = response.json()["results"]
    assert (pool["gpu_model"], pool["region"]) == ("H100", "eu-north")
    assert [
        (m["month"], m["installed"], m["reserved"], m["available"]) for m in pool["months"]
    ] == [
        ("2027-01-01", "100.000000", "88.000000", "12.000000"),
        ("2027-02-01", "100.000000", "88.000000", "12.000000"),
    ]
    assert pool["months"][0]["holders"][0]["name"] == "another org"
    assert api(am).get("/api/v1/capacity?from=January").json()["fields"] == {
        "from": ["Use YYYY-MM."]
    }
