"""Collector → the real ingestion API (live server) → rollups → GET /api/v1/usage."""

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from rest_framework.test import APIClient

from billing.catalog import load_catalog
from billing.models import RatedCharge
from billing.services import org_rate
from metering.collectors.allocations import ApiAllocations
from metering.collectors.common import SimulatedClock
from metering.collectors.gpu import GpuCollector
from metering.collectors.nvml import Nvml
from metering.collectors.sender import Sender
from metering.collectors.simnvml import SimulatedNVML
from metering.collectors.spool import Spool
from metering.collectors.telemetry import Telemetry
from metering.collectors.tokens import LogTailer
from metering.rollups import rollup_pending
from metering.services import allocation_create
from tenancy.models import Org
from tenancy.services import api_key_create

from ...support.narrow import present
from .conftest import FLEET

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


def test_simulated_fleet_usage_reaches_the_usage_api_exactly(
    live_server, org, other_org, gpu_meter
):
    # given three hours, ending an hour ago, and a schedule of who held what
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=3)
    at = lambda minutes: start + timedelta(minutes=minutes)  # noqa: E731
    schedule = [  # org, device, start, end, share of the GPU
        (org, "GPU-h100", at(0), at(90) + timedelta(seconds=30), Fraction(1)),
        (other_org, "GPU-h100", at(100), None, Fraction(1)),
        (org, "GPU-h200", at(15), at(150), Fraction(1)),
        (org, "MIG-3g-a", at(0), None, Fraction(3, 7)),
        (other_org, "MIG-1g", at(30) + timedelta(seconds=20), at(61), Fraction(1, 7)),
        (org, "GPU-b200", at(0), None, Fraction(1)),  # lost at 120 min: not billed after
    ]
    for holder, uuid, begin, until, _ in schedule:
        allocation_create(org=holder, node="node-1", device_uuid=uuid, start=begin, end=until)
    key = api_key_create(name="e2e-collector").raw_key

    # when the collector samples the simulated fleet over those hours, sending to the real API
    clock = SimulatedClock(start.timestamp())
    sim = SimulatedNVML(FLEET, clock.wall)
    spool = Spool(":memory:")
    telemetry = Telemetry("gpu")
    collector = GpuCollector(
        nvml=Nvml(sim),
        allocations=ApiAllocations(live_server.url, key),
        spool=spool,
        telemetry=telemetry,
        node="node-1",
        region="eu-north",
        window_seconds=60,
        sample_seconds=15,
    )
    moment = start.timestamp()
    while moment < end.timestamp():
        clock.set(moment)
        if moment == at(120).timestamp():
            sim.lose_gpu("GPU-b200")
        collector.tick(moment)
        moment += 15
    collector.close_ended(end.timestamp())
    assert collector.attribute() == 180
    sender = Sender(spool=spool, api_url=live_server.url, api_key=key, telemetry=telemetry)
    assert sender.drain(60)
    assert spool.rejected_count() == 0
    rollup_pending()

    # then the usage API shows, per hour and GPU model, what the schedule implies
    expected: dict[tuple[str, datetime, str], Decimal] = {}
    for holder, uuid, begin, until, share in schedule:
        model = {"GPU-h100": "H100", "GPU-h200": "H200", "GPU-b200": "B200"}.get(uuid, "A100")
        for minute in range(180):
            w0, w1 = at(minute), at(minute + 1)
            if uuid == "GPU-b200" and minute >= 120:
                continue  # lost: billed 0
            lo, hi = max(w0, begin), min(w1, until or w1)
            if hi <= lo:
                continue
            seconds = Fraction(int((hi - lo).total_seconds())) * share
            billed = (Decimal(seconds.numerator) / Decimal(seconds.denominator)).quantize(
                Decimal("0.000001"), rounding=ROUND_HALF_EVEN
            )
            hour = w0.replace(minute=0)
            k = (holder.slug, hour, model)
            expected[k] = expected.get(k, Decimal(0)) + billed
    reader = APIClient()
    actual: dict[tuple[str, datetime, str], Decimal] = {}
    for holder in (org, other_org):
        read_key = api_key_create(name=f"read-{holder.slug}", org=holder, scope="read").raw_key
        reader.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key}")
        response = reader.get(
            "/api/v1/usage",
            {
                "meter": "gpu_time",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "window": "hour",
                "group_by": "gpu_model",
            },
        )
        assert response.status_code == 200, response.content
        for point in response.json()["results"]:
            when = datetime.fromisoformat(point["start"].replace("Z", "+00:00"))
            k = (holder.slug, when, point["dimensions"]["gpu_model"])
            actual[k] = Decimal(point["value"])
    expected = {k: v for k, v in expected.items() if v}
    assert {k: v for k, v in actual.items() if v} == expected
    assert sum(expected.values()) == sum(actual.values())


def test_cached_input_is_priced_apart_from_gateway_log_to_rated_charges(live_server, tmp_path):
    """1,000,000 prompt tokens of which 800,000 cached, and 100,000 completion tokens, at
    1.00 (input) / 0.10 (cached input) / 4.00 (output) per 1M tokens, with the token products
    of examples/catalog-full.yaml: 0.2 × 1.00 + 0.8 × 0.10 + 0.1 × 4.00 = 0.68, not 1.48."""
    # given the example catalog's token meters and products, and a contract at those prices
    example = yaml.safe_load((ROOT / "examples" / "catalog-full.yaml").read_text())
    now = datetime.now(UTC)
    prices = {"llama-70b-input": "1.00", "llama-70b-cached-input": "0.10",
              "llama-70b-output": "4.00"}  # fmt: skip
    issuer = {"key": "tessera-us", "legal_name": "Tessera Cloud, Inc.", "country": "US",
              "invoice_prefix": "TUS"}  # fmt: skip
    load_catalog(
        {
            "issuers": [issuer],
            "meters": [m for m in example["meters"] if m["event_type"] == "llm.tokens"],
            "products": [p for p in example["products"] if p["key"] in prices],
            "rate_cards": [
                {
                    "key": "tokens-usd",
                    "currency": "USD",
                    "effective_from": "2026-01-01",
                    "prices": [
                        {"product": key, "model": "per_unit", "unit_price": price}
                        for key, price in prices.items()
                    ],
                }
            ],
            "orgs": [{"slug": "tokenco", "name": "Token Co", "country": "US", "currency": "USD"}],
            "contracts": [
                {
                    "key": "tokenco",
                    "org": "tokenco",
                    "issuer": "tessera-us",
                    "rate_card": "tokens-usd",
                    "start": (now - timedelta(days=40)).date().isoformat(),
                    "billing_day": 1,
                }
            ],
        }
    )
    # and a gateway's usage log with that one request (Chat Completions shape)
    log = tmp_path / "usage.jsonl"
    log.write_text(
        json.dumps(
            {
                "id": "chatcmpl-cached-1",
                "org": "tokenco",
                "model": "llama-3.1-70b",
                "created": int(now.timestamp()) - 60,
                "usage": {
                    "prompt_tokens": 1_000_000,
                    "completion_tokens": 100_000,
                    "total_tokens": 1_100_000,
                    "prompt_tokens_details": {"cached_tokens": 800_000},
                },
            }
        )
        + "\n"
        # a gateway that leaves cached_tokens out when it is zero: accepted, not rejected
        + json.dumps(
            {
                "id": "chatcmpl-plain-1",
                "org": "tokenco",
                "model": "llama-3.1-8b",
                "created": int(now.timestamp()) - 30,
                "usage": {"prompt_tokens": 500, "completion_tokens": 20},
            }
        )
        + "\n"
    )
    key = api_key_create(name="gateway-collector").raw_key
    telemetry = Telemetry("tokens")
    spool = Spool(tmp_path / "spool.sqlite3")

    # when the token collector reads it and sends it to the real API, and the org is rated
    assert LogTailer(path=str(log), source="gw", spool=spool, telemetry=telemetry).poll() == 2
    assert Sender(spool=spool, api_url=live_server.url, api_key=key, telemetry=telemetry).drain(60)
    assert spool.rejected_count() == 0
    rollup_pending()
    org_rate(org=Org.objects.get(slug="tokenco"), as_of=now + timedelta(minutes=1))

    # then each part of the input is billed once, at its own price
    charges = {
        present(c.product).key: (c.quantity, c.amount)
        for c in RatedCharge.objects.filter(org__slug="tokenco").select_related("product")
    }
    assert charges == {
        "llama-70b-input": (Decimal("0.2"), Decimal("0.20")),
        "llama-70b-cached-input": (Decimal("0.8"), Decimal("0.08")),
        "llama-70b-output": (Decimal("0.1"), Decimal("0.40")),
    }
    assert sum(amount for _, amount in charges.values()) == Decimal("0.68")
