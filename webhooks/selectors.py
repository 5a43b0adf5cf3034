"""Webhook reads; every read of tenant data names the orgs it may return."""

from django.db.models import Q, QuerySet

from tenancy.models import Org

from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def endpoints_for(*, orgs: QuerySet[Org], platform: bool = False) -> QuerySet[WebhookEndpoint]:
    """Endpoints of ``orgs``, and the platform's when ``platform``."""
    where = Q(org__in=orgs) | Q(org__isnull=True) if platform else Q(org__in=orgs)
    return WebhookEndpoint.objects.filter(where).select_related("org")


def deliveries_for(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The delivery log of one endpoint, newest first."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event", "endpoint")
        .order_by("-pk")
    )


def attempts_for(*, delivery: WebhookDelivery) -> QuerySet[WebhookAttempt]:
    return WebhookAttempt.objects.filter(delivery=delivery).order_by("-pk")
