"""JSON errors with a stable ``code`` and a human ``message`` (SPEC §5), mapped to HTTP once.

Domain code raises ``core.errors.DomainError`` subclasses; ``exception_handler`` (DRF's
``EXCEPTION_HANDLER``) turns them, and DRF's own exceptions, into one body. Validation errors
also carry ``fields``: each offending field with its messages. ``document_error_codes``
(a drf-spectacular postprocessing hook) lists every code in the OpenAPI schema.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from core.errors import DomainError, ErrorKind, domain_error_codes

# The one mapping of a domain refusal to HTTP.
DOMAIN_STATUS = {
    ErrorKind.INVALID: status.HTTP_400_BAD_REQUEST,
    ErrorKind.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    ErrorKind.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorKind.CONFLICT: status.HTTP_409_CONFLICT,
}

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

# Codes the API layer itself answers with (DRF's, and the ingestion endpoint's), by status.
API_CODES: dict[int, dict[str, str]] = {
    400: {
        "validation_error": "The input is invalid; ``fields`` names each field.",
        "malformed_json": "The body is not JSON (or not UTF-8).",
        "invalid_batch": "An NDJSON or JSON-array batch of the wrong shape.",
    },
    401: {
        "not_authenticated": "No API key or session.",
        "authentication_failed": "An invalid or revoked API key.",
    },
    403: {"permission_denied": "Authenticated, but not allowed."},
    404: {"not_found": "No such resource, or not one the caller may see."},
    405: {"method_not_allowed": "The method is not allowed here."},
    413: {"payload_too_large": "The body or batch is too large."},
    415: {"unsupported_media_type": "Unsupported content type."},
    429: {"rate_limited": "Rate limited; see Retry-After."},
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        set_rollback()
        extra = {"fields": exc.fields} if exc.fields else {}
        return Response(error_body(exc.code, exc.message, **extra), DOMAIN_STATUS[exc.kind])
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
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


def error_responses(*statuses: int, always: bool = True) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for the given error statuses (with ``always``, 401, 403 and 429,
    which apply to every authenticated endpoint)."""
    wanted = sorted({*statuses, *((401, 403, 429) if always else ())})
    return {s: OpenApiResponse(ERROR_SCHEMA, description=_ERROR_STATUSES[s]) for s in wanted}


def error_codes_by_status() -> dict[int, dict[str, str]]:
    """Every error code the API answers with, by HTTP status: code → meaning."""
    by_status = {status_code: dict(codes) for status_code, codes in API_CODES.items()}
    for code, declared in sorted(domain_error_codes().items()):
        by_status.setdefault(DOMAIN_STATUS[declared.kind], {})[code] = declared.meaning
    return by_status


def document_error_codes(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the error body becomes the shared ``Error``
    component, whose ``code`` lists every code with its status and meaning, and each error
    response names the codes of its status."""
    by_status = error_codes_by_status()
    table = "\n".join(
        f"- `{code}` ({status_code}): {meaning}"
        for status_code, codes in sorted(by_status.items())
        for code, meaning in codes.items()
    )
    component = {**ERROR_SCHEMA, "properties": dict(ERROR_SCHEMA["properties"])}
    component["properties"]["code"] = {
        "type": "string",
        "description": f"Stable, machine-readable code; one of:\n{table}",
    }
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = component
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for status_code, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json", {})
                if content.get("schema") != ERROR_SCHEMA:
                    continue
                content["schema"] = {"$ref": "#/components/schemas/Error"}
                codes = by_status.get(int(status_code), {})
                if codes:
                    listed = ", ".join(f"`{code}`" for code in codes)
                    response["description"] = f"{response['description']} Codes: {listed}."
    return result
