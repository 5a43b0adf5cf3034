from collections.abc import Iterator

import pytest
from pytest_django import Settings

from ...support.receiver import Receiver, serve


@pytest.fixture
def receiver(settings: Settings) -> Iterator[Receiver]:
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    yield from serve()
