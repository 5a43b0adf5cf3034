from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control


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


class NoStoreMiddleware:
    """``Cache-Control: no-store, private`` on what must never sit in a browser's or a
    proxy's cache: the signed-in pages (portal, with the page that shows a new API key;
    finance; deal desk) and every document (PDFs, downloads)."""

    PREFIXES = ("/portal/", "/finance/", "/deals/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        document = response.get("Content-Type", "").startswith("application/pdf") or (
            response.get("Content-Disposition", "").startswith(("attachment", "inline"))
        )
        if document or request.path.startswith(self.PREFIXES):
            patch_cache_control(response, no_store=True, private=True, max_age=0)
            response.headers.pop("Expires", None)
        return response
