"""Outbound webhooks API (SPEC §5): endpoints, secret rotation, the delivery log, replay.

Org endpoints: read by whoever reads the org, managed by its owners and finance. Platform
endpoints (no ``org``): finance and operators. Secrets are shown to those who manage.
"""

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_responses
from config.pagination import PAGE_PARAMETERS, paginated
from tenancy.access import (
    caller,
    has_role,
    is_staff_reader,
    may_manage,
    visible_orgs,
)
from tenancy.api_access import org_for_read
from tenancy.models import Org, StaffRole

from . import services
from .access import may_read
from .models import EventType, WebhookDelivery, WebhookEndpoint
from .selectors import attempts_for, deliveries_for, endpoints_for


def _endpoint(request: Request, endpoint_id: int, *, manage: bool = False) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_related("org").filter(pk=endpoint_id).first()
    user, api_key = caller(request)
    if endpoint is None or not may_read(user=user, api_key=api_key, org=endpoint.org):
        raise NotFound("No such webhook endpoint.")
    if manage and (api_key is not None or not may_manage(user=user, org=endpoint.org)):
        raise PermissionDenied("Only the org's owners and finance manage its endpoints.")
    return endpoint


@extend_schema_serializer(component_name="WebhookSecret")
class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="whsec_…: verify with any Standard Webhooks lib.")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Null: the current one.")


def endpoint_out(endpoint: WebhookEndpoint, *, with_secrets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": endpoint.pk,
        "org": endpoint.org.slug if endpoint.org else None,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.event_types,
        "status": endpoint.status,
        "failing_since": endpoint.failing_since,
        "created_at": endpoint.created_at,
    }
    if with_secrets:
        at = timezone.now()
        data["secrets"] = SecretSerializer(
            [s for s in endpoint.secrets.all() if s.expires_at is None or s.expires_at > at],
            many=True,
        ).data
    return data


@extend_schema_serializer(component_name="WebhookEndpoint")
class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    org = serializers.CharField(allow_null=True, help_text="Null: a platform endpoint.")
    url = serializers.URLField()
    description = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField(), help_text="[]: every type.")
    status = serializers.ChoiceField(choices=WebhookEndpoint.Status.choices)
    failing_since = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    secrets = SecretSerializer(many=True, required=False, help_text="To those who manage it.")


@extend_schema_serializer(component_name="WebhookDelivery")
class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint = serializers.IntegerField(source="endpoint_id")
    event_id = serializers.CharField(source="event.msg_id", help_text="The webhook-id header.")
    event_type = serializers.CharField(source="event.type")
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    replayed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="WebhookAttempt")
class AttemptSerializer(serializers.Serializer):
    attempted_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="Null: no response.")
    error = serializers.CharField()
    response_body = serializers.CharField()
    duration_ms = serializers.IntegerField()
    replay = serializers.BooleanField()


def _orgs_listed(request: Request) -> tuple[QuerySet[Org], bool]:
    """(orgs whose endpoints are listed, whether the platform's are too)."""
    user, api_key = caller(request)
    slug = request.query_params.get("org")
    platform_staff = api_key is None and has_role(user, StaffRole.FINANCE, StaffRole.OPERATOR)
    if request.query_params.get("platform") in ("1", "true"):
        if not platform_staff:
            raise PermissionDenied("Platform endpoints are for finance and operators.")
        return Org.objects.none(), True
    if is_staff_reader(user=user, api_key=api_key):
        orgs = visible_orgs(user=user)
        return (orgs.filter(slug=slug) if slug else orgs), platform_staff and not slug
    return Org.objects.filter(pk=org_for_read(request, slug).pk), False


class EndpointListCreateApi(APIView):
    @extend_schema_serializer(component_name="WebhookEndpointCreate")
    class InputSerializer(serializers.Serializer):
        org = serializers.SlugField(required=False, help_text="Omit for a platform endpoint.")
        url = serializers.URLField(max_length=2000)
        description = serializers.CharField(required=False, default="", max_length=200)
        events = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            default=list,
            help_text=f"Event types ([]: all): {', '.join(EventType.values)}.",
        )

    @extend_schema(
        operation_id="webhook_endpoints_list",
        parameters=[
            OpenApiParameter("org", str, description="Org slug."),
            OpenApiParameter("platform", bool, description="Only platform endpoints (staff)."),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: inline_serializer(
                "WebhookEndpointPage", {"results": EndpointSerializer(many=True)}
            ),
            **error_responses(400),
        },
    )
    def get(self, request: Request) -> Response:
        orgs, platform = _orgs_listed(request)
        user, _ = caller(request)
        endpoints = endpoints_for(orgs=orgs, platform=platform).prefetch_related("secrets")
        if request.query_params.get("platform") in ("1", "true"):
            endpoints = endpoints.filter(org__isnull=True)

        def out(endpoint: WebhookEndpoint) -> dict[str, Any]:
            return endpoint_out(endpoint, with_secrets=may_manage(user=user, org=endpoint.org))

        return Response(paginated(request, self, endpoints, out))

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=InputSerializer,
        responses={201: EndpointSerializer, **error_responses(400)},
    )
    def post(self, request: Request) -> Response:
        user, api_key = caller(request)
        if api_key is not None:
            raise PermissionDenied("Endpoints are added by a signed-in owner or finance.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        org = None
        if values.get("org"):
            org = visible_orgs(user=user, api_key=api_key).filter(slug=values["org"]).first()
            if org is None:
                raise PermissionDenied(f"You may not manage org {values['org']!r}.")
        if not may_manage(user=user, org=org):
            raise PermissionDenied("Only the org's owners and finance add endpoints.")
        endpoint, _ = services.webhook_endpoint_create(
            org=org,
            url=values["url"],
            description=values["description"],
            event_types=values["events"],
            created_by=user,
        )
        return Response(endpoint_out(endpoint, with_secrets=True), status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema_serializer(component_name="WebhookEndpointUpdate")
    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=2000, required=False)
        description = serializers.CharField(required=False, max_length=200, allow_blank=True)
        events = serializers.ListField(child=serializers.CharField(), required=False)
        enabled = serializers.BooleanField(required=False)

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        responses={200: EndpointSerializer, **error_responses(404)},
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        user, _ = caller(request)
        return Response(
            endpoint_out(endpoint, with_secrets=may_manage(user=user, org=endpoint.org))
        )

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=InputSerializer,
        responses={200: EndpointSerializer, **error_responses(400, 404)},
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id, manage=True)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        endpoint = services.webhook_endpoint_update(
            endpoint=endpoint,
            url=values.get("url"),
            description=values.get("description"),
            event_types=values.get("events"),
            enabled=values.get("enabled"),
        )
        return Response(endpoint_out(endpoint, with_secrets=True))

    @extend_schema(
        operation_id="webhook_endpoints_delete", responses={204: None, **error_responses(404)}
    )
    def delete(self, request: Request, endpoint_id: int) -> Response:
        services.webhook_endpoint_delete(endpoint=_endpoint(request, endpoint_id, manage=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecretRotateApi(APIView):
    """A new signing secret; the previous one keeps signing for ``overlap_hours`` (default
    ``TESSERA_WEBHOOK_SECRET_OVERLAP_HOURS``), so receivers switch without downtime."""

    @extend_schema_serializer(component_name="WebhookSecretRotate")
    class InputSerializer(serializers.Serializer):
        overlap_hours = serializers.IntegerField(min_value=0, max_value=24 * 7, required=False)

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        request=InputSerializer,
        responses={200: EndpointSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id, manage=True)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hours = data.validated_data.get("overlap_hours")
        services.webhook_secret_rotate(
            endpoint=endpoint, overlap=timedelta(hours=hours) if hours is not None else None
        )
        return Response(endpoint_out(endpoint, with_secrets=True))


class DeliveryListApi(APIView):
    """An endpoint's delivery log, newest first, with the last response code."""

    @extend_schema(
        operation_id="webhook_deliveries_list",
        parameters=PAGE_PARAMETERS,
        responses={
            200: inline_serializer(
                "WebhookDeliveryPage", {"results": DeliverySerializer(many=True)}
            ),
            **error_responses(400, 404),
        },
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = _endpoint(request, endpoint_id)
        return Response(
            paginated(
                request,
                self,
                deliveries_for(endpoint=endpoint),
                lambda d: DeliverySerializer(d).data,
                ordering="-pk",
            )
        )


def _delivery(request: Request, delivery_id: int) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.select_related("event", "endpoint__org")
        .filter(pk=delivery_id)
        .first()
    )
    user, api_key = caller(request)
    if delivery is None or not may_read(user=user, api_key=api_key, org=delivery.endpoint.org):
        raise NotFound("No such delivery.")
    return delivery


class DeliveryDetailApi(APIView):
    @extend_schema(
        operation_id="webhook_deliveries_retrieve",
        responses={
            200: inline_serializer(
                "WebhookDeliveryDetail",
                {
                    "delivery": DeliverySerializer(),
                    "payload": serializers.JSONField(),
                    "attempts": AttemptSerializer(many=True),
                },
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, delivery_id: int) -> Response:
        delivery = _delivery(request, delivery_id)
        return Response(
            {
                "delivery": DeliverySerializer(delivery).data,
                "payload": {"type": delivery.event.type, "data": delivery.event.data},
                "attempts": AttemptSerializer(attempts_for(delivery=delivery), many=True).data,
            }
        )


class DeliveryReplayApi(APIView):
    """Send a delivery again now (same webhook-id, a fresh set of attempts)."""

    @extend_schema(
        operation_id="webhook_deliveries_replay",
        request=None,
        responses={202: DeliverySerializer, **error_responses(404)},
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = _delivery(request, delivery_id)
        user, api_key = caller(request)
        if api_key is not None or not may_manage(user=user, org=delivery.endpoint.org):
            raise PermissionDenied("Only the org's owners and finance replay its deliveries.")
        delivery = services.webhook_delivery_replay(delivery=delivery)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
