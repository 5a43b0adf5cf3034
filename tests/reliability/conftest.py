"""A small billing world for the reliability tests, built through the real catalog loader,
ingestion and rollup: ``N`` orgs, each with a two-day contract that ended three days ago (so its
one period is past its grace window now), H100 usage every hour of it, list price 2.50 USD per
GPU-hour, French issuer and French customers (20% VAT).

Org ``i`` uses ``i % 3 + 1`` GPUs every hour for 48 hours, so its exact figures are known:
subtotal 48 × (i % 3 + 1) × 2.50 and total 1.2 × that."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.catalog import load_catalog
from billing.deals.services import deal_create
from billing.deals.terms import LineInput
from billing.invoicing.credit_notes import credit_note_issue
from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from billing.models import BillingPeriod, Contract, Issuer, Product
from billing.rating.periods import periods_ensure
from billing.services import period_rate
from metering.ingestion import Ingestor
from metering.rollups import rollup_pending
from metering.services import allocation_create
from tenancy.models import Membership, Org
from tenancy.services import api_key_create

from ..conftest import make_event
from ..factories import MembershipFactory, staff_user


@dataclass
class World:
    slugs: list[str]
    subtotal: dict[str, Decimal]  # per org slug: what an uninterrupted run bills, before VAT

    def total(self, slug: str) -> Decimal:
        return (self.subtotal[slug] * Decimal("1.2")).quantize(Decimal("0.01"))


def build_world(orgs: int | list[str]) -> World:
    """``orgs``: how many (slugs ``org-000``...), or their slugs."""
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=5)
    slugs = [f"org-{i:03d}" for i in range(orgs)] if isinstance(orgs, int) else orgs
    load_catalog(
        {
            "issuers": [{"key": "tessera-fr", "legal_name": "Tessera Cloud SAS", "country": "FR",
                         "invoice_prefix": "TFR"}],
            "meters": [{"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
                        "aggregation": "sum",
                        "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"}}],
            "products": [{"key": "h100", "name": "H100 GPU-hour", "meter": "gpu_time",
                          "filter": {"gpu_model": "H100", "region": "eu-north"}, "unit": "GPU-hour",
                          "unit_size": 3600}],
            "rate_cards": [{"key": "list-usd", "currency": "USD", "effective_from": "2020-01-01",
                            "prices": [{"product": "h100", "model": "per_unit",
                                        "unit_price": "2.50"}]}],
            "orgs": [{"slug": s, "name": f"{s} SAS", "country": "FR", "currency": "USD"}
                     for s in slugs],
            "capacity_pools": [{"gpu_model": "H100", "region": "eu-north", "gpus": 64,
                                "from": "2020-01-01"}],
            "contracts": [{"key": f"{s}-c", "org": s, "issuer": "tessera-fr",
                           "rate_card": "list-usd", "start": start.date().isoformat(),
                           "end": (start + timedelta(days=2)).date().isoformat()}
                          for s in slugs],
        }
    )  # fmt: skip
    key = api_key_create(name="collector").api_key
    events = [
        make_event(
            id=f"{slug}-{hour}",
            subject=slug,
            time=start + timedelta(hours=hour, minutes=30),
            data={
                "gpu_seconds": str(3600 * (i % 3 + 1)),
                "gpu_model": "H100",
                "region": "eu-north",
            },
        )
        for i, slug in enumerate(slugs)
        for hour in range(48)
    ]
    result = Ingestor(api_key=key).ingest(events)
    assert (result.accepted, result.rejected) == (len(events), 0), result.errors
    rollup_pending()
    for contract in Contract.objects.all():
        periods_ensure(contract=contract, through=today)
    assert BillingPeriod.objects.count() == len(slugs)
    return World(
        slugs=slugs,
        subtotal={s: Decimal(48 * (i % 3 + 1)) * Decimal("2.50") for i, s in enumerate(slugs)},
    )


@pytest.fixture(autouse=True)
def _no_rate_on_rollup(settings: Any) -> None:
    """The tests say when rating runs (in process, or on the worker)."""
    settings.TESSERA_RATE_ON_ROLLUP = False
    settings.STRIPE_API_KEY = ""


def now() -> datetime:
    return timezone.now()


A, B = "alpha", "zulu-secret"


@dataclass
class Side:
    org: Any
    invoice: Any
    deal: Any
    allocation: Any
    period: Any


def _side(slug: str, manager: Any) -> Side:
    org = Org.objects.get(slug=slug)
    Org.objects.filter(pk=org.pk).update(
        account_manager=manager,
        name=f"{slug} Holdings",
        billing_address=f"1 {slug} street",
        stripe_customer_id=f"cus_{slug.replace('-', '')}",
    )
    deal = deal_create(
        actor=manager,
        org=org,
        currency="USD",
        rate_card_key="list-usd",
        issuer=Issuer.objects.get(key="tessera-fr"),
        lines=[LineInput(product=Product.objects.get(key="h100"), quantity=4,
                         start=date(2027, 1, 1), term_months=3, unit_price=Decimal("2.00"))],
        title=f"{slug} deal title",
    )  # fmt: skip
    allocation = allocation_create(
        org=org, node=f"node-{slug}", device_uuid=f"GPU-{slug}", start=timezone.now()
    )
    return Side(
        org=org,
        invoice=Invoice.objects.get(org=org),
        deal=deal,
        allocation=allocation,
        period=BillingPeriod.objects.get(org=org),
    )


@pytest.fixture
def two_orgs(db: None) -> dict[str, Any]:
    build_world([A, B])
    for period in BillingPeriod.objects.all():
        period_rate(period_id=period.pk)
    periods_close(as_of=timezone.now())
    invoices_finalize()
    am = staff_user("am-alpha", "account_manager")
    a = _side(A, am)
    b = _side(B, staff_user("am-zulu", "account_manager"))
    credit_note_issue(invoice_id=b.invoice.pk, reason="zulu goodwill")
    b.invoice.refresh_from_db()
    member = MembershipFactory.create(org=a.org, role=Membership.Role.OWNER).user
    return {"a": a, "b": b, "member": member, "am": am}
