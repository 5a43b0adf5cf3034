"""An admin edit of what ratings read (a contract and its terms, a rate card and its prices, a
product, a meter, an issuer) marks the open and closing periods that read it for rating
again, as a catalog reload does: through the real admin, as a logged-in superuser."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.forms import CheckboxInput
from django.test import Client

from billing.models import Contract, CreditGrant, Issuer, Price, Product, RateCard, Reservation
from billing.rating.due import periods_due
from billing.services import org_rate
from metering.models import Meter
from tenancy.models import Org

from .conftest import contract, the_period

AS_OF = datetime(2026, 10, 5, tzinfo=UTC)  # after the two-day period: rated through its end

RESERVATION = {"product": "h100", "quantity": 2, "unit_price": "2.00", "burst_unit_price": "3.00",
               "ramp": [{"from": "2026-10-02", "quantity": 4}]}  # fmt: skip
WELCOME = {"key": "welcome", "amount": "5.00"}


@pytest.fixture
def rated(catalog: Any, django_capture_on_commit_callbacks: Any) -> int:
    """acme's two-day period (contract on list-usd, issuer tessera-fr, one reservation, a
    credit grant),
    rated through its end and not due; the id of that period."""
    with django_capture_on_commit_callbacks(execute=True):
        catalog(
            contract(reservations=[RESERVATION], credits=[{"key": "welcome", "amount": "5.00"}])
        )
    org_rate(org=Org.objects.get(slug="acme"), as_of=AS_OF)
    assert periods_due(now=AS_OF) == []
    return the_period().pk


def _form(client: Client, url: str) -> dict[str, Any]:
    """The change form at ``url`` as the admin renders it, inline formsets included, ready to
    post back unchanged."""
    page = client.get(url)
    assert page.status_code == 200
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        for name, field in form.fields.items():
            value = form[name].value()
            if isinstance(field.widget, CheckboxInput):
                if value:  # an unticked box is left out of the post
                    data[form.add_prefix(name)] = "on"
            else:
                data[form.add_prefix(name)] = "" if value is None else value
    return data


def _change(client: Client, obj: Any, edit: Callable[[dict[str, Any]], None]) -> None:
    url = f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/change/"
    data = _form(client, url)
    edit(data)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.update(fields)


def _add_discount(data: dict[str, Any]) -> None:
    """A new row in the contract's dated-terms inline: 50% off H100 from the start."""
    n = int(data["prices-TOTAL_FORMS"])
    data["prices-TOTAL_FORMS"] = n + 1
    h100 = Product.objects.get(key="h100").pk
    data.update({f"prices-{n}-product": h100, f"prices-{n}-discount_percent": "50",
                 f"prices-{n}-valid_from": "2026-10-01"})  # fmt: skip


# (what is edited, how) through its change form
EDITS: dict[str, tuple[Callable[[], Any], Callable[[dict[str, Any]], None]]] = {
    "contract": (lambda: Contract.objects.get(key="acme-c"), _set(payment_terms_days=45)),
    "contract discount (inline)": (lambda: Contract.objects.get(key="acme-c"), _add_discount),
    "reservation (inline)": (
        lambda: Contract.objects.get(key="acme-c"),
        _set(**{"reservations-0-quantity": "3"}),
    ),
    "reservation ramp (inline)": (
        lambda: Reservation.objects.get(),
        _set(**{"ramps-0-quantity": "5"}),
    ),
    "spend commitment (inline)": (
        lambda: Contract.objects.get(key="acme-c"),
        _set(
            **{
                "commitments-TOTAL_FORMS": 1,
                "commitments-0-amount": "100",
                "commitments-0-per": "period",
            }
        ),
    ),  # fmt: skip
    "rate card price (inline)": (
        lambda: RateCard.objects.get(key="list-usd"),
        lambda data: data.update(
            {
                f"prices-{i}-unit_price": "3.00"
                for i in range(int(data["prices-TOTAL_FORMS"]))
                if data[f"prices-{i}-id"]
                == Price.objects.get(rate_card__key="list-usd", product__key="h100").pk
            }
        ),
    ),  # fmt: skip
    "rate card": (lambda: RateCard.objects.get(key="list-usd"), _set(name="List USD")),
    "product": (lambda: Product.objects.get(key="a100"), _set(name="A100 hour")),
    "meter": (lambda: Meter.objects.get(key="llm_input_tokens"), _set(unit="token")),
    "issuer": (lambda: Issuer.objects.get(key="tessera-fr"), _set(rounding="half_even")),
    "credit grant": (lambda: CreditGrant.objects.get(key="welcome"), _set(amount="50.00")),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_admin_edit_of_a_rating_input_makes_the_period_due(
    rated, admin_client, django_capture_on_commit_callbacks, edit
):
    obj, change = EDITS[edit]
    with django_capture_on_commit_callbacks(execute=True):
        _change(admin_client, obj(), change)

    assert periods_due(now=AS_OF) == [rated]


def test_an_admin_edit_of_what_the_period_does_not_read_leaves_it_alone(
    rated, admin_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _change(admin_client, Issuer.objects.get(key="tessera-jp"), _set(rounding="half_even"))
        _change(admin_client, RateCard.objects.get(key="list-eur"), _set(name="List EUR"))

    assert periods_due(now=AS_OF) == []


def test_a_rate_card_renamed_in_the_admin_makes_its_old_contracts_due(
    rated, admin_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _change(admin_client, RateCard.objects.get(key="list-usd"), _set(key="list-usd-2027"))

    assert periods_due(now=AS_OF) == [rated]


def test_deleting_a_reservation_in_the_admin_makes_the_period_due(
    rated, admin_client, django_capture_on_commit_callbacks
):
    reservation = Reservation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/billing/reservation/{reservation.pk}/delete/", {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Reservation.objects.exists()

    assert periods_due(now=AS_OF) == [rated]


def test_deleting_reservations_from_the_changelist_makes_the_period_due(
    rated, admin_client, django_capture_on_commit_callbacks
):
    """The changelist's bulk "delete selected" (``delete_queryset``)."""
    reservation = Reservation.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/billing/reservation/",
            {"action": "delete_selected", "_selected_action": [reservation.pk], "post": "yes"},
        )
    assert response.status_code == 302
    assert not Reservation.objects.exists()

    assert periods_due(now=AS_OF) == [rated]
