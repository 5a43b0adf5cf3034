"""``/api/v1/deals/...`` and ``/api/v1/capacity``: thin views over the deal services and
selectors. Account managers and finance only; every other caller gets 403."""

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import permissions, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, SequenceCursor, paginated
from core.timeparse import month_start
from tenancy.models import Org

from ..models import Contract, Issuer, Product
from . import access, selectors, services
from .capacity import PoolCapacity
from .models import Deal
from .quote import quote_number, render_quote_pdf
from .simulation import MAX_MONTHS, simulate
from .terms import LineInput, TermInput


class DeskStaff(permissions.BasePermission):
    message = "The deal desk is for account managers and finance."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return access.may_use_desk(request.user)


def _deal(request: Request, deal_id: int) -> Deal:
    return selectors.deal_for(user=request.user, deal_id=deal_id)


@extend_schema_serializer(component_name="DealRampStep")
class _Ramp(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is the catalog's name for a step's date, and a Python keyword.
        return {"from": serializers.DateField(), "quantity": serializers.IntegerField(min_value=0)}


@extend_schema_serializer(component_name="DealLineInput")
class _LineIn(serializers.Serializer):
    product = serializers.SlugRelatedField(slug_field="key", queryset=Product.objects.all())
    quantity = serializers.IntegerField(min_value=1)
    start = serializers.DateField()
    term_months = serializers.IntegerField(min_value=1, max_value=120)
    unit_price = serializers.DecimalField(max_digits=28, decimal_places=12, min_value=0)
    burst_unit_price = serializers.DecimalField(
        max_digits=28, decimal_places=12, min_value=0, required=False, allow_null=True
    )
    ramp = _Ramp(many=True, required=False)


@extend_schema_serializer(component_name="DealOnDemandTermInput")
class _TermIn(serializers.Serializer):
    product = serializers.SlugRelatedField(
        slug_field="key", queryset=Product.objects.all(), required=False, allow_null=True
    )
    discount_percent = serializers.DecimalField(
        max_digits=7, decimal_places=4, min_value=0, max_value=100, required=False, allow_null=True
    )
    unit_price = serializers.DecimalField(
        max_digits=28, decimal_places=12, min_value=0, required=False, allow_null=True
    )
    valid_from = serializers.DateField()
    valid_until = serializers.DateField(required=False, allow_null=True)


@extend_schema_serializer(component_name="DealTerms")
class _DealIn(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    rate_card = serializers.SlugField()
    issuer = serializers.SlugRelatedField(slug_field="key", queryset=Issuer.objects.all())
    amends = serializers.SlugField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Key of the org's running contract this deal amends; null: a new contract.",
    )
    lines = _LineIn(many=True, allow_empty=False)
    terms = _TermIn(many=True, required=False, default=list)


def _amends(org: Org, key: str | None) -> Contract | None:
    if key is None:
        return None
    contract = Contract.objects.filter(org=org, key=key).first()
    if contract is None:
        raise serializers.ValidationError({"amends": [f"{org.name} has no contract {key!r}."]})
    return contract


def _terms(data: dict[str, Any], org: Org) -> dict[str, Any]:
    return {
        "title": data["title"],
        "currency": data["currency"],
        "rate_card_key": data["rate_card"],
        "issuer": data["issuer"],
        "amends": _amends(org, data.get("amends")),
        "terms": [
            TermInput(
                product=term.get("product"),
                valid_from=term["valid_from"],
                valid_until=term.get("valid_until"),
                discount_percent=term.get("discount_percent"),
                unit_price=term.get("unit_price"),
            )
            for term in data.get("terms", [])
        ],
        "lines": [
            LineInput(
                product=line["product"],
                quantity=line["quantity"],
                start=line["start"],
                term_months=line["term_months"],
                unit_price=line["unit_price"],
                burst_unit_price=line.get("burst_unit_price"),
                ramp=[dict(step) for step in line.get("ramp", [])],
            )
            for line in data["lines"]
        ],
    }


@extend_schema_serializer(component_name="DealLine")
class _LineOut(serializers.Serializer):
    position = serializers.IntegerField()
    product = serializers.CharField(source="product.key")
    quantity = serializers.IntegerField()
    start = serializers.DateField()
    term_months = serializers.IntegerField()
    end = serializers.DateField(
        source="line_end", help_text="Exclusive; co-termed with an amended contract's end."
    )
    unit_price = serializers.DecimalField(max_digits=28, decimal_places=12)
    burst_unit_price = serializers.DecimalField(max_digits=28, decimal_places=12, allow_null=True)
    ramp = serializers.JSONField()


@extend_schema_serializer(component_name="DealOnDemandTerm")
class _TermOut(serializers.Serializer):
    position = serializers.IntegerField()
    product = serializers.CharField(source="product.key", allow_null=True, default=None)
    discount_percent = serializers.DecimalField(max_digits=7, decimal_places=4, allow_null=True)
    unit_price = serializers.DecimalField(max_digits=28, decimal_places=12, allow_null=True)
    valid_from = serializers.DateField()
    valid_until = serializers.DateField(allow_null=True)


@extend_schema_serializer(component_name="DealMonth")
class _Month(serializers.Serializer):
    month = serializers.DateField()
    gpu_hours = serializers.DecimalField(max_digits=30, decimal_places=6)
    amount = serializers.DecimalField(max_digits=20, decimal_places=4)
    current = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        help_text="What the amended contract already commits in the month (0: a new one).",
    )


@extend_schema_serializer(component_name="DealEconomics")
class _Economics(serializers.Serializer):
    currency = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    total_contract_value = serializers.DecimalField(max_digits=20, decimal_places=4)
    list_value = serializers.DecimalField(max_digits=20, decimal_places=4)
    discount_percent = serializers.DecimalField(max_digits=7, decimal_places=2)
    amends = serializers.CharField()
    current_value = serializers.DecimalField(max_digits=20, decimal_places=4)
    value_with_deal = serializers.DecimalField(max_digits=20, decimal_places=4)
    monthly = _Month(many=True)


@extend_schema_serializer(component_name="CapacityHolder")
class _Holder(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField(source="label")
    org = serializers.CharField()
    status = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=30, decimal_places=6)
    deal = serializers.IntegerField(source="deal_id", allow_null=True)


@extend_schema_serializer(component_name="CapacityMonth")
class _PoolMonth(serializers.Serializer):
    month = serializers.DateField()
    installed = serializers.DecimalField(max_digits=30, decimal_places=6)
    reserved = serializers.DecimalField(max_digits=30, decimal_places=6)
    available = serializers.DecimalField(max_digits=30, decimal_places=6)
    pipeline = serializers.DecimalField(max_digits=30, decimal_places=6)
    deal = serializers.DecimalField(max_digits=30, decimal_places=6)
    short = serializers.DecimalField(max_digits=30, decimal_places=6)
    holders = _Holder(many=True)


@extend_schema_serializer(component_name="PoolCapacity")
class _Pool(serializers.Serializer):
    gpu_model = serializers.CharField()
    region = serializers.CharField()
    months = _PoolMonth(many=True)


@extend_schema_serializer(component_name="DealCapacityFit")
class _Fit(serializers.Serializer):
    fits = serializers.BooleanField()
    shortfalls = serializers.SerializerMethodField()
    unmapped = serializers.ListField(child=serializers.CharField())
    pools = _Pool(many=True)

    def get_shortfalls(self, fit: Any) -> list[str]:
        return [str(s) for s in fit.shortfalls]


@extend_schema_serializer(component_name="DealEvent")
class _Event(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor.username")
    action = serializers.CharField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    changes = serializers.JSONField()
    comment = serializers.CharField()


@extend_schema_serializer(component_name="DealActions")
class _Actions(serializers.Serializer):
    edit = serializers.BooleanField()
    submit = serializers.BooleanField()
    approve = serializers.BooleanField()
    reject = serializers.BooleanField()
    sign = serializers.BooleanField()


@extend_schema_serializer(component_name="DealSummary")
class _DealSummary(serializers.Serializer):
    id = serializers.IntegerField()
    org = serializers.CharField(source="org.slug")
    title = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    rate_card = serializers.CharField(source="rate_card_key")
    issuer = serializers.CharField(source="issuer.key")
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    approval_reasons = serializers.JSONField()
    contract = serializers.CharField(source="contract.key", allow_null=True, default=None)
    amends = serializers.CharField(source="amends.key", allow_null=True, default=None)
    amendment = serializers.IntegerField(source="amendment_id", allow_null=True)


@extend_schema_serializer(component_name="Deal")
class _DealOut(serializers.Serializer):
    deal = _DealSummary()
    lines = _LineOut(many=True)
    terms = _TermOut(many=True)
    economics = _Economics(allow_null=True)
    economics_error = serializers.CharField()
    fit = _Fit()
    events = _Event(many=True)
    actions = _Actions()


def _deal_response(request: Request, deal: Deal, status: int = 200) -> Response:
    view = selectors.deal_view(user=request.user, deal=deal)
    return Response(_DealOut(view).data, status=status)


class DealListApi(APIView):
    permission_classes = [DeskStaff]

    @extend_schema(
        operation_id="deals_list",
        parameters=[OpenApiParameter("status", str, enum=Deal.Status.values), *PAGE_PARAMETERS],
        responses={
            200: inline_serializer("DealPage", {"results": _DealSummary(many=True)}),
            **error_responses(400, 404, 409),
        },
    )
    def get(self, request: Request) -> Response:
        deals = selectors.deals_for(user=request.user, status=request.query_params.get("status"))
        return Response(paginated(request, self, deals, lambda d: _DealSummary(d).data))

    @extend_schema_serializer(component_name="DealCreate")
    class InputSerializer(_DealIn):
        org = serializers.SlugField()

    @extend_schema(
        operation_id="deals_create",
        request=InputSerializer,
        responses={201: _DealOut, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org = access.draftable_orgs(request.user).filter(slug=data.validated_data["org"]).first()
        if org is None:
            raise PermissionDenied(
                f"You may not draft deals for org {data.validated_data['org']!r}."
            )
        deal = services.deal_create(actor=request.user, org=org, **_terms(data.validated_data, org))
        return _deal_response(request, deal, 201)


class DealDetailApi(APIView):
    permission_classes = [DeskStaff]

    @extend_schema(
        operation_id="deals_retrieve", responses={200: _DealOut, **error_responses(400, 404, 409)}
    )
    def get(self, request: Request, deal_id: int) -> Response:
        return _deal_response(request, _deal(request, deal_id))

    @extend_schema(
        operation_id="deals_update",
        request=_DealIn,
        responses={200: _DealOut, **error_responses(400, 404, 409)},
    )
    def put(self, request: Request, deal_id: int) -> Response:
        deal = _deal(request, deal_id)
        data = _DealIn(data=request.data)
        data.is_valid(raise_exception=True)
        deal = services.deal_update(
            actor=request.user, deal_id=deal.pk, **_terms(data.validated_data, deal.org)
        )
        return _deal_response(request, deal)


class DealSimulateApi(APIView):
    permission_classes = [DeskStaff]

    @extend_schema_serializer(component_name="DealSimulation")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="DealSimulationMonth")
        class MonthSerializer(serializers.Serializer):
            month = serializers.DateField()
            usage = serializers.DecimalField(max_digits=30, decimal_places=6)
            current = serializers.DecimalField(max_digits=20, decimal_places=4, allow_null=True)
            basis = serializers.CharField()
            current_burst_hours = serializers.IntegerField()
            deal = serializers.DecimalField(max_digits=20, decimal_places=4)
            difference = serializers.DecimalField(max_digits=20, decimal_places=4, allow_null=True)
            reserved = serializers.DecimalField(max_digits=30, decimal_places=6)
            covered = serializers.DecimalField(max_digits=30, decimal_places=6)
            burst = serializers.DecimalField(max_digits=30, decimal_places=6)
            burst_hours = serializers.IntegerField()
            on_demand = serializers.DecimalField(max_digits=30, decimal_places=6)

        start = serializers.DateField()
        end = serializers.DateField()
        shift_months = serializers.IntegerField()
        total_current = serializers.DecimalField(max_digits=20, decimal_places=4)
        total_deal = serializers.DecimalField(max_digits=20, decimal_places=4)
        total_difference = serializers.DecimalField(max_digits=20, decimal_places=4)
        months = MonthSerializer(many=True)

    @extend_schema(
        operation_id="deals_simulate",
        parameters=[
            OpenApiParameter(
                "months",
                int,
                description=f"1 to {MAX_MONTHS}; default: every month with usage",
            )
        ],
        responses={200: OutputSerializer, **error_responses(400, 404, 409)},
    )
    def get(self, request: Request, deal_id: int) -> Response:
        deal = _deal(request, deal_id)
        raw = request.query_params.get("months")
        months = (
            serializers.IntegerField(min_value=1, max_value=MAX_MONTHS).run_validation(raw)
            if raw
            else None
        )
        result = simulate(deal=deal, months=months, as_of=timezone.now())
        return Response(self.OutputSerializer(result).data)


class _Transition(APIView):
    """One deal transition: ``transition`` is the service that makes it."""

    permission_classes = [DeskStaff]
    transition: Callable[..., Deal]
    takes_comment = False

    @extend_schema_serializer(component_name="DealComment")
    class InputSerializer(serializers.Serializer):
        comment = serializers.CharField(required=False, allow_blank=True, default="")

    def post(self, request: Request, deal_id: int) -> Response:
        deal = _deal(request, deal_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        extra = {"comment": data.validated_data["comment"]} if self.takes_comment else {}
        deal = type(self).transition(actor=request.user, deal_id=deal.pk, **extra)
        return _deal_response(request, deal)


def _transition_schema(operation_id: str, *, comment: bool) -> Any:
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            request=_Transition.InputSerializer if comment else None,
            responses={200: _DealOut, **error_responses(400, 404, 409)},
        )
    )


@_transition_schema("deals_submit", comment=False)
class DealSubmitApi(_Transition):
    transition = services.deal_submit


@_transition_schema("deals_approve", comment=True)
class DealApproveApi(_Transition):
    transition = services.deal_approve
    takes_comment = True


@_transition_schema("deals_reject", comment=True)
class DealRejectApi(_Transition):
    transition = services.deal_reject
    takes_comment = True


@_transition_schema("deals_sign", comment=False)
class DealSignApi(_Transition):
    transition = services.deal_sign


class DealQuoteApi(APIView):
    """The deal's quote for the customer (terms, monthly schedule, total contract value)."""

    permission_classes = [DeskStaff]

    @extend_schema(
        operation_id="deals_quote",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, **error_responses(400, 404, 409)},
    )
    def get(self, request: Request, deal_id: int) -> HttpResponse:
        deal = _deal(request, deal_id)
        response = HttpResponse(render_quote_pdf(deal), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{quote_number(deal)}.pdf"'
        return response


class CapacityApi(APIView):
    permission_classes = [DeskStaff]

    @extend_schema(
        operation_id="capacity",
        parameters=[
            OpenApiParameter("from", str, description="YYYY-MM; default: this month"),
            OpenApiParameter("months", int, description="1 to 60; 24"),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: inline_serializer("CapacityPage", {"results": _Pool(many=True)}),
            **error_responses(400, 404, 409),
        },
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("from")
        try:
            start = month_start(raw) if raw else timezone.now().date()
        except ValueError:
            raise serializers.ValidationError({"from": ["Use YYYY-MM."]}) from None
        months = serializers.IntegerField(min_value=1, max_value=60).run_validation(
            request.query_params.get("months", 24)
        )
        pools: list[PoolCapacity] = selectors.capacity_for(
            user=request.user, start=start, months=months
        )
        page = SequenceCursor[PoolCapacity](
            request, lambda pool: [str(pool.region), str(pool.gpu_model)]
        ).page(pools)
        page["results"] = _Pool(page["results"], many=True).data
        return Response(page)
