from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from billing.models import Issuer, Product
from metering.models import Meter
from tenancy.models import Membership, Org


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-only")


class OrgFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Org
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.slug.title()} SAS")
    country = "FR"
    vat_id = "FR12345678901"
    currency = "USD"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrgFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.VIEWER


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"meter-{n}")
    event_type = "gpu.usage"
    value_path = "$.gpu_seconds"
    aggregation = Meter.Aggregation.SUM
    group_by = factory.LazyFunction(lambda: {"gpu_model": "$.gpu_model"})


class IssuerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Issuer
        django_get_or_create = ("key",)

    key = "tessera-fr"
    legal_name = "Tessera Cloud SAS"
    country = "FR"
    vat_id = "FR40123456789"
    invoice_prefix = "TFR"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"product-{n}")
    name = factory.LazyAttribute(lambda o: o.key)
    meter = factory.SubFactory(MeterFactory)
    filter = factory.LazyFunction(dict)
    unit = "GPU-hour"
    unit_size = Decimal(3600)


def staff_user(username: str, role: str):
    """A staff user holding ``role`` (finance, account_manager, operator)."""
    from tenancy.services import staff_user_create

    return staff_user_create(username=username, role=role)


class DealFactory(factory.django.DjangoModelFactory):
    """A bare deal row; tests that need its lines and trail go through the services."""

    class Meta:
        model = "billing.Deal"

    org = factory.SubFactory(OrgFactory)
    currency = "USD"
    rate_card_key = "list-usd"
    issuer = factory.SubFactory(IssuerFactory)
    created_by = factory.SubFactory(UserFactory)


class DealLineFactory(factory.django.DjangoModelFactory):
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
