"""Invoicing and Stripe endpoints. Thin: parse, check who may, call one service/selector.

Finance and operators read every org's invoices (drafts included); finance alone changes
them. Customers (members, org API keys with the read scope) read their own org's finalized
invoices and their PDFs; another org's invoice is a 404, so its existence never leaks.
"""

import io
from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    OpenApiTypes,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, paginated
from core.timeparse import month_of
from tenancy.access import caller, has_role
from tenancy.api_access import org_for_read
from tenancy.models import Org, StaffRole

from ..stripe.webhooks import webhook_receive
from .credit_notes import CreditRequest, credit_note_issue
from .einvoice import FORMATS, NoEInvoice, document_file
from .errors import InvoicingError
from .export import credit_note_dict, documents, invoice_dict, write_csv, write_json
from .finalization import invoices_finalize
from .models import Invoice
from .pdf import render_invoice_pdf
from .receivables import invoice_outstanding, invoice_paid_amount
from .selectors import credit_notes_for, invoice_get, invoices_for
from .status import invoice_mark_uncollectible, invoice_void

FINANCE_READERS = (StaffRole.FINANCE, StaffRole.OPERATOR)


def is_finance_reader(request: Request) -> bool:
    user, api_key = caller(request)
    return api_key is None and has_role(user, *FINANCE_READERS)


def require_finance(request: Request) -> None:
    user, api_key = caller(request)
    if api_key is not None or not has_role(user, StaffRole.FINANCE):
        raise PermissionDenied("Only finance may do this.")


def require_finance_reader(request: Request) -> None:
    if not is_finance_reader(request):
        raise PermissionDenied("Only finance and operators may do this.")


def readable_orgs(request: Request, slug: str | None) -> tuple[QuerySet[Org], bool]:
    """(orgs whose invoices the caller may read, whether drafts are visible)."""
    if is_finance_reader(request):
        orgs = Org.objects.all()
        return (orgs.filter(slug=slug) if slug else orgs), True
    org = org_for_read(request, slug)
    return Org.objects.filter(pk=org.pk), False


def _period(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        return month_of(value)
    except ValueError:
        raise ValidationError({"period": ["Expected YYYY-MM."]}) from None


def _invoice_out(invoice: Invoice | None) -> dict[str, Any]:
    if invoice is None:
        raise NotFound("No such invoice.")
    return {
        "id": invoice.pk,
        **invoice_dict(invoice),
        # Receivables (SPEC §5) and the balance rule (SPEC §3), beside the export's fields.
        "balance_carried": str(invoice.balance_carried),
        "amount_paid": str(invoice_paid_amount(invoice=invoice)),
        "amount_outstanding": (
            None if invoice.is_draft else str(invoice_outstanding(invoice=invoice))
        ),
        "replaces": invoice.replaces.number if invoice.replaces_id and invoice.replaces else None,
    }


def _visible_invoice(request: Request, invoice_id: int) -> Invoice:
    orgs, drafts = readable_orgs(request, request.query_params.get("org"))
    invoice = invoice_get(orgs=orgs, invoice_id=invoice_id)
    if invoice is None or (invoice.is_draft and not drafts):
        raise NotFound("No such invoice.")
    return invoice


class InvoiceLineSchema(serializers.Serializer):
    """One invoice line as the export writes it (SPEC §5); for the schema only."""

    kind = serializers.CharField()
    product = serializers.CharField(allow_null=True, help_text="Product key.")
    description = serializers.CharField()
    quantity = serializers.CharField(help_text="Billing units, a decimal string.")
    unit = serializers.CharField()
    unit_price = serializers.CharField(
        help_text="Net price per unit, after any discount (EN 16931 BT-146), a decimal "
        "string: quantity × unit_price = amount."
    )
    list_unit_price = serializers.CharField(
        allow_null=True,
        help_text="The price per unit before the contract's percent discount (EN 16931 "
        "BT-148, item gross price); the discount per unit is list_unit_price − unit_price "
        "(BT-147). Null when the line is not discounted (list or custom price).",
    )
    amount = serializers.CharField(help_text="At the currency's minor unit.")
    period = serializers.DictField(
        allow_null=True, help_text="For an adjustment: the period it belongs to (start, end)."
    )


class InvoiceSchema(serializers.Serializer):
    """The invoice as the export writes it (SPEC §5), plus its id; for the schema only."""

    id = serializers.IntegerField()
    number = serializers.CharField(allow_null=True)
    org = serializers.CharField()
    issuer = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    issue_date = serializers.DateField(allow_null=True)
    due_date = serializers.DateField(allow_null=True)
    lines = InvoiceLineSchema(many=True)
    subtotal = serializers.DecimalField(max_digits=20, decimal_places=4)
    credits = serializers.DecimalField(max_digits=20, decimal_places=4)
    taxes = serializers.ListField(child=serializers.DictField())
    tax_total = serializers.DecimalField(max_digits=20, decimal_places=4)
    total = serializers.DecimalField(max_digits=20, decimal_places=4)


INVOICE_SCHEMA = InvoiceSchema
FILTERS = [
    OpenApiParameter("org", str, description="Org slug."),
    OpenApiParameter("period", str, description="YYYY-MM: the month the period starts in."),
    OpenApiParameter("issuer", str, description="Issuer key (finance)."),
    OpenApiParameter("status", str, many=True, description="Statuses (finance)."),
]


class InvoiceListApi(APIView):
    @extend_schema(
        operation_id="invoices_list",
        parameters=[*FILTERS, *PAGE_PARAMETERS],
        responses={
            200: inline_serializer("InvoicePage", {"results": INVOICE_SCHEMA(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        orgs, drafts = readable_orgs(request, request.query_params.get("org"))
        statuses = [s for s in request.query_params.getlist("status") if s]
        unknown = [s for s in statuses if s not in Invoice.Status.values]
        if unknown:
            known = ", ".join(Invoice.Status.values)
            raise ValidationError({"status": [f"Unknown status {unknown[0]!r}; one of {known}."]})
        invoices = invoices_for(
            orgs=orgs,
            period=_period(request.query_params.get("period")),
            issuer=request.query_params.get("issuer"),
            status=statuses or None,
            include_drafts=drafts,
        )
        return Response(paginated(request, self, invoices, _invoice_out))


class InvoiceDetailApi(APIView):
    @extend_schema(
        operation_id="invoices_retrieve",
        responses={200: INVOICE_SCHEMA, **error_responses(400, 404, 409)},
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        return Response(_invoice_out(_visible_invoice(request, invoice_id)))


class InvoicePdfApi(APIView):
    @extend_schema(
        operation_id="invoices_pdf",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, **error_responses(400, 404, 409)},
    )
    def get(self, request: Request, invoice_id: int) -> HttpResponse:
        invoice = _visible_invoice(request, invoice_id)
        name = invoice.number or f"draft-{invoice.pk}"
        response = HttpResponse(render_invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
        return response


def _file_response(document: Any, fmt: str) -> HttpResponse:
    try:
        name, content, media_type = document_file(document, fmt)
    except NoEInvoice as exc:
        raise InvoicingError(exc.code, str(exc)) from None
    response = HttpResponse(content, content_type=media_type)
    disposition = "inline" if fmt == "pdf" else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{name}"'
    return response


E_INVOICE_RESPONSES: dict[Any, Any] = {
    (200, "application/pdf"): OpenApiTypes.BINARY,
    (200, "application/xml"): OpenApiTypes.BINARY,
    **error_responses(400, 404, 409),
}


class InvoiceEInvoiceApi(APIView):
    """The invoice as a European e-invoice (EN 16931): ``facturx`` (PDF/A-3 with
    ``factur-x.xml``) or ``xrechnung`` (CII XML). A draft has none yet (409
    ``invoice_draft``), nor has a void invoice, no longer payable (409 ``invoice_void``)."""

    @extend_schema(operation_id="invoices_einvoice", responses=E_INVOICE_RESPONSES)
    def get(self, request: Request, invoice_id: int, fmt: str) -> HttpResponse:
        return _file_response(_visible_invoice(request, invoice_id), fmt)


class CreditNoteFileApi(APIView):
    """A credit note as ``pdf``, ``facturx`` or ``xrechnung`` (EN 16931 type 381, referencing
    its invoice). Customers read their own org's; another org's is a 404."""

    @extend_schema(operation_id="credit_notes_file", responses=E_INVOICE_RESPONSES)
    def get(self, request: Request, note_id: int, fmt: str) -> HttpResponse:
        if fmt not in FORMATS:
            raise NotFound("No such format.")
        orgs, _ = readable_orgs(request, request.query_params.get("org"))
        note = credit_notes_for(orgs=orgs).filter(pk=note_id).first()
        if note is None:
            raise NotFound("No such credit note.")
        return _file_response(note, fmt)


class InvoiceFinalizeApi(APIView):
    @extend_schema(
        operation_id="invoices_finalize",
        request=None,
        responses={200: INVOICE_SCHEMA, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        require_finance(request)
        if not Invoice.objects.filter(pk=invoice_id).exists():
            raise NotFound("No such invoice.")
        invoices_finalize(invoice_ids=[invoice_id])
        return Response(_invoice_out(invoice_get(orgs=Org.objects.all(), invoice_id=invoice_id)))


class _ReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class InvoiceVoidApi(APIView):
    InputSerializer = _ReasonInput
    service = staticmethod(invoice_void)

    @extend_schema(
        operation_id="invoices_void",
        request=_ReasonInput,
        responses={200: INVOICE_SCHEMA, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        require_finance(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not Invoice.objects.filter(pk=invoice_id).exists():
            raise NotFound("No such invoice.")
        self.service(invoice_id=invoice_id, reason=data.validated_data["reason"])
        return Response(_invoice_out(invoice_get(orgs=Org.objects.all(), invoice_id=invoice_id)))


class InvoiceUncollectibleApi(InvoiceVoidApi):
    service = staticmethod(invoice_mark_uncollectible)

    @extend_schema(operation_id="invoices_mark_uncollectible", request=_ReasonInput,
                   responses={200: INVOICE_SCHEMA, **error_responses(400, 404, 409)})  # fmt: skip
    def post(self, request: Request, invoice_id: int) -> Response:
        return super().post(request, invoice_id)


class CreditNoteCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            line = serializers.IntegerField(help_text="Invoice line id.")
            amount = serializers.DecimalField(max_digits=20, decimal_places=4, required=False)
            quantity = serializers.DecimalField(max_digits=30, decimal_places=12, required=False)

        reason = serializers.CharField(max_length=2000)
        lines = LineSerializer(many=True, required=False, help_text="Omit to credit it all.")

    @extend_schema(
        operation_id="credit_notes_create",
        request=InputSerializer,
        responses={201: OpenApiTypes.OBJECT, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        require_finance(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not Invoice.objects.filter(pk=invoice_id).exists():
            raise NotFound("No such invoice.")
        lines = data.validated_data.get("lines")
        requests = (
            [CreditRequest(l["line"], l.get("amount"), l.get("quantity")) for l in lines]  # noqa: E741
            if lines is not None
            else None
        )
        note = credit_note_issue(
            invoice_id=invoice_id, reason=data.validated_data["reason"], lines=requests
        )
        note = credit_notes_for(orgs=Org.objects.all()).get(pk=note.pk)
        return Response({"id": note.pk, **credit_note_dict(note)}, status=201)


class CreditNoteListApi(APIView):
    @extend_schema(
        operation_id="credit_notes_list",
        parameters=[*FILTERS[:3], *PAGE_PARAMETERS],
        responses={
            200: OpenApiResponse(
                {
                    "type": "object",
                    "properties": {
                        "next": {"type": "string", "nullable": True},
                        "previous": {"type": "string", "nullable": True},
                        "results": {"type": "array", "items": {"type": "object"}},
                    },
                }
            ),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        orgs, _ = readable_orgs(request, request.query_params.get("org"))
        notes = credit_notes_for(
            orgs=orgs,
            period=_period(request.query_params.get("period")),
            issuer=request.query_params.get("issuer"),
        )
        return Response(
            paginated(request, self, notes, lambda n: {"id": n.pk, **credit_note_dict(n)})
        )


class _FormatIsOurs(DefaultContentNegotiation):
    """``?format=csv`` names the export's format here, not one of DRF's renderers."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


class InvoiceExportApi(APIView):
    """The finance export (SPEC §5), as ``export_invoices`` writes it."""

    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        operation_id="invoices_export",
        parameters=[
            *FILTERS,
            OpenApiParameter("format", str, enum=["json", "csv"]),
            OpenApiParameter("credit_notes", bool),
        ],
        responses={(200, "application/json"): OpenApiTypes.OBJECT,
                   (200, "text/csv"): OpenApiTypes.STR, **error_responses(400, 404, 409)},
    )  # fmt: skip
    def get(self, request: Request) -> HttpResponse:
        require_finance_reader(request)
        params = request.query_params
        period = _period(params.get("period"))
        if period is None:
            raise ValidationError({"period": ["Required: YYYY-MM."]})
        fmt = params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ValidationError({"format": ["json or csv."]})
        orgs = Org.objects.filter(slug=params["org"]) if params.get("org") else Org.objects.all()
        credit_notes = params.get("credit_notes") in ("1", "true", "yes")
        statuses = params.getlist("status") or None
        query = (
            credit_notes_for(orgs=orgs, period=period, issuer=params.get("issuer"))
            if credit_notes
            else invoices_for(
                orgs=orgs, period=period, issuer=params.get("issuer"), status=statuses,
                include_drafts=bool(statuses and "draft" in statuses),
                include_void=bool(statuses and "void" in statuses),
            )
        )  # fmt: skip
        out = io.StringIO()
        if fmt == "json":
            write_json(documents(query), out)
            return HttpResponse(out.getvalue(), content_type="application/json")
        write_csv(documents(query), out, credit_notes=credit_notes)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="invoices-{params["period"]}.csv"'
        return response


class StripeWebhookApi(APIView):
    """Stripe calls this; its signature on the raw body is the only credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="stripe_webhook",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, always=False)},
    )
    def post(self, request: Request) -> Response:
        received = webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
        return Response(
            {"received": True, "id": received.event.event_id, "duplicate": received.duplicate,
             "result": received.event.result}
        )  # fmt: skip
