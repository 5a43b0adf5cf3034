from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pytest_django import Settings

from billing.invoicing.drafting import periods_close
from billing.invoicing.models import Invoice
from testing.stripe_fake import FakeStripe

from ...support.invoicing import finalize
from ..invoicing.conftest import (  # noqa: F401
    AFTER_GRACE,
    World,
    rated_period,
    worked_charges,
    world,
)


@pytest.fixture
def fake(settings: Settings) -> FakeStripe:
    fake = FakeStripe()
    settings.STRIPE_WEBHOOK_SECRET = fake.webhook_secret
    return fake


@pytest.fixture
def finalized(world: World) -> Invoice:  # noqa: F811
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    return finalize(draft.pk, as_of=datetime(2026, 11, 4, tzinfo=UTC))
