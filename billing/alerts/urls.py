from django.urls import path

from . import apis

urlpatterns = [
    path("alerts", apis.AlertListCreateApi.as_view(), name="alerts"),
    path("alerts/<int:alert_id>", apis.AlertDetailApi.as_view(), name="alert"),
    path("alert-firings", apis.AlertFiringListApi.as_view(), name="alert-firings"),
]
