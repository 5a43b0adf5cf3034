from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.catalog import load_catalog
from billing.models import BillingPeriod, RatedCharge
from metering.ingestion import Ingestor
from metering.rollups import rollup_pending
from tenancy.models import Org
from tenancy.services import api_key_create

from ..conftest import make_event
from ..support.fx import ecb_rates

CATALOG: dict[str, Any] = {
    "issuers": [
        {"key": "tessera-fr", "legal_name": "Tessera Cloud SAS", "country": "FR",
         "invoice_prefix": "TFR"},
        {"key": "tessera-jp", "legal_name": "Tessera KK", "country": "JP",
         "invoice_prefix": "TJP"},
    ],
    "meters": [
        {"key": "gpu_time", "event_type": "gpu.usage", "value": "$.gpu_seconds",
         "aggregation": "sum", "group_by": {"gpu_model": "$.gpu_model", "region": "$.region"}},
        {"key": "llm_input_tokens", "event_type": "llm.tokens", "value": "$.input_tokens",
         "aggregation": "sum", "group_by": {"model": "$.model"}},
    ],
    "products": [
        {"key": "h100", "name": "H100 GPU-hour", "meter": "gpu_time",
         "filter": {"gpu_model": "H100", "region": "eu-north"}, "unit": "GPU-hour",
         "unit_size": 3600},
        {"key": "a100", "name": "A100 GPU-hour", "meter": "gpu_time",
         "filter": {"gpu_model": "A100"}, "unit": "GPU-hour", "unit_size": 3600},
        {"key": "llama-in", "name": "Llama input, 1M tokens", "meter": "llm_input_tokens",
         "filter": {"model": "llama"}, "unit": "1M tokens", "unit_size": 1000000},
    ],
    "rate_cards": [
        {"key": "list-usd", "currency": "USD", "effective_from": "2026-01-01", "prices": [
            {"product": "h100", "model": "per_unit", "unit_price": "2.50"},
            {"product": "a100", "model": "volume", "tiers": [
                {"up_to": 100, "unit_price": "1.60"}, {"up_to": None, "unit_price": "1.40"}]},
            {"product": "llama-in", "model": "graduated", "tiers": [
                {"up_to": 1000, "unit_price": "0.90"}, {"up_to": None, "unit_price": "0.70"}]},
        ]},
        {"key": "list-eur", "currency": "EUR", "effective_from": "2026-01-01", "prices": [
            {"product": "h100", "model": "per_unit", "unit_price": "2.30"}]},
        {"key": "list-jpy", "currency": "JPY", "effective_from": "2026-01-01", "prices": [
            {"product": "h100", "model": "per_unit", "unit_price": "380"}]},
    ],
    "orgs": [
        {"slug": "acme", "name": "Acme AI SAS", "country": "FR", "currency": "USD"},
        {"slug": "globex", "name": "Globex GmbH", "country": "DE", "currency": "USD"},
    ],
}  # fmt: skip

# A two-day October contract: one period [2026-10-01, 2026-10-03), 48 hours.
START = datetime(2026, 10, 1, tzinfo=UTC)


def contract(**overrides: Any) -> dict[str, Any]:
    base = {
        "key": "acme-c",
        "org": "acme",
        "issuer": "tessera-fr",
        "rate_card": "list-usd",
        "start": "2026-10-01",
        "end": "2026-10-03",
    }
    return {**base, **overrides}


@pytest.fixture(autouse=True)
def _no_rate_on_rollup(settings: Any) -> None:
    settings.TESSERA_RATE_ON_ROLLUP = False


@pytest.fixture
def catalog(db: None) -> Callable[..., None]:
    """Load the test catalog plus the given contracts (and any section overrides)."""
    ecb_rates()

    def load(*contracts: dict[str, Any], **sections: Any) -> None:
        load_catalog({**CATALOG, **sections, "contracts": list(contracts)})

    return load


def gpu(hour: int, seconds: str, *, org: str = "acme", n: int = 0, model: str = "H100",
        day0: datetime = START) -> dict[str, Any]:  # fmt: skip
    """One gpu.usage event ``hour`` hours after ``day0``."""
    moment = day0 + timedelta(hours=hour, minutes=n % 60)
    return make_event(
        id=f"{org}-{model}-{hour}-{n}",
        subject=org,
        time=moment,
        data={"gpu_seconds": seconds, "gpu_model": model, "region": "eu-north"},
    )


def ingest(events: list[dict[str, Any]], *, now: datetime | None = None) -> None:
    """Through the real ingestion path and the real rollup."""
    key = api_key_create(name="collector").api_key
    latest = max(datetime.fromisoformat(e["time"]) for e in events)
    result = Ingestor(api_key=key, now=now or latest + timedelta(hours=2)).ingest(events)
    assert result.rejected == 0, result.errors
    rollup_pending()


def charges(period: BillingPeriod) -> list[tuple[str | None, str, int, Decimal, Decimal, Decimal]]:
    return [
        (c.product.key if c.product else None, c.kind, c.line, c.quantity, c.unit_price, c.amount)
        for c in RatedCharge.objects.filter(period=period)
        .select_related("product")
        .order_by("kind", "product__key", "line")
    ]


def the_period(slug: str = "acme") -> BillingPeriod:
    return BillingPeriod.objects.get(org=Org.objects.get(slug=slug), start=START)
