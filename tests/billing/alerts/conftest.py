from collections.abc import Iterator

import pytest

from ...support.receiver import Receiver, serve


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    yield from serve()
