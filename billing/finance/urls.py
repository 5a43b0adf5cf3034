from django.urls import path

from . import notifications, views

app_name = "finance"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("close/", views.close_periods, name="close"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("invoices/finalize/", views.finalize_selected, name="finalize-selected"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice"),
    path("invoices/<int:invoice_id>/pdf", views.invoice_pdf, name="invoice-pdf"),
    path("invoices/<int:invoice_id>/<slug:action>/", views.invoice_action, name="invoice-action"),
    path("receivables/", views.receivables, name="receivables"),
    path("export/", views.export_download, name="export"),
    path("stripe/", views.stripe_status, name="stripe"),
    path("audit/", views.audit_log, name="audit"),
    path("unbilled/", views.unbilled, name="unbilled"),
    path("quarantine/", views.quarantine, name="quarantine"),
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
