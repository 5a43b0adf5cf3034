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
