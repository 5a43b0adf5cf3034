"""``/api/v1/deals/...`` and ``/api/v1/capacity``: the same rules as the pages, JSON errors
with stable codes."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.deals.models import Deal
from billing.models import Contract
from tenancy.models import ApiKey, Org
from tenancy.services import api_key_create

from .conftest import draft

LINE = {
    "product": "h100", "quantity": 8, "start": "2027-01-01", "term_months": 3,
    "unit_price": "2.00", "ramp": [{"from": "2027-02-01", "quantity": 16}],
}  # fmt: skip
BODY = {
    "org": "acme",
    "title": "H100 expansion",
    "currency": "USD",
    "rate_card": "list-usd",
    "issuer": "tessera-fr",
    "lines": [LINE],
}


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
        "lines": [{**LINE, "ramp": [{"from": "2027-09-01", "quantity": 4}]}],
    }

    response = api(am).post("/api/v1/deals", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["fields"] == {
        "lines.0.ramp": [
            "H100 GPU-hour: the ramp step on 2027-09-01 is outside the line's term "
            "(2027-01-01 to 2027-03-31)."
        ]
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


def test_an_amendment_through_the_api_then_the_contract_shows_its_history(am, finance):
    # acme-c covers October-November 2026: +2 H100 from 2026-11-16, 25 % off A100 from then
    body = {
        **BODY,
        "amends": "acme-c",
        "lines": [{"product": "h100", "quantity": 2, "start": "2026-11-16", "term_months": 6,
                   "unit_price": "2.00"}],
        "terms": [{"product": "a100", "discount_percent": "25", "valid_from": "2026-11-16"}],
    }  # fmt: skip

    created = api(am).post("/api/v1/deals", body, format="json")

    assert created.status_code == 201, created.json()
    deal = created.json()
    assert deal["deal"]["amends"] == "acme-c"
    assert deal["lines"][0]["end"] == "2026-12-01"  # co-termed with acme-c
    assert deal["terms"][0]["discount_percent"] == "25.0000"
    assert deal["economics"]["amends"] == "acme-c"
    deal_id = deal["deal"]["id"]
    api(am).post(f"/api/v1/deals/{deal_id}/submit")
    api(finance).post(f"/api/v1/deals/{deal_id}/approve")
    signed = api(am).post(f"/api/v1/deals/{deal_id}/sign").json()
    assert signed["deal"]["status"] == "signed"
    assert signed["deal"]["contract"] is None

    contract = Contract.objects.get(key="acme-c")
    detail = api(finance).get(f"/api/v1/contracts/{contract.pk}").json()
    (amendment,) = detail["amendments"]
    assert (amendment["deal"], amendment["signed_by"], amendment["effective"]) == (
        deal_id, "alice", "2026-11-16",
    )  # fmt: skip
    assert [(r["product"], r["start"], r["amendment"]) for r in detail["reservations"]] == [
        ("h100", "2026-11-16", amendment["id"])
    ]
    assert sorted(
        (t["product"], t["discount_percent"], t["valid_from"], t["amendment"])
        for t in detail["prices"]
    ) == [
        ("a100", "25.0000", "2026-11-16", amendment["id"]),
        ("h100", "10.0000", "2026-10-01", None),
    ]
    listed = api(am).get("/api/v1/contracts?org=acme").json()["results"]
    assert [c["key"] for c in listed] == ["acme-c"]


def test_an_amendment_naming_another_orgs_contract_is_refused(am):
    response = api(am).post("/api/v1/deals", {**BODY, "amends": "globex-c"}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"amends": ["Acme AI SAS has no contract 'globex-c'."]}
    assert not Deal.objects.exists()


def test_contracts_are_read_by_who_may_see_the_org(am, other_am, customer):
    acme = Contract.objects.get(key="acme-c")
    globex = Contract.objects.get(key="globex-c")

    assert api(other_am).get(f"/api/v1/contracts/{acme.pk}").status_code == 404
    assert api(customer).get(f"/api/v1/contracts/{globex.pk}").status_code == 404
    assert api(customer).get(f"/api/v1/contracts/{acme.pk}").json()["contract"]["key"] == "acme-c"
    assert [c["key"] for c in api(customer).get("/api/v1/contracts").json()["results"]] == [
        "acme-c"
    ]
    key = api_key_create(name="r", org=Org.objects.get(slug="acme"), scope=ApiKey.Scope.READ)
    by_key = APIClient(HTTP_AUTHORIZATION=f"Bearer {key.raw_key}")
    assert [c["key"] for c in by_key.get("/api/v1/contracts").json()["results"]] == ["acme-c"]
    assert by_key.get(f"/api/v1/contracts/{globex.pk}").status_code == 404


def test_the_quote_is_a_pdf_with_the_terms_and_schedule(am, other_am):
    deal = draft(am)

    response = api(am).get(f"/api/v1/deals/{deal.pk}/quote")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert api(other_am).get(f"/api/v1/deals/{deal.pk}/quote").status_code == 403


def test_simulate_defaults_to_the_months_with_usage(am):
    deal = draft(am)

    response = api(am).get(f"/api/v1/deals/{deal.pk}/simulate").json()

    assert len(response["months"]) == 6  # no usage at all: the last six months
    assert Decimal(response["total_difference"]) == Decimal(response["total_deal"]) - Decimal(
        response["total_current"]
    )
