"""Cursor pagination for every list endpoint (SPEC §5): ``{"next", "previous", "results"}``.

``Cursor`` is DRF's ``CursorPagination`` for model lists (stable under inserts: the cursor
holds a position in the ordering, not an offset). ``SequenceCursor`` does the same for lists
computed in memory and sorted by a key (usage series): its cursor holds the key of the edge
item, so the next page starts right after it.
"""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

T = TypeVar("T")
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="Opaque: the `next` or `previous` link's."),
    OpenApiParameter("page_size", int, description=f"1 to {MAX_PAGE_SIZE}; {PAGE_SIZE}."),
]


class Cursor(CursorPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "pk"

    def decode_cursor(self, request: Request) -> Any:
        """A cursor that is not one of ours is bad input naming ``cursor`` (400), not a 404."""
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": ["Invalid cursor."]}) from None


def paginated(
    request: Request,
    view: APIView,
    queryset: QuerySet[Any],
    serialize: Callable[[Any], Any],
    *,
    ordering: str = "pk",
    **extra: Any,
) -> dict[str, Any]:
    """One page of ``queryset`` in ``ordering`` (a unique field, e.g. ``pk`` or ``-pk``):
    ``{**extra, "next", "previous", "results"}``."""
    pager = Cursor()
    pager.ordering = ordering
    page = pager.paginate_queryset(queryset, request, view) or []
    return {
        **extra,
        "next": pager.get_next_link(),
        "previous": pager.get_previous_link(),
        "results": [serialize(item) for item in page],
    }


def _page_size(request: Request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ValidationError({"page_size": [f"A whole number from 1 to {MAX_PAGE_SIZE}."]})
    return int(raw)


def _encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode(raw: str) -> dict[str, Any]:
    try:
        position = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError({"cursor": ["Invalid cursor."]}) from None
    if not isinstance(position, dict) or not (
        isinstance(position.get("after"), list) or isinstance(position.get("before"), list)
    ):
        raise ValidationError({"cursor": ["Invalid cursor."]})
    return position


class SequenceCursor(Generic[T]):
    """Cursor pagination over ``items`` sorted by ``key`` (a tuple of strings, unique)."""

    def __init__(self, request: Request, key: Callable[[T], list[str]]) -> None:
        self.request = request
        self.key = key
        self.size = _page_size(request)

    def page(self, items: Sequence[T], **extra: Any) -> dict[str, Any]:
        raw = self.request.query_params.get("cursor")
        position = _decode(raw) if raw else {"after": None}
        keys = [self.key(item) for item in items]
        if position.get("before") is not None:
            before = position["before"]
            end = next((i for i, k in enumerate(keys) if k >= before), len(keys))
            start = max(0, end - self.size)
        else:
            after = position.get("after")
            start = (
                0
                if after is None
                else next((i for i, k in enumerate(keys) if k > after), len(keys))
            )
            end = min(len(keys), start + self.size)
        url = self.request.build_absolute_uri()
        next_link = (
            replace_query_param(url, "cursor", _encode({"after": keys[end - 1]}))
            if end < len(keys) and end > start
            else None
        )
        if start > 0 and end > start:
            previous_link: str | None = replace_query_param(
                url, "cursor", _encode({"before": keys[start]})
            )
        elif start > 0:
            previous_link = remove_query_param(url, "cursor")
        else:
            previous_link = None
        return {
            **extra,
            "next": next_link,
            "previous": previous_link,
            "results": list(items[start:end]),
        }
