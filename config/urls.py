from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from web.views import home

from . import views

api_v1: list[URLPattern | URLResolver] = [
    path("", include("metering.urls")),
    path("", include("billing.urls")),
    path("", include("webhooks.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("", home, name="home"),
    path("api/v1/", include(api_v1)),
    # Unknown API paths answer a JSON 404 whatever DEBUG says.
    re_path(r"^api/", views.not_found),
    path("portal/", include("portal.urls")),
    path("finance/", include("billing.finance.urls")),
    path("admin/", admin.site.urls),
    path("deals/", include("billing.deals.urls_pages")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
