"""Alerts (SPEC §5): each kind fires exactly once per threshold and period when rating
crosses it — not before, not again on re-rating — shown, emailed and sent as a signed
``alert.triggered`` webhook."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.core import mail
from standardwebhooks import Webhook

from billing.alerts.models import Alert, AlertFiring
from billing.alerts.services import alert_create, alerts_evaluate, alerts_evaluate_all
from billing.models import BillingPeriod, Product
from billing.services import org_rate
from tenancy.models import Membership, Org
from webhooks.services import webhook_endpoint_create

from ...factories import MembershipFactory, UserFactory
from ..conftest import START, contract, gpu, ingest

END = datetime(2026, 10, 3, tzinfo=UTC)


@pytest.fixture
def rate(django_capture_on_commit_callbacks):
    """Rate acme as of a moment, running what rating enqueues on commit (email, webhook)."""

    def run(as_of: datetime = END) -> BillingPeriod:
        with django_capture_on_commit_callbacks(execute=True):
            org_rate(org=Org.objects.get(slug="acme"), as_of=as_of)
        return BillingPeriod.objects.get(org__slug="acme", start=START)

    return run


def setup(catalog, receiver, *, kind: str, threshold: str, **terms: Any) -> tuple[Alert, str]:
    catalog(contract(**terms))
    acme = Org.objects.get(slug="acme")
    owner = UserFactory.create(username="ada", email="ada@acme.example")
    MembershipFactory.create(org=acme, user=owner, role=Membership.Role.OWNER)
    _, secret = webhook_endpoint_create(org=acme, url=receiver.url)
    product = Product.objects.get(key="h100") if kind == "reservation_utilization_below" else None
    alert = alert_create(org=acme, kind=kind, threshold=threshold, product=product)
    return alert, secret.secret


def hours(first: int, last: int, seconds: str) -> list[dict[str, Any]]:
    return [gpu(h, seconds) for h in range(first, last)]


def assert_fired_once(
    alert: Alert, receiver: Any, secret: str, value: str, subject: str = ""
) -> None:
    firing = AlertFiring.objects.get(alert=alert)
    assert (firing.value, firing.subject) == (D(value), subject)
    [email] = mail.outbox
    assert email.to == ["ada@acme.example"]
    assert email.subject.startswith("[Tessera] Acme AI SAS:")
    assert firing.message in email.body
    [request] = receiver.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "alert.triggered"
    assert payload["data"]["alert"]["kind"] == alert.kind
    assert payload["data"]["alert"]["threshold"] == f"{alert.threshold.normalize():f}"
    assert D(payload["data"]["value"]) == D(value)
    assert payload["data"]["period"] == {
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-10-03T00:00:00Z",
    }


def test_cost_above_an_amount(catalog, receiver, rate):
    alert, secret = setup(catalog, receiver, kind="cost_above", threshold="10.00")
    # 3 GPU-hours × 2.50 = 7.50: below 10.00, nothing
    ingest(hours(0, 3, "3600"))
    rate(START + timedelta(hours=3))
    assert not AlertFiring.objects.exists()
    assert mail.outbox == []
    # 5 GPU-hours: 12.50, above: it fires
    ingest(hours(3, 5, "3600"))
    rate(START + timedelta(hours=5))
    # re-rating, and more usage in the same period, do not fire again
    rate(START + timedelta(hours=6))
    ingest(hours(5, 9, "3600"))
    rate(END)
    assert_fired_once(alert, receiver, secret, "12.50")


def test_commitment_burn_above_a_percentage(catalog, receiver, rate):
    alert, secret = setup(
        catalog, receiver, kind="commitment_burn_above", threshold="50",
        spend_commitments=[{"amount": "20.00", "per": "term"}],
    )  # fmt: skip
    ingest(hours(0, 3, "3600"))  # 7.50 of 20.00: 37.5%
    rate(START + timedelta(hours=3))
    assert not AlertFiring.objects.exists()
    ingest(hours(3, 5, "3600"))  # 12.50: 62.5%
    rate(START + timedelta(hours=5))
    # at the period's end the term true-up (7.50) tops the bill up: it is not "burn"
    rate(END)
    assert_fired_once(alert, receiver, secret, "62.50", "commitment-term")
    assert "62.5% of the term's spend commitment is used" in AlertFiring.objects.get().message


def test_credits_below_an_amount(catalog, receiver, rate):
    alert, secret = setup(
        catalog, receiver, kind="credits_below", threshold="5.00",
        credits=[{"key": "promo", "amount": "10.00"}],
    )  # fmt: skip
    ingest(hours(0, 1, "3600"))  # 2.50 drawn: 7.50 left
    rate(START + timedelta(hours=1))
    assert not AlertFiring.objects.exists()
    ingest(hours(1, 3, "3600"))  # 7.50 drawn: 2.50 left
    rate(START + timedelta(hours=3))
    rate(END)
    assert_fired_once(alert, receiver, secret, "2.50")


def test_reservation_utilization_below_a_percentage_over_the_last_hours(catalog, receiver, rate):
    alert, secret = setup(
        catalog, receiver, kind="reservation_utilization_below", threshold="50",
        reservations=[{"product": "h100", "quantity": 2, "unit_price": "2.00"}],
    )  # fmt: skip
    assert alert.window_hours == 24
    ingest(hours(0, 48, "1800"))  # half a GPU of 2 reserved: 25% every hour
    # 12 hours rated: fewer than the 24 the alert looks at, no reading yet
    rate(START + timedelta(hours=12))
    assert not AlertFiring.objects.exists()
    rate(START + timedelta(hours=30))
    rate(END)
    firing = AlertFiring.objects.get()
    assert firing.subject.startswith("reservation-")
    assert_fired_once(alert, receiver, secret, "25.00", firing.subject)


def test_a_threshold_not_crossed_fires_nothing(catalog, receiver, rate):
    setup(
        catalog, receiver, kind="reservation_utilization_below", threshold="20",
        reservations=[{"product": "h100", "quantity": 2, "unit_price": "2.00"}],
    )  # fmt: skip
    ingest(hours(0, 48, "1800"))  # 25%: not below 20%
    rate(END)
    assert not AlertFiring.objects.exists()
    assert mail.outbox == []
    assert receiver.requests == []


def test_a_new_threshold_fires_again_in_the_same_period_and_each_fires_once(
    catalog, receiver, rate
):
    alert, _ = setup(catalog, receiver, kind="cost_above", threshold="5.00")
    ingest(hours(0, 3, "3600"))  # 7.50
    rate(START + timedelta(hours=3))
    alert.threshold = D("7.00")
    alert.save()
    period = rate(START + timedelta(hours=4))
    assert alerts_evaluate(period_id=period.pk) == []  # evaluated again: nothing new
    assert sorted(AlertFiring.objects.values_list("threshold", flat=True)) == [D(5), D(7)]
    assert len(mail.outbox) == 2


def test_the_beat_backstop_fires_what_no_rating_evaluated_and_only_once(
    catalog, receiver, rate, django_capture_on_commit_callbacks
):
    alert, secret = setup(catalog, receiver, kind="cost_above", threshold="1.00")
    alert.active = False
    alert.save()
    ingest(hours(0, 2, "3600"))
    rate(START + timedelta(hours=2))  # rated while the alert was paused
    assert not AlertFiring.objects.exists()
    alert.active = True
    alert.save()
    with django_capture_on_commit_callbacks(execute=True):
        first = alerts_evaluate_all(now=START + timedelta(hours=3))
        again = alerts_evaluate_all(now=START + timedelta(hours=4))
    assert (first, again) == ((1, 0), (0, 0))
    assert_fired_once(alert, receiver, secret, "5.00")


def test_the_database_refuses_a_second_firing_for_a_threshold_and_period(catalog, receiver, rate):
    from django.db import IntegrityError, transaction

    alert, _ = setup(catalog, receiver, kind="cost_above", threshold="1.00")
    ingest(hours(0, 1, "3600"))
    rate(START + timedelta(hours=1))
    first = AlertFiring.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertFiring.objects.create(
            org=first.org, alert=alert, period=first.period, threshold=first.threshold,
            value=D(99), message="again", fired_at=first.fired_at,
        )  # fmt: skip
    assert AlertFiring.objects.count() == 1


def test_a_failing_evaluation_never_fails_the_rating(catalog, receiver, rate, monkeypatch):
    from metering import metrics

    setup(catalog, receiver, kind="cost_above", threshold="1.00")

    def broken(**kwargs: Any) -> list[Any]:
        raise RuntimeError("evaluation bug")

    monkeypatch.setattr("billing.alerts.services.readings", broken)
    failures = metrics.TASK_FAILURES.labels(task="billing.alerts.evaluate")
    before = failures._value.get()
    ingest(hours(0, 1, "3600"))
    period = rate(START + timedelta(hours=1))
    assert period.subtotal == D("2.50")  # rated and saved all the same
    assert failures._value.get() == before + 1
    assert not AlertFiring.objects.exists()
