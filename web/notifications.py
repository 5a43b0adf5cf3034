"""Alert and webhook forms shared by the portal (an org's owners) and the finance console
(finance: any org, and the platform's endpoints). Each parses a POST, calls one service and
reports the outcome as a message; the views decide who may."""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from billing.alerts import services as alerts
from billing.alerts.models import Alert
from billing.models import Product, Reservation
from tenancy.models import Org
from webhooks import services as webhooks
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookSecret


def alert_kinds() -> list[tuple[str, str]]:
    return list(Alert.Kind.choices)


def reserved_products(org: Org | None) -> list[Product]:
    query = Reservation.objects.all() if org is None else Reservation.objects.filter(org=org)
    ids = query.values_list("product_id", flat=True)
    return list(Product.objects.filter(pk__in=ids).order_by("key"))


def alert_create_from(request: HttpRequest, org: Org) -> Alert | None:
    """Create an alert from the form; the error, naming the field, becomes a message."""
    data = request.POST
    product = None
    if data.get("product"):
        product = Product.objects.filter(key=data["product"]).first()
    try:
        window = int(data.get("window_hours") or 24)
    except ValueError:
        window = 0
    try:
        alert = alerts.alert_create(
            org=org,
            kind=data.get("kind", ""),
            threshold=data.get("threshold", ""),
            currency=data.get("currency") or None,
            product=product,
            window_hours=window,
            name=data.get("name", ""),
            emails=[e for e in (data.get("emails") or "").replace(";", ",").split(",")],
            created_by=request.user,
        )
    except alerts.AlertError as exc:
        messages.error(request, f"Alert not set: {exc.field or 'alert'}: {exc}")
        return None
    messages.success(request, f"Alert set: {alert}.")
    return alert


def alert_act(request: HttpRequest, alert: Alert, action: str) -> None:
    if action == "delete":
        alerts.alert_delete(alert=alert)
        messages.success(request, "Alert deleted.")
    else:
        alerts.alert_update(alert=alert, active=action == "resume")
        messages.success(request, f"Alert {'resumed' if alert.active else 'paused'}.")


def event_types() -> list[tuple[str, str]]:
    return list(EventType.choices)


def endpoint_create_from(request: HttpRequest, org: Org | None) -> WebhookEndpoint | None:
    data = request.POST
    try:
        endpoint, _ = webhooks.webhook_endpoint_create(
            org=org,
            url=(data.get("url") or "").strip(),
            description=data.get("description", ""),
            event_types=data.getlist("events"),
            created_by=request.user,
        )
    except webhooks.WebhookError as exc:
        messages.error(request, f"Endpoint not added: {exc.field or 'endpoint'}: {exc}")
        return None
    messages.success(request, "Endpoint added; its signing secret is shown below.")
    return endpoint


def endpoint_act(request: HttpRequest, endpoint: WebhookEndpoint, action: str) -> bool:
    """rotate | enable | disable | delete; returns whether the endpoint still exists."""
    if action == "rotate":
        webhooks.webhook_secret_rotate(endpoint=endpoint)
        messages.success(
            request,
            "New signing secret. The previous one keeps signing (both signatures are sent) "
            "until it expires: switch your receiver to the new one before then.",
        )
    elif action in ("enable", "disable"):
        webhooks.webhook_endpoint_update(endpoint=endpoint, enabled=action == "enable")
        messages.success(request, f"Endpoint {action}d.")
    elif action == "delete":
        webhooks.webhook_endpoint_delete(endpoint=endpoint)
        messages.success(request, "Endpoint deleted.")
        return False
    return True


def delivery_replay(request: HttpRequest, delivery: WebhookDelivery) -> None:
    webhooks.webhook_delivery_replay(delivery=delivery)
    messages.success(request, f"Delivery {delivery.pk} queued again (same webhook-id).")


def endpoint_page(endpoint: WebhookEndpoint, *, with_secrets: bool) -> dict[str, Any]:
    from django.utils import timezone

    from webhooks.selectors import attempts_for, deliveries_for

    deliveries = list(deliveries_for(endpoint=endpoint)[:100])
    now = timezone.now()
    secrets: list[WebhookSecret] = (
        [s for s in endpoint.secrets.all() if s.expires_at is None or s.expires_at > now]
        if with_secrets
        else []
    )
    return {
        "endpoint": endpoint,
        "deliveries": deliveries,
        "attempts": {d.pk: list(attempts_for(delivery=d)[:5]) for d in deliveries[:20]},
        "secrets": secrets,
    }
