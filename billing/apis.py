from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses

from .models import Product
from .selectors import products_list


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
