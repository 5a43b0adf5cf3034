from dataclasses import asdict
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from metering.apis import format_quantity, parse_moment
from tenancy.access import caller, has_role, is_staff_reader, visible_orgs
from tenancy.api_access import org_for_read
from tenancy.models import Org, StaffRole

from .models import Product
from .rating.unbilled import REASONS, unbilled_usage
from .selectors import contract_terms, contracts_for, org_summary, products_list


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
            quantity = serializers.DecimalField(
                max_digits=30, decimal_places=6, help_text="Units reserved at its start."
            )
            amendment = serializers.IntegerField(
                allow_null=True, help_text="The amendment that added it; null: the contract's."
            )
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


def _contract_orgs(request: Request) -> QuerySet[Org]:
    """The orgs whose contracts the caller may read: staff see theirs (finance and operators
    every org), customers and org keys their own org (``?org=`` picks one)."""
    slug = request.query_params.get("org")
    user, api_key = caller(request)
    if is_staff_reader(user=user, api_key=api_key):
        orgs = visible_orgs(user=user)
        return orgs.filter(slug=slug) if slug else orgs
    return Org.objects.filter(pk=org_for_read(request, slug).pk)


@extend_schema_serializer(component_name="ContractSummary")
class _ContractSummary(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    key = serializers.CharField()
    org = serializers.CharField(source="org.slug")
    issuer = serializers.CharField(source="issuer.key")
    rate_card = serializers.CharField(source="rate_card_key")
    currency = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField(allow_null=True, help_text="Exclusive; null: open-ended.")
    billing_day = serializers.IntegerField()
    payment_terms_days = serializers.IntegerField()


class ContractListApi(APIView):
    @extend_schema(
        operation_id="contracts_list",
        parameters=[OpenApiParameter("org", str, description="Org slug.")],
        responses={200: _ContractSummary(many=True), **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        return Response(
            _ContractSummary(contracts_for(orgs=_contract_orgs(request)), many=True).data
        )


class ContractDetailApi(APIView):
    """A contract with its dated terms and amendment history (SPEC §3 "Amendments"): each
    reservation and price names the amendment that added it (null: the contract's own)."""

    @extend_schema_serializer(component_name="Contract")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="ContractReservation")
        class ReservationSerializer(serializers.Serializer):
            product = serializers.CharField(source="product.key")
            quantity = serializers.DecimalField(max_digits=30, decimal_places=6)
            unit_price = serializers.DecimalField(max_digits=28, decimal_places=12)
            burst_unit_price = serializers.DecimalField(
                max_digits=28, decimal_places=12, allow_null=True
            )
            start = serializers.DateField()
            end = serializers.DateField(help_text="Exclusive.")
            ramp = serializers.SerializerMethodField()
            amendment = serializers.IntegerField(source="amendment_id", allow_null=True)

            def get_ramp(self, reservation: Any) -> list[dict[str, str]]:
                return [
                    {"from": r.starts.isoformat(), "quantity": f"{r.quantity.normalize():f}"}
                    for r in reservation.ramps.all()
                ]

        @extend_schema_serializer(component_name="ContractTerm")
        class PriceSerializer(serializers.Serializer):
            product = serializers.CharField(
                source="product.key", allow_null=True, default=None, help_text="null: all."
            )
            discount_percent = serializers.DecimalField(max_digits=7, decimal_places=4)
            unit_price = serializers.DecimalField(
                max_digits=28, decimal_places=12, allow_null=True, help_text="A custom price."
            )
            valid_from = serializers.DateField()
            valid_until = serializers.DateField(allow_null=True, help_text="Exclusive.")
            amendment = serializers.IntegerField(source="amendment_id", allow_null=True)

        @extend_schema_serializer(component_name="ContractAmendment")
        class AmendmentSerializer(serializers.Serializer):
            id = serializers.IntegerField(source="pk")
            effective = serializers.DateField()
            signed_at = serializers.DateTimeField()
            signed_by = serializers.CharField(
                source="signed_by.username", allow_null=True, default=None
            )
            deal = serializers.SerializerMethodField()
            summary = serializers.CharField()

            def get_deal(self, amendment: Any) -> int | None:
                deal = getattr(amendment, "deal", None)
                return deal.pk if deal is not None else None

        contract = _ContractSummary()
        reservations = ReservationSerializer(many=True)
        prices = PriceSerializer(many=True)
        amendments = AmendmentSerializer(many=True)

    @extend_schema(
        operation_id="contracts_retrieve",
        responses={200: OutputSerializer, **error_responses(400, 404)},
    )
    def get(self, request: Request, contract_id: int) -> Response:
        terms = contract_terms(orgs=_contract_orgs(request), contract_id=contract_id)
        if terms is None:
            raise NotFound("No such contract.")
        return Response(self.OutputSerializer(terms).data)


class UnbilledUsageApi(APIView):
    """Accepted usage that no invoice line bills, with the reason (SPEC §3, §5). Finance and
    operators only: it spans every org."""

    @extend_schema_serializer(component_name="UnbilledUsageQuery")
    class QuerySerializer(serializers.Serializer):
        start = serializers.CharField(help_text="ISO date or datetime, whole hour (inclusive).")
        end = serializers.CharField(help_text="ISO date or datetime, whole hour (exclusive).")
        org = serializers.SlugField(required=False, help_text="Only this org.")

    @extend_schema_serializer(component_name="UnbilledUsage")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="UnbilledUsageRow")
        class RowSerializer(serializers.Serializer):
            org = serializers.CharField()
            meter = serializers.CharField()
            unit = serializers.CharField(help_text="The meter's unit.")
            dimensions = serializers.DictField()
            reason = serializers.ChoiceField(choices=REASONS)
            quantity = serializers.CharField(help_text="Decimal string, in the meter's unit.")
            events = serializers.IntegerField()
            start = serializers.DateTimeField(help_text="First hour with such usage.")
            end = serializers.DateTimeField(help_text="End of the last hour (exclusive).")

        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        results = RowSerializer(many=True)

    @extend_schema(
        operation_id="unbilled_usage_list",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer, **error_responses(400, 403)},
    )
    def get(self, request: Request) -> Response:
        user, api_key = caller(request)
        if api_key is not None or not has_role(user, StaffRole.FINANCE, StaffRole.OPERATOR):
            raise PermissionDenied("Only finance and operators may read unbilled usage.")
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        start = parse_moment(params["start"], "start")
        end = parse_moment(params["end"], "end")
        if end <= start:
            raise ValidationError({"end": ["end must be after start."]})
        orgs = Org.objects.all()  # finance and operators see every org
        if params.get("org"):
            orgs = orgs.filter(slug=params["org"])
            if not orgs.exists():
                raise ValidationError({"org": [f"No org {params['org']!r}."]})
        rows = unbilled_usage(orgs=orgs, start=start, end=end)
        results = [{**asdict(row), "quantity": format_quantity(row.quantity)} for row in rows]
        body = {"start": start, "end": end, "results": results}
        return Response(self.OutputSerializer(body).data)
