from datetime import datetime
from decimal import Context, Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import RawPostDataException
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_body, error_responses
from config.pagination import PAGE_PARAMETERS, paginated
from core.timeparse import parse_instant
from tenancy.access import has_role
from tenancy.models import ApiKey, Org, StaffRole
from tenancy.throttling import IngestThrottle

from .ingestion import Ingestor
from .jsonbody import parse_json
from .models import Allocation, Meter
from .selectors import allocations_for_node, meters_list
from .services import allocation_create, allocation_end
from .tasks import schedule_rollup
from .validation import CODES, MAX_DEPTH

SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


# Wide enough for any numeric(38, 12) rollup sum: the default 28 digits fail at 10^16.
_WIDE = Context(prec=60)


def format_quantity(value: Decimal) -> str:
    """A decimal string with at least 6 and at most 12 places (trailing zeros beyond 6 dropped)."""
    text = f"{value.quantize(Decimal('0.000000000001'), context=_WIDE):f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(6, '0')}"


def _too_large(message: str) -> Response:
    return Response(error_body("payload_too_large", message), status=413)


_CODE_TABLE = "\n".join(f"- `{code}`: {text}" for code, text in CODES.items())


def _binary_event(request: Request, data: Any) -> dict[str, Any]:
    """The CloudEvents HTTP binding's binary content mode: attributes from ``ce-*`` headers
    (percent-decoded, UTF-8), the body as ``data``. Undecodable values become lone
    surrogates, which validation refuses for that attribute."""
    event: dict[str, Any] = {}
    for name, value in request.META.items():
        if name.startswith("HTTP_CE_"):
            raw = value.encode("latin-1", "replace")
            event[name[8:].lower()] = unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
    event["data"] = data
    event["datacontenttype"] = "application/json"
    return event


class EventsIngestApi(APIView):
    """Report usage: one CloudEvent (structured or binary content mode) or a batch."""

    throttle_classes = [IngestThrottle]

    @extend_schema_serializer(component_name="IngestResult")
    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = serializers.IntegerField()
        errors: Any = inline_serializer(
            "EventRejection",
            fields={
                "index": serializers.IntegerField(help_text="Position in the batch (0 for one)."),
                "id": serializers.CharField(allow_null=True),
                "reasons": serializers.ListField(
                    child=serializers.CharField(), help_text="The messages of `problems`."
                ),
                "problems": inline_serializer(
                    "EventProblem",
                    fields={
                        "field": serializers.CharField(
                            help_text="The attribute or data path, e.g. `data.gpu_seconds`."
                        ),
                        "code": serializers.ChoiceField(choices=list(CODES)),
                        "message": serializers.CharField(),
                    },
                    many=True,
                ),
            },
            many=True,
        )

    @extend_schema(
        operation_id="events_ingest",
        description=(
            "SPEC §3, §5. Modes: structured (`application/cloudevents+json`, one event), "
            "batch (`application/cloudevents-batch+json`, a JSON array of up to "
            "TESSERA_MAX_BATCH_EVENTS events) and binary (`ce-*` headers with "
            "`ce-specversion`, the body is `data` as `application/json`). Every JSON "
            "number is read as a decimal, never as a binary float.\n\n"
            "An event is accepted only if every later step can process it; each refused "
            "event is listed with its index, id and problems (field, code, message), and "
            "the valid events of the batch are stored. Bounds: quantities are ASCII "
            "decimals with |value| < 10^15 and at most 12 decimal places, negative only "
            "where the meter allows it; other numbers have at most 1000 decimal places "
            "and |value| < 10^1001; `id` and `source` up to 255 characters, `type` 128, "
            "`subject` 255; dimension values up to 256 characters and `unique_count` "
            f"values up to 512 (as the rollup reads them); nesting up to {MAX_DEPTH} "
            "levels; strings valid Unicode without NUL; `time` RFC 3339 with an offset "
            "(`t`/`z` in lower case too), within the late window and the clock skew. "
            "Identity is `(source, id)` within the key's namespace (collector keys share "
            "one; an org's keys have their own); a repeat with the same type, time and "
            "data is a duplicate whatever its subject.\n\nProblem codes:\n" + _CODE_TABLE
        ),
        request={
            SINGLE: OpenApiTypes.OBJECT,
            BATCH: {"type": "array", "items": {"type": "object"}},
            "application/json": OpenApiTypes.OBJECT,
        },
        responses={202: OutputSerializer, **error_responses(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        api_key = request.auth
        if not isinstance(api_key, ApiKey) or api_key.scope not in (
            ApiKey.Scope.INGEST,
            ApiKey.Scope.COLLECTOR,
        ):
            raise PermissionDenied("Reporting usage needs an API key with scope 'ingest'.")
        limit = settings.TESSERA_MAX_BODY_BYTES
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return _too_large(f"The body is larger than {limit} bytes; split the batch.")
        try:
            body = request.body
        except (RequestDataTooBig, RawPostDataException):
            return _too_large(f"The body is larger than {limit} bytes; split the batch.")
        if len(body) > limit:
            return _too_large(f"The body is larger than {limit} bytes; split the batch.")
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        binary = "HTTP_CE_SPECVERSION" in request.META
        # Binary mode: the SDKs send no Content-Type for JSON data by default, which WSGI
        # servers built on wsgiref (runserver, the test server) report as text/plain.
        allowed = (
            ("application/json", "", "text/plain")
            if binary
            else (SINGLE, BATCH, "application/json")
        )
        if content_type not in allowed:
            return Response(
                error_body(
                    "unsupported_media_type",
                    f"Content-Type must be {SINGLE}, {BATCH}, or application/json with "
                    f"ce-* headers (binary mode), not {content_type or 'missing'!r}.",
                ),
                status=415,
            )
        try:
            payload = parse_json(body)
        except UnicodeDecodeError:
            return Response(error_body("malformed_json", "The body is not UTF-8."), 400)
        except ValueError as exc:
            return Response(error_body("malformed_json", f"The body is not JSON: {exc}"), 400)
        if binary:
            events: list[Any] = [_binary_event(request, payload)]
        elif content_type == BATCH and not isinstance(payload, list):
            return Response(
                error_body("invalid_batch", f"A {BATCH} body must be a JSON array."), 400
            )
        else:
            batch = isinstance(payload, list) and content_type != SINGLE
            events = payload if batch else [payload]
        maximum = settings.TESSERA_MAX_BATCH_EVENTS
        if len(events) > maximum:
            return _too_large(
                f"A batch holds at most {maximum} events; this one has {len(events)}."
            )
        result = Ingestor(api_key=api_key).ingest(events)
        schedule_rollup()
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)


def parse_moment(raw: str, field: str) -> datetime:
    """A date ``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 timestamp, on a UTC hour boundary."""
    try:
        moment = parse_instant(raw)
    except ValueError as exc:
        raise ValidationError({field: [f"{exc}; give a date or an RFC 3339 time."]}) from None
    if moment.minute or moment.second or moment.microsecond:
        raise ValidationError({field: ["Usage is kept per hour: give a whole UTC hour."]})
    return moment


@extend_schema_serializer(component_name="UsagePoint")
class UsagePointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    dimensions = serializers.DictField()
    value = serializers.CharField(help_text="Decimal string, in the meter's unit.")
    event_count = serializers.IntegerField()


class MeterListApi(APIView):
    @extend_schema_serializer(component_name="Meter")
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Meter
            fields = [
                "key",
                "name",
                "event_type",
                "value_path",
                "aggregation",
                "group_by",
                "unit",
                "allow_negative",
            ]

    @extend_schema(
        operation_id="meters_list",
        parameters=PAGE_PARAMETERS,
        responses={
            200: inline_serializer("MeterPage", {"results": OutputSerializer(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(
            paginated(request, self, meters_list(), lambda m: self.OutputSerializer(m).data)
        )


class AwareDateTimeField(serializers.DateTimeField):
    """An RFC 3339 timestamp (it carries its offset); returned in UTC."""

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid", format="RFC 3339 with an offset")
        try:
            return parse_instant(value, allow_date=False)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def _require_operator(request: Request) -> None:
    if not has_role(request.user, StaffRole.OPERATOR):
        raise PermissionDenied("Only operators manage allocations.")


@extend_schema_serializer(component_name="Allocation")
class AllocationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    org = serializers.SlugField()
    node = serializers.CharField(max_length=128)
    device_uuid = serializers.CharField(max_length=128)
    start = AwareDateTimeField()
    end = AwareDateTimeField(required=False, allow_null=True)


def _allocation_out(allocation: Allocation) -> dict[str, Any]:
    return {
        "id": allocation.pk,
        "org": allocation.org.slug,
        "node": allocation.device.node,
        "device_uuid": allocation.device.uuid,
        "start": allocation.start,
        "end": allocation.end,
    }


class AllocationListCreateApi(APIView):
    """Who holds which GPU or MIG instance. Collectors read their node's; operators write."""

    @extend_schema_serializer(component_name="AllocationQuery")
    class QuerySerializer(serializers.Serializer):
        node = serializers.CharField(max_length=128)
        start = AwareDateTimeField()
        end = AwareDateTimeField()

    @extend_schema(
        operation_id="allocations_list",
        parameters=[QuerySerializer, *PAGE_PARAMETERS],
        responses={
            200: inline_serializer("AllocationList", {"results": AllocationSerializer(many=True)}),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        api_key = request.auth
        is_collector = isinstance(api_key, ApiKey) and api_key.kind == ApiKey.Kind.COLLECTOR
        if not is_collector:
            _require_operator(request)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params["end"] <= params["start"]:
            raise ValidationError({"end": ["end must be after start."]})
        allocations = allocations_for_node(
            node=params["node"], start=params["start"], end=params["end"]
        )
        return Response(paginated(request, self, allocations, _allocation_out))

    @extend_schema(
        operation_id="allocations_create",
        request=AllocationSerializer,
        responses={201: AllocationSerializer, **error_responses(400, 409)},
    )
    def post(self, request: Request) -> Response:
        _require_operator(request)
        data = AllocationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        org = Org.objects.filter(slug=values["org"]).first()
        if org is None:
            raise ValidationError({"org": [f"No org {values['org']!r}."]})
        allocation = allocation_create(
            org=org,
            node=values["node"],
            device_uuid=values["device_uuid"],
            start=values["start"],
            end=values.get("end"),
        )
        return Response(_allocation_out(allocation), status=status.HTTP_201_CREATED)


class AllocationEndApi(APIView):
    @extend_schema_serializer(component_name="AllocationEnd")
    class InputSerializer(serializers.Serializer):
        end = AwareDateTimeField()

    @extend_schema(
        operation_id="allocations_end",
        request=InputSerializer,
        responses={200: AllocationSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, allocation_id: int) -> Response:
        _require_operator(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        allocation = (
            Allocation.objects.select_related("device", "org").filter(pk=allocation_id).first()
        )
        if allocation is None:
            raise NotFound(f"No allocation {allocation_id}.")
        allocation = allocation_end(allocation=allocation, end=data.validated_data["end"])
        return Response(_allocation_out(allocation))
