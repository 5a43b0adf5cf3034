"""Which endpoint URLs a worker may call (SSRF guard), checked when an endpoint is set and
again before every attempt (a name may resolve elsewhere later)."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from .errors import WebhookError


def endpoint_url_check(url: str) -> None:
    """Refuse URLs a worker must not call: not http(s), or (unless
    ``TESSERA_WEBHOOK_ALLOW_PRIVATE``) plain http or a host that resolves to a loopback,
    private, link-local or reserved address — the worker would otherwise be a way into the
    cloud's own network (SSRF). Raises ``WebhookError`` naming ``url``."""
    parts = urlsplit(url)
    allow_private = settings.TESSERA_WEBHOOK_ALLOW_PRIVATE
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError("invalid_url", "Give an absolute http(s) URL.", "url")
    if allow_private:
        return
    if parts.scheme != "https":
        raise WebhookError("insecure_url", "Webhook URLs must use https.", "url")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise WebhookError(
            "unresolvable_url", f"{parts.hostname!r} does not resolve.", "url"
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise WebhookError(
                "private_url", f"{parts.hostname!r} resolves to a non-public address.", "url"
            )
