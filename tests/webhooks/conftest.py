from collections.abc import Iterator

import pytest
from pytest_django import Settings

from ..support.receiver import Receiver, serve


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture(autouse=True)
def _local_receivers_allowed(settings: Settings) -> None:
    """The receivers are on 127.0.0.1 over http: allowed here, never in production."""
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
