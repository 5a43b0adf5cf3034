import redis
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as page_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import page_not_found
from django.views.defaults import server_error as page_server_error

from metering import metrics

from .settings import env


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database (and the broker, when one is configured) answer."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {exc.__class__.__name__}"
    if env.CELERY_BROKER_URL.startswith("redis"):
        try:
            redis.Redis.from_url(env.CELERY_BROKER_URL, socket_timeout=2).ping()
            checks["broker"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["broker"] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """API paths answer JSON errors like every other API error; pages keep Django's page."""
    if _wants_json(request):
        return JsonResponse(
            {"code": "not_found", "message": f"No such path: {request.path}"}, status=404
        )
    return page_not_found(request, exception or Exception())


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"code": "server_error", "message": "Internal error; it has been logged."}, status=500
        )
    return page_server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"code": "csrf_failed", "message": f"CSRF check failed: {reason}"}, status=403
        )
    return page_csrf_failure(request, reason)
