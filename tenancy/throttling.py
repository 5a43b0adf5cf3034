from typing import TYPE_CHECKING

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey

if TYPE_CHECKING:  # rest_framework.views loads these throttles while it is being imported
    from rest_framework.views import APIView


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (or per user for session callers); 429 with Retry-After over it.

    The counts live in the cache: set REDIS_URL so that every web process shares them.
    """

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        api_key = request.auth
        if isinstance(api_key, ApiKey):
            ident = f"key:{api_key.prefix}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class IngestThrottle(ApiKeyRateThrottle):
    scope = "ingest"


class ReadThrottle(ApiKeyRateThrottle):
    """Every read endpoint's default throttle (``TESSERA_READ_RATE``); writes pass."""

    scope = "read"

    def allow_request(self, request: Request, view: "APIView") -> bool:
        if request.method not in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
