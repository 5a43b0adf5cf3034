"""JSON errors with a stable ``code`` and a human ``message`` (SPEC §5).

Validation errors also carry ``fields``: each offending field with its messages.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """An error with an explicit stable code, raised by views for domain failures."""

    def __init__(self, *, code: str, message: str, status_code: int = 400) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_json",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_error",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        response.data = error_body(exc.error_code, str(exc.detail))
        return response
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        names = ", ".join(str(name) for name in fields)
        response.data = error_body(code, f"Invalid input: {names}.", fields=fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(code, str(detail))
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response["WWW-Authenticate"] = 'Bearer realm="tessera"'
    return response


# The body of every error response, as an OpenAPI schema.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "Stable, machine-readable code."},
        "message": {"type": "string", "description": "What is wrong, for a person."},
        "fields": {
            "type": "object",
            "description": "Validation errors: each offending field with its messages.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


_ERROR_STATUSES = {
    400: "Invalid input (the fields are named).",
    401: "No API key or session, or an invalid or revoked key.",
    403: "Authenticated, but not allowed.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    413: "Too large.",
    415: "Unsupported content type.",
    429: "Rate limited; see Retry-After.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the given error statuses (401, 403 and 429 always apply)."""
    wanted = sorted({401, 403, 429, *statuses})
    return {s: OpenApiResponse(ERROR_SCHEMA, description=_ERROR_STATUSES[s]) for s in wanted}
