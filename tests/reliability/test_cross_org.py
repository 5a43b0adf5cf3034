"""Tenancy sweep: for every API operation (from the OpenAPI schema) and every page (from the
URL resolver), a caller from org A — a member's session, A's read key, A's ingest key, A's
account manager — gets nothing of org B: a 4xx, or only A's data. B's slug, name, address,
invoice and credit-note numbers, deal title and device never appear in a body, and no write
aimed at B's objects changes them.

Both orgs have usage, a contract, a rated period, a finalized invoice (B's also credited), a
deal and an allocation, so that every endpoint has something of B's to leak."""

import json
import re
from datetime import timedelta
from typing import Any

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from billing.deals.models import Deal
from billing.invoicing.models import CreditNote, Invoice
from metering.models import Allocation, UsageEvent
from tenancy.models import Org
from tenancy.services import api_key_create

from .conftest import B, Side


def secrets_of(b: Side) -> list[str]:
    return [
        B,
        f"{B} Holdings",
        f"1 {B} street",
        f"cus_{B.replace('-', '')}",
        b.invoice.number,
        *CreditNote.objects.filter(org=b.org).values_list("number", flat=True),
        f"{B} deal title",
        f"GPU-{B}",
        f"node-{B}",
    ]


def callers(world: dict[str, Any]) -> dict[str, Client]:
    a = world["a"]
    member, am = Client(), Client()
    member.force_login(world["member"])
    am.force_login(world["am"])
    clients = {"member session": member, "account manager of A": am}
    for scope in ("read", "ingest"):
        raw = api_key_create(name=f"a-{scope}", org=a.org, scope=scope).raw_key
        clients[f"A's {scope} key"] = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return clients


def api_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def page_routes() -> list[str]:
    """Every non-admin, non-API route, as a template with ``{name}`` placeholders."""
    found: list[str] = []

    def walk(patterns: Any, prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                found.append(route)

    walk(get_resolver().url_patterns, "/")
    pages = [
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r).replace("^", "").replace("$", "")
        for r in found
        if not r.startswith(("/api/", "/admin/", "/^api/")) and "(?P" not in r
    ]
    return sorted(set(pages))


def fill(path: str, b: Side, slug: str = B) -> str:
    """B's ids in every path parameter."""
    values = {
        "invoice_id": b.invoice.pk,
        "deal_id": b.deal.pk,
        "allocation_id": b.allocation.pk,
        "key_id": 0,
        "org": slug,
        "action": "void",
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "x")), path)


def query(b: Side, slug: str) -> dict[str, str]:
    start = b.period.start
    return {
        "org": slug,
        "meter": "gpu_time",
        "start": start.date().isoformat(),
        "end": (start + timedelta(days=3)).date().isoformat(),
        "period": f"{start:%Y-%m}",
        "format": "json",
        "window": "day",
    }


def state_of_b(b: Side) -> tuple[Any, ...]:
    return (
        Invoice.objects.get(pk=b.invoice.pk).status,
        CreditNote.objects.filter(org=b.org).count(),
        Deal.objects.get(pk=b.deal.pk).status,
        Allocation.objects.get(pk=b.allocation.pk).end,
        UsageEvent.objects.filter(org=b.org).count(),
        Org.objects.get(pk=b.org.pk).name,
    )


NOBODY = "no-such-org"


def _text(response: Any) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body.decode("latin-1")


def check(send: Any, secrets: list[str], what: str) -> None:
    """``send(slug)`` makes the request naming org ``slug``. Its answer shows nothing of B's;
    where it echoes the slug the caller sent, it must say exactly what it says for an org
    that does not exist (so it tells nothing, not even that B exists)."""
    response = send(B)
    if response.status_code >= 400:
        assert response.status_code in (400, 401, 403, 404, 405, 409, 415), what
    text = _text(response)
    if B in text:
        control = send(NOBODY)
        assert (response.status_code, text.replace(B, NOBODY)) == (
            control.status_code,
            _text(control),
        ), f"{what}: B's answer differs from a non-existent org's"
        text = text.replace(B, "")
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{what} → {response.status_code} shows {leaked}"


def test_no_api_operation_shows_or_changes_anything_of_another_org(two_orgs):
    b = two_orgs["b"]
    secrets = secrets_of(b)
    before = state_of_b(b)
    operations = api_operations()
    assert len(operations) >= 20  # the sweep covers the whole schema, not a sample
    for name, client in callers(two_orgs).items():
        for method, path in operations:
            url = fill(path, b)
            what = f"{name}: {method} {url}"
            if method == "GET":
                check(lambda slug, p=path, c=client: c.get(fill(p, b, slug)), secrets, what)
                check(
                    lambda slug, p=path, c=client: c.get(fill(p, b, slug), query(b, slug)),
                    secrets,
                    what,
                )
            else:
                check(lambda slug, p=path, c=client: post(c, fill(p, b, slug), slug), secrets, what)
            assert state_of_b(b) == before, what


def post(client: Client, url: str, slug: str) -> Any:
    body = {
        "org": slug,
        "reason": "x",
        "node": f"node-{B}",
        "device_uuid": f"GPU-{B}",
        "start": timezone.now().isoformat(),
        "specversion": "1.0",
        "id": "cross-org",
        "source": "sweep",
        "type": "gpu.usage",
        "subject": slug,
        "time": timezone.now().isoformat(),
        "data": {"gpu_seconds": "60", "gpu_model": "H100", "region": "eu-north"},
    }
    events = url.endswith("/events")
    response = client.post(
        url,
        data=json.dumps(body),
        content_type="application/cloudevents+json" if events else "application/json",
    )
    if events and response.status_code == 202:
        assert response.json()["accepted"] == 0
    return response


def test_no_page_shows_or_changes_anything_of_another_org(two_orgs):
    b = two_orgs["b"]
    secrets = secrets_of(b)
    before = state_of_b(b)
    pages = page_routes()
    assert {"/portal/", "/deals/", "/finance/", "/finance/invoices/{invoice_id}/pdf"} <= set(pages)
    for name, client in callers(two_orgs).items():
        for page in pages:
            url = fill(page, b)
            what = f"{name}: {url}"
            check(lambda slug, p=page, c=client: c.get(fill(p, b, slug)), secrets, what)
            check(
                lambda slug, p=page, c=client: c.get(
                    fill(p, b, slug), {"org": slug, "period": b.period.pk}
                ),
                secrets,
                what,
            )
            check(
                lambda slug, p=page, c=client: c.post(
                    fill(p, b, slug), {"org": slug, "comment": "x", "reason": "x"}
                ),
                secrets,
                f"POST {what}",
            )
            assert state_of_b(b) == before, f"POST {what}"


def test_the_sweep_sees_b_when_b_asks(two_orgs):
    """The markers are real: B's own read key does see them (the sweep is not vacuous)."""
    b = two_orgs["b"]
    raw = api_key_create(name="b-read", org=b.org, scope="read").raw_key
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    invoices = client.get("/api/v1/invoices").content.decode()
    assert b.invoice.number in invoices
    assert B in invoices
    assert client.get(f"/api/v1/invoices/{b.invoice.pk}/pdf").status_code == 200
