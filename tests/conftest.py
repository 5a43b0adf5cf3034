import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tenancy.services import api_key_create

from .factories import MeterFactory, OrgFactory
from .support.isolation import run_database_name
from .support.workers import Workers


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


REDIS_UP = _redis_up()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    if os.environ.get("TESSERA_TEST_REQUIRE_SERVICES") and not (on_postgres and REDIS_UP):
        # CI: a run that would skip the PostgreSQL and real-worker tests is a failed run.
        raise pytest.UsageError("TESSERA_TEST_REQUIRE_SERVICES: PostgreSQL or Redis is missing")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (SQLite fallback run)"))
        if "celery_worker" in item.keywords and not (REDIS_UP and on_postgres):
            item.add_marker(pytest.mark.skip(reason="needs Redis and PostgreSQL for a real worker"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A PostgreSQL test database of this run's own, ``test_<NAME>_<run id>`` (pytest-django
    would take ``test_<NAME>`` and drop whatever another checkout is testing on in it)."""
    from django.conf import settings

    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.postgresql":
            test = db.setdefault("TEST", {})
            test["NAME"] = run_database_name(test.get("NAME") or f"test_{db['NAME']}")


@pytest.fixture(autouse=True)
def _no_rollup_on_ingest(settings: Any) -> None:
    """Tests run rollups explicitly, so each one sees exactly the rollups it asked for."""
    settings.TESSERA_ROLLUP_ON_INGEST = False


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Real Celery workers (``celery_worker`` tests): started by the test, killed after it."""
    pool = Workers()
    yield pool
    pool.stop()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def org(db: None) -> Any:
    return OrgFactory.create(slug="acme")


@pytest.fixture
def other_org(db: None) -> Any:
    return OrgFactory.create(slug="globex")


@pytest.fixture
def gpu_meter(db: None) -> Any:
    return MeterFactory.create(
        key="gpu_time",
        event_type="gpu.usage",
        value_path="$.gpu_seconds",
        aggregation="sum",
        group_by={"gpu_model": "$.gpu_model", "region": "$.region"},
        unit="GPU-second",
    )


@pytest.fixture
def collector_key(db: None) -> str:
    return api_key_create(name="collector").raw_key


@pytest.fixture
def client_for() -> Callable[[str], APIClient]:
    def make(raw_key: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return make


def make_event(
    *,
    id: str,
    subject: str = "acme",
    time: datetime | str | None = None,
    type: str = "gpu.usage",
    source: str = "node-1",
    data: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    moment = time or datetime.now(UTC) - timedelta(hours=1)
    return {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": type,
        "subject": subject,
        "time": moment if isinstance(moment, str) else moment.isoformat().replace("+00:00", "Z"),
        "data": data
        if data is not None
        else {"gpu_seconds": "60", "gpu_model": "H100", "region": "eu-north"},
        **extra,
    }


def vendor() -> str:
    return connection.vendor
