"""Accepted usage that no charge bills, with its reason (SPEC §3 "Unbilled usage")."""

import json
from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import (
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, SequenceCursor
from metering.apis import format_quantity, parse_moment
from tenancy.access import caller, has_role
from tenancy.models import Org, StaffRole

from ..rating.unbilled import REASONS, unbilled_usage


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
        parameters=[QuerySerializer, *PAGE_PARAMETERS],
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
        page = SequenceCursor[Any](
            request,
            lambda r: [r.org, r.meter, json.dumps(r.dimensions, sort_keys=True), r.reason],
        ).page(
            sorted(
                rows,
                key=lambda r: (r.org, r.meter, json.dumps(r.dimensions, sort_keys=True), r.reason),
            )
        )
        results = [
            {**asdict(row), "quantity": format_quantity(row.quantity)} for row in page["results"]
        ]
        body = {"start": start, "end": end, "results": results}
        return Response(
            {**self.OutputSerializer(body).data, "next": page["next"], "previous": page["previous"]}
        )
