from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from tenancy.access import caller, has_role, is_staff_reader, visible_orgs
from tenancy.api_access import org_for_read
from tenancy.models import Membership, Org, StaffRole

from .models import Product
from .money import money_text
from .selectors import contract_terms, contracts_for, org_summary, products_list
from .services import org_billing_details_update


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


class MoneyField(serializers.Field):
    """An amount as a decimal string at its currency's minor unit (Babel): "1.297" KWD,
    "1.30" USD, "1235" JPY. The currency is the object's own, else the summary's."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        root = getattr(self.root, "instance", None)
        currency = getattr(instance, "currency", None) or getattr(root, "currency", "USD")
        return (value, currency)

    def to_representation(self, value: Any) -> Any:
        amount, currency = value
        return None if amount is None else money_text(amount, currency)


extend_schema_field({"type": "string", "format": "decimal", "example": "1.297"})(MoneyField)


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
            amount = MoneyField()

        @extend_schema_serializer(component_name="SummaryCharge")
        class ChargeSerializer(serializers.Serializer):
            product = serializers.CharField(source="product.key")
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
        operation_id="org_summary", responses={200: OutputSerializer, **error_responses(400, 404)}
    )
    def get(self, request: Request, org: str) -> Response:
        summary = org_summary(org=org_for_read(request, org))
        return Response(self.OutputSerializer(summary).data)


class OrgBillingDetailsApi(APIView):
    """What the org's invoices print and how they are taxed: legal name, billing address,
    country, VAT id (SPEC §3, §6 step 8). Read: anyone who may read the org. Change (PATCH):
    the org's owners and finance. A VAT id is checked for format and check digits against the
    country (python-stdnum); an invalid one is a 400 naming ``vat_id``, and nothing changes.
    Finalized invoices keep the details they were issued with."""

    @extend_schema_serializer(component_name="OrgBillingDetails")
    class OutputSerializer(serializers.Serializer):
        org = serializers.CharField(source="slug")
        name = serializers.CharField()
        billing_address = serializers.CharField()
        country = serializers.CharField()
        vat_id = serializers.CharField(help_text="Compacted, e.g. DE811907980; empty: none.")
        billing_email = serializers.CharField(help_text="Where invoices go (e-invoice BT-49).")
        currency = serializers.CharField()

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, max_length=200)
        billing_address = serializers.CharField(required=False, allow_blank=True, max_length=1000)
        country = serializers.CharField(required=False, min_length=2, max_length=2)
        vat_id = serializers.CharField(required=False, allow_blank=True, max_length=32)
        billing_email = serializers.CharField(required=False, allow_blank=True, max_length=254)

    @extend_schema(
        operation_id="org_billing_details",
        responses={200: OutputSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, org: str) -> Response:
        return Response(self.OutputSerializer(org_for_read(request, org)).data)

    @extend_schema(
        operation_id="org_billing_details_update",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 403, 404)},
    )
    def patch(self, request: Request, org: str) -> Response:
        from rest_framework.exceptions import PermissionDenied

        target = org_for_read(request, org)
        user, api_key = caller(request)
        owner = Membership.objects.filter(
            org=target, user_id=getattr(user, "pk", 0) or 0, role=Membership.Role.OWNER
        ).exists()
        if api_key is not None or not (owner or has_role(user, StaffRole.FINANCE)):
            raise PermissionDenied("Only the org's owners and finance may change billing details.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        updated = org_billing_details_update(org=target, user=user, **data.validated_data)
        return Response(self.OutputSerializer(updated).data)


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
