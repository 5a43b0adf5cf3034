from django.urls import path, re_path

from . import apis

urlpatterns = [
    path("invoices", apis.InvoiceListApi.as_view(), name="invoices"),
    path("invoices/export", apis.InvoiceExportApi.as_view(), name="invoices-export"),
    path("invoices/<int:invoice_id>", apis.InvoiceDetailApi.as_view(), name="invoice"),
    path("invoices/<int:invoice_id>/pdf", apis.InvoicePdfApi.as_view(), name="invoice-pdf"),
    re_path(
        r"^invoices/(?P<invoice_id>[0-9]+)/(?P<fmt>facturx|xrechnung)$",
        apis.InvoiceEInvoiceApi.as_view(),
        name="invoice-einvoice",
    ),
    path(
        "invoices/<int:invoice_id>/finalize",
        apis.InvoiceFinalizeApi.as_view(),
        name="invoice-finalize",
    ),
    path("invoices/<int:invoice_id>/void", apis.InvoiceVoidApi.as_view(), name="invoice-void"),
    path(
        "invoices/<int:invoice_id>/mark-uncollectible",
        apis.InvoiceUncollectibleApi.as_view(),
        name="invoice-mark-uncollectible",
    ),
    path(
        "invoices/<int:invoice_id>/credit-notes",
        apis.CreditNoteCreateApi.as_view(),
        name="invoice-credit-notes",
    ),
    path("credit-notes", apis.CreditNoteListApi.as_view(), name="credit-notes"),
    re_path(
        r"^credit-notes/(?P<note_id>[0-9]+)/(?P<fmt>pdf|facturx|xrechnung)$",
        apis.CreditNoteFileApi.as_view(),
        name="credit-note-file",
    ),
    path("stripe/webhook", apis.StripeWebhookApi.as_view(), name="stripe-webhook"),
]
