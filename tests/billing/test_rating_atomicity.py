"""A rating that fails half-way leaves the previous charges intact; a re-run is right."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from billing import services
from billing.models import BillingPeriod, CreditDraw, CreditGrant, RatedCharge, ReservationUsage
from billing.services import org_rate, period_rate
from tenancy.models import Org

from .conftest import charges, contract, gpu, ingest

END = datetime(2026, 10, 3, tzinfo=UTC)


class Crash(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_crash_mid_transaction_leaves_no_partial_charges(catalog, monkeypatch):
    # given a period rated once with 1 h of usage
    res = {"product": "h100", "quantity": 1, "unit_price": "2.00"}
    catalog(contract(reservations=[res], credits=[{"key": "a", "amount": "500.00"}]))
    ingest([gpu(0, "7200")])
    org = Org.objects.get(slug="acme")
    org_rate(org=org, as_of=END)
    period = BillingPeriod.objects.get(org=org)
    before = charges(period)
    rated_at = period.rated_at
    # when more usage arrives and the rating crashes after replacing the charges
    ingest([gpu(5, "36000")])

    def crash(**kwargs):
        raise Crash

    monkeypatch.setattr(services, "credits_apply", crash)
    with pytest.raises(Crash):
        period_rate(period_id=period.pk, as_of=END)
    # then nothing of the failed rating remains: old charges, old detail, old credits
    period.refresh_from_db()
    assert charges(period) == before
    assert period.rated_at == rated_at
    assert ReservationUsage.objects.get(period=period).used == D(2)
    assert CreditGrant.objects.get().balance == D("500.00") - period.subtotal
    assert CreditDraw.objects.count() == 1
    # when the rating runs again
    monkeypatch.undo()
    period_rate(period_id=period.pk, as_of=END)
    # then it is right: 48 × 2.00 = 96.00 reserved; burst 1 + 9 = 10 h × 2.50 = 25.00
    period.refresh_from_db()
    assert charges(period) == [
        ("h100", "burst", 0, D(10), D("2.50"), D("25.00")),
        ("h100", "covered", 0, D(2), D(0), D(0)),
        ("h100", "reservation", 0, D(48), D("2.00"), D("96.00")),
    ]
    assert CreditGrant.objects.get().balance == D("379.00")
    assert RatedCharge.objects.filter(period=period).count() == 3
