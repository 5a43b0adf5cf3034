"""An org's billing details and its contracts with their terms (SPEC §5)."""

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, paginated
from tenancy.access import caller, has_role
from tenancy.api_access import org_for_read
from tenancy.models import Membership, StaffRole

from ..selectors import (
    contract_terms,
    contracts_for,
)
from ..services import org_billing_details_update
from .common import contract_orgs


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
        parameters=[OpenApiParameter("org", str, description="Org slug."), *PAGE_PARAMETERS],
        responses={
            200: inline_serializer("ContractPage", {"results": _ContractSummary(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        contracts = contracts_for(orgs=contract_orgs(request))
        return Response(paginated(request, self, contracts, lambda c: _ContractSummary(c).data))


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
        terms = contract_terms(orgs=contract_orgs(request), contract_id=contract_id)
        if terms is None:
            raise NotFound("No such contract.")
        return Response(self.OutputSerializer(terms).data)
