from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from billing.models import Deal, DealLine, Issuer, Product
from metering.models import Meter
from tenancy.models import Membership, Org


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-only")


class OrgFactory(factory.django.DjangoModelFactory[Org]):
    class Meta:
        model = Org
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.slug.title()} SAS")
    country = "FR"
    vat_id = "FR12345678901"
    currency = "USD"


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrgFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.VIEWER


class MeterFactory(factory.django.DjangoModelFactory[Meter]):
    class Meta:
        model = Meter
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"meter-{n}")
    event_type = "gpu.usage"
    value_path = "$.gpu_seconds"
    aggregation = Meter.Aggregation.SUM
    group_by = factory.LazyFunction(lambda: {"gpu_model": "$.gpu_model"})


class IssuerFactory(factory.django.DjangoModelFactory[Issuer]):
    class Meta:
        model = Issuer
        django_get_or_create = ("key",)

    key = "tessera-fr"
    legal_name = "Tessera Cloud SAS"
    country = "FR"
    vat_id = "FR40123456789"
    invoice_prefix = "TFR"


class ProductFactory(factory.django.DjangoModelFactory[Product]):
    class Meta:
        model = Product
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"product-{n}")
    name = factory.LazyAttribute(lambda o: o.key)
    meter = factory.SubFactory(MeterFactory)
    filter = factory.LazyFunction(dict)
    unit = "GPU-hour"
    unit_size = Decimal(3600)


def staff_user(username: str, role: str) -> User:
    """A staff user holding ``role`` (finance, account_manager, operator)."""
    from tenancy.services import staff_user_create

    return staff_user_create(username=username, role=role)


class DealFactory(factory.django.DjangoModelFactory[Deal]):
    """A bare deal row; tests that need its lines and trail go through the services."""

    class Meta:
        model = "billing.Deal"

    org = factory.SubFactory(OrgFactory)
    currency = "USD"
    rate_card_key = "list-usd"
    issuer = factory.SubFactory(IssuerFactory)
    created_by = factory.SubFactory(UserFactory)


class DealLineFactory(factory.django.DjangoModelFactory[DealLine]):
    class Meta:
        model = "billing.DealLine"

    deal = factory.SubFactory(DealFactory)
    org = factory.LazyAttribute(lambda o: o.deal.org)
    position = factory.Sequence(int)
    product = factory.SubFactory(ProductFactory)
    quantity = 8
    start = date(2027, 1, 1)
    term_months = 3
    unit_price = Decimal("2.00")


# --- invoicing (billing.invoicing) ---------------------------------------------------------
# Rated periods are built directly here, as the rating engine would leave them: rated through
# their end (rated_as_of = end), so ``close_periods`` takes them.

import datetime as _dt  # noqa: E402

from billing.models import BillingPeriod, Contract, RatedCharge  # noqa: E402


class ContractFactory(factory.django.DjangoModelFactory[Contract]):
    class Meta:
        model = Contract

    org = factory.SubFactory(OrgFactory)
    key = factory.Sequence(lambda n: f"contract-{n}")
    issuer = factory.SubFactory(IssuerFactory)
    rate_card_key = "list-usd-2026"
    currency = "USD"
    start = _dt.date(2026, 1, 1)
    end = None
    billing_day = 1
    payment_terms_days = 30


class BillingPeriodFactory(factory.django.DjangoModelFactory[BillingPeriod]):
    class Meta:
        model = BillingPeriod

    contract = factory.SubFactory(ContractFactory)
    org = factory.LazyAttribute(lambda o: o.contract.org)
    start = _dt.datetime(2026, 10, 1, tzinfo=_dt.UTC)
    end = _dt.datetime(2026, 11, 1, tzinfo=_dt.UTC)
    status = BillingPeriod.Status.CLOSING
    currency = factory.LazyAttribute(lambda o: o.contract.currency)
    rated_at = factory.LazyAttribute(lambda o: o.end + _dt.timedelta(hours=1))
    rated_as_of = factory.LazyAttribute(lambda o: o.end)


class RatedChargeFactory(factory.django.DjangoModelFactory[RatedCharge]):
    class Meta:
        model = RatedCharge

    period = factory.SubFactory(BillingPeriodFactory)
    org = factory.LazyAttribute(lambda o: o.period.org)
    product = factory.SubFactory(ProductFactory)
    kind = RatedCharge.Kind.ON_DEMAND
    line = 0
    quantity = Decimal(1)
    unit_price = Decimal(1)
    amount = factory.LazyAttribute(lambda o: (o.quantity * o.unit_price).quantize(Decimal("0.01")))
    currency = factory.LazyAttribute(lambda o: o.period.currency)
