from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


class RejectNulMiddleware:
    """NUL characters have no business in a URL; PostgreSQL text cannot even hold them.
    Refuse them once, here, rather than let each query parameter fail in the database."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return JsonResponse(
                {"code": "invalid_characters", "message": "The URL contains a NUL character."},
                status=400,
            )
        return self.get_response(request)


def proxied_client_ip(request: HttpRequest) -> str | None:
    """The client's address as the reverse proxy saw it: ``X-Real-IP``, which the proxy sets
    and never passes on from the client (deploy/nginx.conf). Login throttling (django-axes)
    uses it with ``TESSERA_BEHIND_PROXY``; without a proxy header, the peer's address."""
    return request.META.get("HTTP_X_REAL_IP") or request.META.get("REMOTE_ADDR")
