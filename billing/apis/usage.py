"""Usage per hour, day or month, with its rated cost (SPEC §5). Thin: parse, check who may
read, one selector."""

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, SequenceCursor
from metering.apis import UsagePointSerializer, format_quantity, parse_moment
from metering.models import Meter
from metering.selectors import UsagePoint, usage_series, window_end
from tenancy.api_access import org_for_read
from tenancy.models import Org

from ..models import BillingPeriod, Product
from ..usage import ProductWindow, product_usage, products_matching, window_start
from .common import amount_text, period_param

MAX_DAYS = 400


@extend_schema_serializer(component_name="ProductUsage")
class ProductUsageSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    product = serializers.CharField()
    name = serializers.CharField()
    unit = serializers.CharField(help_text="The billing unit.")
    quantity_kind = serializers.ChoiceField(
        choices=Product.Quantity.values, help_text="hourly: Σ U(h); period: the window's peak…"
    )
    quantity = serializers.CharField(help_text="Decimal string, billing units.")
    amount = serializers.CharField(help_text="Rated cost, excl. VAT, in `currency`.")
    currency = serializers.CharField()


@extend_schema_serializer(component_name="MeterUsage")
class MeterUsageSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    meter = serializers.CharField()
    unit = serializers.CharField(help_text="The meter's unit.")
    value = serializers.CharField()
    event_count = serializers.IntegerField()


class UsageApi(APIView):
    """Usage per hour, day or month: per product in billing units with its rated cost
    (default), per meter in meter units (``group_by=meter``), or one meter's usage grouped
    by its dimensions (``meter=…&group_by=gpu_model``). Without ``start`` and ``end``: the
    billing period (``period=YYYY-MM``, default the current one)."""

    @extend_schema_serializer(component_name="UsageQuery")
    class QuerySerializer(serializers.Serializer):
        org = serializers.SlugField(required=False, help_text="Needed when you see several.")
        group_by = serializers.CharField(
            required=False,
            allow_blank=True,
            help_text="product (default), meter, or dimensions of `meter` (comma-separated).",
        )
        meter = serializers.SlugField(required=False, help_text="One meter, in its units.")
        product = serializers.CharField(required=False, help_text="Product keys, comma-separated.")
        window = serializers.ChoiceField(choices=["hour", "day", "month"], default="day")
        start = serializers.CharField(required=False, help_text="ISO date or datetime (incl.).")
        end = serializers.CharField(required=False, help_text="ISO date or datetime (excl.).")
        period = serializers.CharField(
            required=False, help_text="YYYY-MM: the billing period starting then; default: now."
        )
        currency = serializers.CharField(
            required=False, help_text="Of the costs; default: the period's."
        )

    @extend_schema(
        operation_id="usage_read",
        parameters=[
            QuerySerializer,
            OpenApiParameter("filter.<dimension>", str, description="Keep this dimension value."),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: inline_serializer(
                "Usage",
                {
                    "org": serializers.CharField(),
                    "group_by": serializers.ListField(child=serializers.CharField()),
                    "window": serializers.CharField(),
                    "start": serializers.DateTimeField(),
                    "end": serializers.DateTimeField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": serializers.ListField(
                        child=serializers.DictField(),
                        help_text="ProductUsage, MeterUsage or UsagePoint rows.",
                    ),
                },
            ),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        org = org_for_read(request, params.get("org"))
        meter = None
        if params.get("meter"):
            meter = Meter.objects.filter(key=params["meter"]).first()
            if meter is None:
                raise ValidationError({"meter": [f"No meter {params['meter']!r}."]})
        group_by = [g.strip() for g in (params.get("group_by") or "").split(",") if g.strip()]
        filters = {
            key.removeprefix("filter."): str(value)
            for key, value in request.query_params.items()
            if key.startswith("filter.")
        }
        period = period_param(org, params.get("period"))
        start, end = self._range(params, period)
        window = params["window"]
        head = {"org": org.slug, "window": window, "start": start, "end": end}
        if meter is not None:
            return self._meter(request, org, meter, group_by, filters, head)
        if group_by == ["meter"]:
            return self._meters(request, org, filters, head)
        if group_by not in ([], ["product"]):
            raise ValidationError(
                {"group_by": ["Group by product or meter; give `meter` to group by dimensions."]}
            )
        currency = params.get("currency") or (period.currency if period else org.currency)
        return self._products(request, org, params.get("product"), filters, currency, head)

    @staticmethod
    def _range(params: dict[str, Any], period: BillingPeriod | None) -> tuple[datetime, datetime]:
        if period is not None:
            default_start, default_end = period.start, period.end
        else:
            default_start = window_start(timezone.now(), "month")
            default_end = window_end(default_start, "month")
        start = parse_moment(params["start"], "start") if params.get("start") else default_start
        end = parse_moment(params["end"], "end") if params.get("end") else default_end
        if end <= start:
            raise ValidationError({"end": ["end must be after start."]})
        if (end - start).days > MAX_DAYS:
            raise ValidationError({"end": [f"At most {MAX_DAYS} days per request."]})
        return start.astimezone(UTC), end.astimezone(UTC)

    def _meter(
        self,
        request: Request,
        org: Org,
        meter: Meter,
        group_by: list[str],
        filters: dict[str, str],
        head: dict[str, Any],
    ) -> Response:
        unknown = [d for d in (*group_by, *filters) if d not in meter.group_by]
        if unknown:
            field = "group_by" if unknown[0] in group_by else f"filter.{unknown[0]}"
            known = ", ".join(sorted(meter.group_by)) or "none"
            raise ValidationError(
                {field: [f"Unknown dimension {unknown[0]!r}; meter {meter.key!r} has: {known}."]}
            )
        points = usage_series(
            org=org,
            meter=meter,
            start=head["start"],
            end=head["end"],
            window=head["window"],
            group_by=group_by,
            filters=filters,
        )

        def key(p: UsagePoint) -> list[str]:
            return [p.start.isoformat(), *(str(p.dimensions[g]) for g in group_by)]

        page = SequenceCursor(request, key).page(
            points,
            **head,
            group_by=group_by,
            meter=meter.key,
            unit=meter.unit,
            aggregation=meter.aggregation,
        )
        # One serializer for the page (many=True): a serializer per row deep-copies its fields,
        # each copy a reference cycle, and their collection paused every ~17th response.
        page["results"] = UsagePointSerializer(
            [
                {
                    "start": max(p.start, head["start"]),
                    "end": min(p.end, head["end"]),
                    "dimensions": p.dimensions,
                    "value": format_quantity(p.value),
                    "event_count": p.event_count,
                }
                for p in page["results"]
            ],
            many=True,
        ).data
        return Response(page)

    def _meters(
        self, request: Request, org: Org, filters: dict[str, str], head: dict[str, Any]
    ) -> Response:
        rows: list[tuple[Meter, UsagePoint]] = []
        for meter in Meter.objects.order_by("key"):
            if any(d not in meter.group_by for d in filters):
                continue
            for point in usage_series(
                org=org, meter=meter, start=head["start"], end=head["end"],
                window=head["window"], filters=filters,
            ):  # fmt: skip
                rows.append((meter, point))
        rows.sort(key=lambda r: (r[1].start, r[0].key))
        page = SequenceCursor[tuple[Meter, UsagePoint]](
            request, lambda r: [r[1].start.isoformat(), r[0].key]
        ).page(rows, **head, group_by=["meter"])
        page["results"] = MeterUsageSerializer(
            [
                {
                    "start": max(p.start, head["start"]),
                    "end": min(p.end, head["end"]),
                    "meter": m.key,
                    "unit": m.unit,
                    "value": format_quantity(p.value),
                    "event_count": p.event_count,
                }
                for m, p in page["results"]
            ],
            many=True,
        ).data
        return Response(page)

    def _products(
        self,
        request: Request,
        org: Org,
        keys: str | None,
        filters: dict[str, str],
        currency: str,
        head: dict[str, Any],
    ) -> Response:
        dimensions = {d for p in Product.objects.all() for d in p.filter}
        unknown = [d for d in filters if d not in dimensions]
        if unknown:
            known = ", ".join(sorted(dimensions)) or "none"
            raise ValidationError(
                {f"filter.{unknown[0]}": [f"No product has dimension {unknown[0]!r}: {known}."]}
            )
        products = products_matching(filters)
        if keys:
            wanted = [k.strip() for k in keys.split(",") if k.strip()]
            missing = [k for k in wanted if not Product.objects.filter(key=k).exists()]
            if missing:
                raise ValidationError({"product": [f"No product {missing[0]!r}."]})
            products = [p for p in products if p.key in wanted]
        rows = product_usage(
            org=org,
            start=head["start"],
            end=head["end"],
            window=head["window"],
            products=products,
            currency=currency.upper(),
        )
        page = SequenceCursor[ProductWindow](
            request, lambda r: [r.start.isoformat(), r.product.key]
        ).page(rows, **head, group_by=["product"], currency=currency.upper())
        page["results"] = [ProductUsageSerializer(_product_row(r)).data for r in page["results"]]
        return Response(page)


def _product_row(row: ProductWindow) -> dict[str, Any]:
    return {
        "start": row.start,
        "end": row.end,
        "product": row.product.key,
        "name": row.product.name,
        "unit": row.product.unit,
        "quantity_kind": row.product.quantity,
        "quantity": format_quantity(row.quantity),
        "amount": amount_text(row.amount, row.currency),
        "currency": row.currency,
    }
