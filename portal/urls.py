from django.urls import path

from . import notifications, views

app_name = "portal"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("usage.csv", views.usage_csv, name="usage-csv"),
    path("prices", views.prices, name="prices"),
    path("keys", views.key_create, name="key-create"),
    path("keys/<int:key_id>/revoke", views.key_revoke, name="key-revoke"),
    path("alerts", notifications.alerts, name="alerts"),
    path("alerts/new", notifications.alert_create, name="alert-create"),
    path("alerts/<int:alert_id>/<slug:action>", notifications.alert_act, name="alert-action"),
    path("webhooks", notifications.webhooks, name="webhooks"),
    path("webhooks/new", notifications.webhook_create, name="webhook-create"),
    path("webhooks/<int:endpoint_id>", notifications.webhook, name="webhook"),
    path(
        "webhooks/<int:endpoint_id>/<slug:action>",
        notifications.webhook_act,
        name="webhook-action",
    ),
    path(
        "webhooks/deliveries/<int:delivery_id>/replay",
        notifications.delivery_replay,
        name="delivery-replay",
    ),
]
