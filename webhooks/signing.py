"""Standard Webhooks signing (https://www.standardwebhooks.com/), through the reference
``standardwebhooks`` library: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes (as Svix issues them)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_header(
    *, secrets_in_force: Iterable[str], msg_id: str, timestamp: datetime, body: bytes
) -> str:
    """The ``webhook-signature`` value: one ``v1,<sig>`` per secret, space-separated."""
    return " ".join(
        Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body)
        for secret in secrets_in_force
    )
