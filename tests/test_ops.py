import re

import pytest
from django.test import Client

from tests.conftest import make_event


def test_healthz():
    assert Client().get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database():
    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.usefixtures("gpu_meter", "org")
def test_metrics_count_ingest_outcomes_and_rollup_lag(client_for, collector_key):
    from metering import metrics

    before = metrics.EVENTS.labels(outcome="accepted")._value.get()
    client_for(collector_key).post(
        "/api/v1/events",
        data=[make_event(id="m1"), make_event(id="m2", subject="nope")],
        content_type="application/cloudevents-batch+json",
    )

    text = Client().get("/metrics").content.decode()

    assert metrics.EVENTS.labels(outcome="accepted")._value.get() == before + 1
    assert 'tessera_events_total{outcome="rejected"}' in text
    assert "tessera_rollup_pending_hours 1.0" in text
    assert "tessera_rollup_lag_seconds" in text
    assert "tessera_rating_lag_seconds 0.0" in text


@pytest.mark.django_db
def test_openapi_schema_and_docs_are_served_offline():
    client = Client()
    schema = client.get("/api/v1/schema/")
    docs = client.get("/api/v1/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/events" in schema.content
    assert docs.status_code == 200
    # every asset is ours (the sidecar's), none from a CDN; not a search for "cdn" in the
    # page, which embeds a random CSRF token that spells it now and then
    assets = re.findall(r'(?:src|href)="([^"]*)"', docs.content.decode())
    assert assets
    assert all(url.startswith("/static/drf_spectacular_sidecar/") for url in assets), assets
    assert "cdn" not in "".join(assets).lower()


@pytest.mark.django_db
def test_unknown_api_paths_are_json_404(settings):
    settings.DEBUG = True
    response = Client().get("/api/v1/nope")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
