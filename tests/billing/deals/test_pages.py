"""Who may use each deal desk page and action; CSRF on every form."""

from decimal import Decimal

import pytest
from django.test import Client

from billing.deals.models import Deal
from billing.models import Contract, Issuer, Product

from .conftest import draft


def login(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def deal(am):
    return draft(am)


PAGES = ["/deals/", "/deals/capacity/", "/deals/{id}/", "/deals/new/", "/deals/{id}/edit/"]


@pytest.mark.parametrize("page", PAGES)
def test_customers_and_operators_get_403_on_every_page(deal, customer, operator, page):
    for user in (customer, operator):
        assert login(user).get(page.format(id=deal.pk)).status_code == 403


@pytest.mark.parametrize("action", ["submit", "approve", "reject", "sign"])
def test_customers_get_403_on_every_action(deal, customer, action):
    response = login(customer).post(f"/deals/{deal.pk}/{action}/", {"comment": "x"})

    assert response.status_code == 403
    assert Deal.objects.get().status == Deal.Status.DRAFT


def test_anonymous_goes_to_login(deal):
    assert Client().get("/deals/")["Location"].startswith("/accounts/login/")


def test_an_account_manager_sees_only_their_orgs_deals(deal, other_am):
    others = login(other_am)

    assert deal.title not in others.get("/deals/").content.decode()
    assert others.get(f"/deals/{deal.pk}/").status_code == 403
    assert others.get("/deals/999999/").status_code == 403  # the same answer: nothing leaks
    assert others.post(f"/deals/{deal.pk}/submit/").status_code == 403
    assert Deal.objects.get().status == Deal.Status.DRAFT


def test_the_deal_page_shows_economics_fit_simulation_and_trail(deal, am):
    page = login(am).get(f"/deals/{deal.pk}/").content.decode()

    for text in (
        "57,216.00 USD",
        "71,520.00 USD",
        f"/deals/{deal.pk}/quote.pdf",
        "20.00 %",
        "short by 4 GPUs in 2027-02 (H100 eu-north)",
        "another org: 88",  # acme's account manager does not see globex's name
        "<svg",
        "Audit trail",
        f'action="/deals/{deal.pk}/submit/"',
    ):
        assert text in page, text
    assert "globex" not in page


def test_finance_sees_every_deal_and_decides_but_does_not_draft(deal, am, finance):
    page = login(finance)
    login(am).post(f"/deals/{deal.pk}/submit/")

    assert page.get("/deals/new/").status_code == 403
    assert page.get(f"/deals/{deal.pk}/edit/").status_code == 403
    assert "globex-c (globex)" in page.get(f"/deals/{deal.pk}/").content.decode()
    response = page.post(f"/deals/{deal.pk}/reject/", {"comment": ""})
    assert Deal.objects.get().status == Deal.Status.PENDING_APPROVAL  # a reason is required
    response = page.post(f"/deals/{deal.pk}/approve/", {"comment": "capacity arrives"})
    assert response.status_code == 302
    assert Deal.objects.get().status == Deal.Status.APPROVED


def test_account_managers_do_not_approve(deal, am):
    client = login(am)
    client.post(f"/deals/{deal.pk}/submit/")

    assert client.post(f"/deals/{deal.pk}/approve/").status_code == 403
    assert Deal.objects.get().status == Deal.Status.PENDING_APPROVAL


def test_draft_through_the_form_then_sign(am, finance):
    client = login(am)
    form = {
        "org": am.managed_orgs.get().pk, "title": "Q1", "rate_card": "list-usd",
        "issuer": Issuer.objects.get(key="tessera-fr").pk,
        "lines-TOTAL_FORMS": "2", "lines-INITIAL_FORMS": "0", "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-product": Product.objects.get(key="h100").pk,
        "lines-0-quantity": "8", "lines-0-start": "2027-01-01", "lines-0-term_months": "3",
        "lines-0-unit_price": "2.40",
        "lines-0-ramp_0_from": "2027-02-01", "lines-0-ramp_0_quantity": "16",
        "terms-TOTAL_FORMS": "0", "terms-INITIAL_FORMS": "0", "terms-MIN_NUM_FORMS": "0",
        "terms-MAX_NUM_FORMS": "1000",
    }  # fmt: skip

    response = client.post("/deals/new/", form)

    deal = Deal.objects.get()
    assert response["Location"] == f"/deals/{deal.pk}/"
    assert (deal.currency, deal.lines.get().unit_price, deal.lines.get().ramp) == (
        "USD", Decimal("2.40"), [{"from": "2027-02-01", "quantity": 16}],
    )  # fmt: skip
    client.post(f"/deals/{deal.pk}/submit/")
    deal.refresh_from_db()
    assert deal.status == Deal.Status.PENDING_APPROVAL  # short in February
    login(finance).post(f"/deals/{deal.pk}/approve/")
    client.post(f"/deals/{deal.pk}/sign/")
    assert Contract.objects.get(deal=deal).key == f"deal-{deal.pk}"


def test_forms_need_the_csrf_token(deal, am):
    client = login(am, enforce_csrf_checks=True)

    assert client.post(f"/deals/{deal.pk}/submit/").status_code == 403
    assert client.post("/deals/new/", {}).status_code == 403
    assert Deal.objects.get().status == Deal.Status.DRAFT


def test_the_capacity_page_shows_one_row_per_pool_and_the_months_across(am):
    page = login(am).get("/deals/capacity/?from=2026-12").content.decode()

    assert page.count('<td class="pool">') == 1
    assert "<strong>eu-north</strong> · H100" in page
    assert '<th class="num">2026-12</th>' in page
    assert '<th class="num">2028-11</th>' in page  # 24 months from 2026-12
    # globex holds 88 of 100 from December
    assert 'title="2026-12: installed 100, reserved 88, free 12 — another org: 88"' in page
