from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from tenancy.api_access import org_for_read

from .models import Product
from .selectors import org_summary, products_list


class ProductListApi(APIView):
    @extend_schema_serializer(component_name="Product")
    class OutputSerializer(serializers.ModelSerializer):
        meter: serializers.SlugRelatedField = serializers.SlugRelatedField(
            slug_field="key", read_only=True
        )

        class Meta:
            model = Product
            fields = ["key", "name", "meter", "filter", "unit", "unit_size"]

    @extend_schema(
        operation_id="products_list",
        responses={200: OutputSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(products_list(), many=True).data)


class _ReservedHourSerializer(serializers.Serializer):
    hour = serializers.DateTimeField()
    reserved = serializers.CharField(help_text="Billing units reserved in this hour.")
    used = serializers.CharField(help_text="Billing units used in this hour.")


class OrgSummaryApi(APIView):
    """The current billing period: usage and cost so far, reservations, credits, forecast."""

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
            amount = serializers.DecimalField(max_digits=20, decimal_places=2)

        @extend_schema_serializer(component_name="SummaryCharge")
        class ChargeSerializer(serializers.Serializer):
            product = serializers.CharField(source="product.key")
            kind = serializers.CharField()
            description = serializers.CharField()
            quantity = serializers.DecimalField(max_digits=30, decimal_places=6)
            unit_price = serializers.DecimalField(max_digits=28, decimal_places=12)
            amount = serializers.DecimalField(max_digits=20, decimal_places=2)

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
            hours = _ReservedHourSerializer(many=True)

        @extend_schema_serializer(component_name="SummaryCredit")
        class CreditSerializer(serializers.Serializer):
            key = serializers.CharField()
            amount = serializers.DecimalField(max_digits=20, decimal_places=2)
            balance = serializers.DecimalField(max_digits=20, decimal_places=2)
            currency = serializers.CharField()
            expires = serializers.DateField(allow_null=True)
            applied_this_period = serializers.DecimalField(max_digits=20, decimal_places=2)

        org = serializers.CharField()
        currency = serializers.CharField()
        period = PeriodSerializer(allow_null=True)
        rated_as_of = serializers.DateTimeField(allow_null=True)
        products = ProductSerializer(many=True)
        charges = ChargeSerializer(many=True)
        cost_so_far = serializers.DecimalField(max_digits=20, decimal_places=2)
        credits_applied = serializers.DecimalField(max_digits=20, decimal_places=2)
        reservations = ReservationSerializer(many=True)
        credits = CreditSerializer(many=True)
        forecast = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
        forecast_method = serializers.CharField()

    @extend_schema(
        operation_id="org_summary", responses={200: OutputSerializer, **error_responses(400, 404)}
    )
    def get(self, request: Request, org: str) -> Response:
        summary = org_summary(org=org_for_read(request, org))
        return Response(self.OutputSerializer(summary).data)
