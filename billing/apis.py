"""Read APIs of billing (SPEC §5): products, usage with cost, the period summary and its
reserved hours, rate cards and contracts. Thin: parse, check who may read, one selector."""

import json
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, SequenceCursor, paginated
from metering.apis import UsagePointSerializer, format_quantity, parse_moment
from metering.models import Meter
from metering.selectors import UsagePoint, usage_series, window_end
from tenancy.access import caller, has_role, is_staff_reader, visible_orgs
from tenancy.api_access import org_for_read
from tenancy.models import Org, StaffRole

from .models import BillingPeriod, Product, RateCard
from .money import minor_units
from .rating.unbilled import REASONS, unbilled_usage
from .selectors import (
    ReservedHour,
    contract_terms,
    contracts_for,
    current_period,
    org_summary,
    period_starting_in,
    products_list,
    rate_cards_for,
    reservation_hours,
)
from .usage import ProductWindow, product_usage, products_matching, window_start

MAX_DAYS = 400


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount with exactly the currency's minor-unit decimals (USD 2, JPY 0)."""
    return f"{amount:.{minor_units(currency)}f}"


def _month(raw: str) -> tuple[int, int]:
    year, _, month = raw.partition("-")
    if not (len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()):
        raise ValidationError({"period": ["Expected YYYY-MM."]})
    if not 1 <= int(month) <= 12:
        raise ValidationError({"period": ["Expected YYYY-MM."]})
    return int(year), int(month)


def period_param(org: Org, raw: str | None) -> BillingPeriod | None:
    """``?period=YYYY-MM`` (the org's period that starts in that month), else the current."""
    if not raw or raw == "current":
        return current_period(org=org, at=timezone.now())
    year, month = _month(raw)
    period = period_starting_in(org=org, year=year, month=month)
    if period is None:
        raise ValidationError({"period": [f"Org {org.slug!r} has no period starting in {raw}."]})
    return period


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
        page["results"] = [
            UsagePointSerializer(
                {
                    "start": max(p.start, head["start"]),
                    "end": min(p.end, head["end"]),
                    "dimensions": p.dimensions,
                    "value": format_quantity(p.value),
                    "event_count": p.event_count,
                }
            ).data
            for p in page["results"]
        ]
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
        page["results"] = [
            MeterUsageSerializer(
                {
                    "start": max(p.start, head["start"]),
                    "end": min(p.end, head["end"]),
                    "meter": m.key,
                    "unit": m.unit,
                    "value": format_quantity(p.value),
                    "event_count": p.event_count,
                }
            ).data
            for m, p in page["results"]
        ]
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
            amount = serializers.DecimalField(max_digits=20, decimal_places=2)

        @extend_schema_serializer(component_name="SummaryCharge")
        class ChargeSerializer(serializers.Serializer):
            product = serializers.CharField(source="product.key", allow_null=True)
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
        page["results"] = [
            self.OutputSerializer(
                {
                    "product": r.product,
                    "hour": r.hour,
                    "reserved": f"{r.reserved.normalize():f}",
                    "used": f"{r.used.normalize():f}",
                }
            ).data
            for r in page["results"]
        ]
        return Response(page)


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
        orgs = None if staff and not slug else _contract_orgs(request)
        cards = rate_cards_for(orgs=orgs)
        return Response(paginated(request, self, cards, lambda c: self.OutputSerializer(c).data))


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
        parameters=[OpenApiParameter("org", str, description="Org slug."), *PAGE_PARAMETERS],
        responses={
            200: inline_serializer("ContractPage", {"results": _ContractSummary(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        contracts = contracts_for(orgs=_contract_orgs(request))
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
