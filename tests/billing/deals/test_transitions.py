from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.deals.errors import DealError
from billing.deals.models import Deal, DealEvent
from billing.deals.services import (
    deal_approve,
    deal_reject,
    deal_sign,
    deal_submit,
    deal_update,
)
from billing.models import CapacityPool, Contract, Reservation, ReservationRamp
from core.errors import ErrorKind

from .conftest import draft, line

Status = Deal.Status


def trail(deal):
    return list(
        DealEvent.objects.filter(deal=deal)
        .order_by("id")
        .values_list("action", "from_status", "to_status", "actor__username")
    )


def grow_pool():
    CapacityPool.objects.create(
        gpu_model="H100", region="eu-north", gpus=200, valid_from=date(2027, 1, 1)
    )


def test_a_deal_within_threshold_that_fits_is_approved_at_once(am, settings):
    settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT = "20"
    grow_pool()
    deal = draft(am)

    deal = deal_submit(actor=am, deal_id=deal.pk)

    assert deal.status == Status.APPROVED
    assert trail(deal) == [
        ("created", "", "draft", "alice"),
        ("submitted", "draft", "approved", "alice"),
    ]
    event = deal.events.last()
    assert event is not None
    assert event.comment == (
        "Approved without review: discount 20.00% is within 20% and capacity fits every month."
    )
    assert event.changes["total_contract_value"] == "57216"


def test_discount_above_threshold_or_short_capacity_needs_approval(am, settings):
    settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT = "15"
    deal = deal_submit(actor=am, deal_id=draft(am).pk)

    assert deal.status == Status.PENDING_APPROVAL
    assert deal.approval_reasons == [
        "discount 20.00% exceeds 15%",
        "short by 4 GPUs in 2027-02 (H100 eu-north)",
    ]


def test_finance_rejects_with_a_comment_then_the_edit_reopens_the_draft(am, finance):
    deal = deal_submit(actor=am, deal_id=draft(am).pk)

    with pytest.raises(DealError) as no_comment:
        deal_reject(actor=finance, deal_id=deal.pk, comment=" ")
    deal = deal_reject(actor=finance, deal_id=deal.pk, comment="Price too low")
    deal = deal_update(
        actor=am, deal_id=deal.pk, currency="USD", rate_card_key="list-usd", issuer=deal.issuer,
        lines=[line(unit_price=Decimal("2.30"))], title="H100 expansion",
    )  # fmt: skip

    assert no_comment.value.fields == {"comment": ["required"]}
    assert deal.status == Status.DRAFT
    assert trail(deal)[2:] == [
        ("rejected", "pending_approval", "rejected", "fiona"),
        ("edited", "rejected", "draft", "alice"),
    ]
    rejected, edited = deal.events.order_by("id")[2:]
    assert rejected.comment == "Price too low"
    assert edited.changes == {"lines": [[_line("2")], [_line("2.3")]]}


def _line(price):
    return {
        "product": "h100", "quantity": 8, "start": "2027-01-01", "term_months": 3,
        "unit_price": price, "burst_unit_price": None,
        "ramp": [{"from": "2027-02-01", "quantity": 16}],
    }  # fmt: skip


def test_sign_creates_the_contract_once(am, finance):
    deal = deal_submit(actor=am, deal_id=draft(am).pk)
    deal_approve(actor=finance, deal_id=deal.pk, comment="ok, capacity arriving in February")

    signed = deal_sign(actor=am, deal_id=deal.pk)
    again = deal_sign(actor=finance, deal_id=deal.pk)

    contract = Contract.objects.get(key=f"deal-{deal.pk}")
    assert signed.contract == again.contract == contract
    assert (contract.org.slug, contract.issuer.key, contract.rate_card_key, contract.currency) == (
        "acme", "tessera-fr", "list-usd", "USD",
    )  # fmt: skip
    assert (contract.start, contract.end) == (date(2027, 1, 1), date(2027, 4, 1))
    (reservation,) = Reservation.objects.filter(contract=contract)
    assert (reservation.quantity, reservation.unit_price, reservation.start, reservation.end) == (
        Decimal(8), Decimal("2.00"), date(2027, 1, 1), date(2027, 4, 1),
    )  # fmt: skip
    assert list(ReservationRamp.objects.values_list("starts", "quantity")) == [
        (date(2027, 2, 1), Decimal(16))
    ]
    assert [a for a, *_ in trail(deal)] == ["created", "submitted", "approved", "signed"]
    assert Contract.objects.count() == 3  # acme-c, globex-c and this one


def test_the_database_keeps_a_contract_to_one_deal(am, finance):
    deal = deal_submit(actor=am, deal_id=draft(am).pk)
    deal_approve(actor=finance, deal_id=deal.pk)
    deal = deal_sign(actor=am, deal_id=deal.pk)
    other = draft(am, line(start=date(2027, 4, 1), ramp=[]))

    with pytest.raises(IntegrityError), transaction.atomic():
        Deal.objects.filter(pk=other.pk).update(status=Status.SIGNED, contract=deal.contract)


def test_transitions_out_of_order_are_refused_and_change_nothing(am, finance):
    deal = draft(am)

    for attempt in (
        lambda: deal_sign(actor=am, deal_id=deal.pk),
        lambda: deal_approve(actor=finance, deal_id=deal.pk),
    ):
        with pytest.raises(DealError) as refused:
            attempt()
        assert refused.value.code == "invalid_transition"
        assert refused.value.kind == ErrorKind.CONFLICT
    deal.refresh_from_db()
    assert deal.status == Status.DRAFT
    assert len(trail(deal)) == 1
    assert Contract.objects.count() == 2


def test_a_new_contract_over_the_running_one_is_refused_in_words(am):
    # acme-c covers October-November 2026: a new contract from November overlaps it.
    with pytest.raises(DealError) as refused:
        draft(am, line(start=date(2026, 11, 1), ramp=[]))

    assert refused.value.code == "validation_error"
    assert refused.value.fields == {
        "amends": [
            "Acme AI SAS already has contract acme-c (2026-10-01 to 2026-11-30) over these "
            "dates: choose it under “Amends” to add these lines to it, or start on or after "
            "2026-12-01."
        ]
    }
    assert not Deal.objects.exists()
    assert Contract.objects.count() == 2


def test_ramp_steps_are_checked(am):
    with pytest.raises(DealError) as refused:
        draft(am, line(ramp=[{"from": date(2027, 5, 1), "quantity": 16}]))

    assert refused.value.fields == {
        "lines.0.ramp": [
            "H100 GPU-hour: the ramp step on 2027-05-01 is outside the line's term "
            "(2027-01-01 to 2027-03-31)."
        ]
    }
    assert not Deal.objects.exists()
