"""Credit balances stay exact Decimal arithmetic on every database (SQLite included)."""

import datetime as dt
from decimal import Decimal

from billing.models import CreditDraw, CreditGrant
from billing.rating.credits import credits_apply

from ..factories import BillingPeriodFactory


def test_rerating_up_to_the_whole_grant_leaves_exactly_zero(db):
    # given a grant of which a first rating drew 92.98
    period = BillingPeriodFactory.create()
    grant = CreditGrant.objects.create(
        org=period.org, contract=period.contract, key="promo", amount=Decimal("300"),
        currency="USD", balance=Decimal("300"), effective=dt.date(2026, 9, 1),
    )  # fmt: skip
    credits_apply(period=period, subtotal=Decimal("92.98"))

    # when the period is rated again with more usage than the grant holds
    applied = credits_apply(period=period, subtotal=Decimal("412.50"))

    # then the whole grant is drawn and its balance is exactly zero (SQL floating point on
    # SQLite left -2.8e-14 and the balance check refused the update)
    grant.refresh_from_db()
    assert applied == Decimal("300")
    assert grant.balance == Decimal("0")
    assert [d.amount for d in CreditDraw.objects.order_by("pk")] == [
        Decimal("92.98"),
        Decimal("207.02"),
    ]
