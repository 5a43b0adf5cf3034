"""Errors of the webhook rules."""

from core.errors import DomainError, ErrorCode, ErrorKind


class WebhookError(DomainError):
    """A webhook endpoint that cannot be set as asked; the offending input is named."""

    codes = {
        "invalid_url": ErrorCode(ErrorKind.INVALID, "Not an absolute http(s) URL."),
        "insecure_url": ErrorCode(ErrorKind.INVALID, "Webhook URLs must use https."),
        "unresolvable_url": ErrorCode(ErrorKind.INVALID, "The URL's host does not resolve."),
        "private_url": ErrorCode(
            ErrorKind.INVALID, "The URL's host is a private, loopback or reserved address."
        ),
        "unknown_event_type": ErrorCode(ErrorKind.INVALID, "Not one of the event types."),
    }

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message, {field: [message]} if field else None)
        self.field = field
