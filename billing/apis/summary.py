"""The period summary and its reserved hours (SPEC §5): cost so far, credits, forecast,
reservation use hour by hour."""

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, SequenceCursor
from tenancy.api_access import org_for_read

from ..models import BillingPeriod
from ..selectors import (
    ReservedHour,
    org_summary,
    reservation_hours,
)
from .common import MoneyField, period_param


class OrgSummaryApi(APIView):
    """A billing period (``?period=YYYY-MM``; default the current one): usage and cost so
    far, reservations, credits, forecast. The hourly netting is paginated separately under
    ``reservation-hours``."""

    @extend_schema_serializer(component_name="OrgSummary")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="SummaryPeriod")
        class PeriodSerializer(serializers.Serializer):
            start = serializers.DateTimeField()
            end = serializers.DateTimeField(help_text="Exclusive.")
            status = serializers.CharField()

        @extend_schema_serializer(component_name="SummaryProduct")
        class ProductSerializer(serializers.Serializer):
            product = serializers.CharField()
            name = serializers.CharField()
            unit = serializers.CharField()
            usage = serializers.DecimalField(max_digits=30, decimal_places=6)
            amount = MoneyField()

        @extend_schema_serializer(component_name="SummaryCharge")
        class ChargeSerializer(serializers.Serializer):
            product = serializers.CharField(source="product.key", allow_null=True)
            kind = serializers.CharField()
            description = serializers.CharField()
            quantity = serializers.DecimalField(max_digits=30, decimal_places=6)
            unit_price = serializers.DecimalField(max_digits=28, decimal_places=12)
            amount = MoneyField()

        @extend_schema_serializer(component_name="SummaryReservation")
        class ReservationSerializer(serializers.Serializer):
            product = serializers.CharField()
            start = serializers.DateField()
            end = serializers.DateField()
            reserved = serializers.DecimalField(max_digits=30, decimal_places=6)
            used = serializers.DecimalField(max_digits=30, decimal_places=6)
            covered = serializers.DecimalField(max_digits=30, decimal_places=6)
            burst = serializers.DecimalField(max_digits=30, decimal_places=6)
            utilization = serializers.DecimalField(
                max_digits=7, decimal_places=2, help_text="Covered ÷ reserved, percent."
            )

        @extend_schema_serializer(component_name="SummaryCredit")
        class CreditSerializer(serializers.Serializer):
            key = serializers.CharField()
            amount = MoneyField()
            balance = MoneyField()
            currency = serializers.CharField()
            expires = serializers.DateField(allow_null=True)
            applied_this_period = MoneyField()

        org = serializers.CharField()
        currency = serializers.CharField()
        period = PeriodSerializer(allow_null=True)
        rated_as_of = serializers.DateTimeField(allow_null=True)
        products = ProductSerializer(many=True)
        charges = ChargeSerializer(many=True)
        cost_so_far = MoneyField()
        credits_applied = MoneyField()
        reservations = ReservationSerializer(many=True)
        credits = CreditSerializer(many=True)
        forecast = MoneyField(allow_null=True)
        forecast_method = serializers.CharField()

    @extend_schema(
        operation_id="org_summary",
        parameters=[OpenApiParameter("period", str, description="YYYY-MM; default: current.")],
        responses={200: OutputSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request, org: str) -> Response:
        tenant = org_for_read(request, org)
        period = period_param(tenant, request.query_params.get("period"))
        summary = org_summary(org=tenant, period=period)
        data = self.OutputSerializer(summary).data
        if period is not None and period.status != BillingPeriod.Status.OPEN:
            data["forecast"] = None  # a closed period has its final cost, not a forecast
        return Response(data)


class ReservationHoursApi(APIView):
    """Reserved vs used per hour of a billing period (the netting behind the reservation,
    covered and burst lines), one row per product and hour, paginated."""

    @extend_schema_serializer(component_name="ReservedHour")
    class OutputSerializer(serializers.Serializer):
        product = serializers.CharField()
        hour = serializers.DateTimeField()
        reserved = serializers.CharField(help_text="R(h), billing units.")
        used = serializers.CharField(help_text="U(h), billing units.")

    @extend_schema(
        operation_id="reservation_hours",
        parameters=[
            OpenApiParameter("period", str, description="YYYY-MM; default: current."),
            OpenApiParameter("product", str, description="Product key."),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: inline_serializer("ReservedHourPage", {"results": OutputSerializer(many=True)}),
            **error_responses(400, 404),
        },
    )
    def get(self, request: Request, org: str) -> Response:
        tenant = org_for_read(request, org)
        period = period_param(tenant, request.query_params.get("period"))
        rows = (
            reservation_hours(
                org=tenant, period=period, product=request.query_params.get("product")
            )
            if period is not None
            else []
        )

        def key(row: ReservedHour) -> list[str]:
            return [row.product, row.hour.isoformat()]

        page = SequenceCursor(request, key).page(rows, org=tenant.slug)
        page["results"] = self.OutputSerializer(
            [
                {
                    "product": r.product,
                    "hour": r.hour,
                    "reserved": f"{r.reserved.normalize():f}",
                    "used": f"{r.used.normalize():f}",
                }
                for r in page["results"]
            ],
            many=True,
        ).data
        return Response(page)
