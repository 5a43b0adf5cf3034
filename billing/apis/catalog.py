"""Products and rate cards (SPEC §5): what can be bought, at which list prices."""

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
from config.pagination import PAGE_PARAMETERS, paginated
from tenancy.access import caller, is_staff_reader

from ..models import Product, RateCard
from ..selectors import (
    products_list,
    rate_cards_for,
)
from .common import contract_orgs


class ProductListApi(APIView):
    @extend_schema_serializer(component_name="Product")
    class OutputSerializer(serializers.ModelSerializer):
        meter: serializers.SlugRelatedField = serializers.SlugRelatedField(
            slug_field="key", read_only=True
        )

        class Meta:
            model = Product
            fields = ["key", "name", "meter", "filter", "unit", "unit_size", "quantity"]

    @extend_schema(
        operation_id="products_list",
        parameters=PAGE_PARAMETERS,
        responses={
            200: inline_serializer("ProductPage", {"results": OutputSerializer(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(
            paginated(request, self, products_list(), lambda p: self.OutputSerializer(p).data)
        )


class RateCardListApi(APIView):
    """List prices: every version of the rate cards your contracts use (staff: all)."""

    @extend_schema_serializer(component_name="RateCard")
    class OutputSerializer(serializers.ModelSerializer):
        @extend_schema_serializer(component_name="RateCardPrice")
        class PriceSerializer(serializers.Serializer):
            product = serializers.CharField(source="product.key")
            model = serializers.CharField()
            unit_price = serializers.DecimalField(
                max_digits=28, decimal_places=12, allow_null=True, help_text="Per billing unit."
            )
            package_size = serializers.DecimalField(
                max_digits=30, decimal_places=12, allow_null=True
            )
            tiers = serializers.ListField(child=serializers.DictField())

        prices = PriceSerializer(many=True)

        class Meta:
            model = RateCard
            fields = ["key", "name", "currency", "effective_from", "prices"]

    @extend_schema(
        operation_id="rate_cards_list",
        parameters=[OpenApiParameter("org", str, description="Org slug."), *PAGE_PARAMETERS],
        responses={
            200: inline_serializer("RateCardPage", {"results": OutputSerializer(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("org")
        user, api_key = caller(request)
        staff = is_staff_reader(user=user, api_key=api_key)
        orgs = None if staff and not slug else contract_orgs(request)
        cards = rate_cards_for(orgs=orgs)
        return Response(paginated(request, self, cards, lambda c: self.OutputSerializer(c).data))
