"""Portal pages for alerts and outbound webhooks: every member sees them, owners set them."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from billing.alerts.selectors import alerts_for, firings_for
from tenancy.models import Membership, Org
from web import notifications
from web.access import login_required_403
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import endpoints_for

from . import selectors
from .views import _org, numbers_for, owner_org


@login_required_403
def alerts(request: HttpRequest) -> HttpResponse:
    org, role = _org(request)
    context = {
        "org": org,
        "orgs": selectors.member_orgs(user_id=request.user.pk or 0),
        "role": role,
        "numbers": numbers_for(org),
        "alerts": alerts_for(orgs=Org.objects.filter(pk=org.pk)).order_by("kind", "threshold"),
        "firings": firings_for(orgs=Org.objects.filter(pk=org.pk))[:50],
        "kinds": notifications.alert_kinds(),
        "products": notifications.reserved_products(org),
        "can_manage": role == Membership.Role.OWNER,
        "action": "/portal/alerts",
    }
    return render(request, "portal/alerts.html", context)


@require_POST
@login_required_403
def alert_create(request: HttpRequest) -> HttpResponse:
    org = owner_org(request, "its alerts")
    notifications.alert_create_from(request, org)
    return HttpResponseRedirect(f"/portal/alerts?org={org.slug}")


@require_POST
@login_required_403
def alert_act(request: HttpRequest, alert_id: int, action: str) -> HttpResponse:
    org = owner_org(request, "its alerts")
    alert = alerts_for(orgs=Org.objects.filter(pk=org.pk)).filter(pk=alert_id).first()
    if alert is None or action not in ("pause", "resume", "delete"):
        raise PermissionDenied("No such alert in this org.")
    notifications.alert_act(request, alert, action)
    return HttpResponseRedirect(f"/portal/alerts?org={org.slug}")


@login_required_403
def webhooks(request: HttpRequest) -> HttpResponse:
    org, role = _org(request)
    owner = role == Membership.Role.OWNER
    endpoints = endpoints_for(orgs=Org.objects.filter(pk=org.pk)).order_by("pk")
    context = {
        "org": org,
        "orgs": selectors.member_orgs(user_id=request.user.pk or 0),
        "role": role,
        "endpoints": endpoints,
        "event_types": notifications.event_types(),
        "can_manage": owner,
        "base": "/portal/webhooks",
        "org_query": f"?org={org.slug}",
    }
    return render(request, "portal/webhooks.html", context)


def _endpoint(org: Org, endpoint_id: int) -> WebhookEndpoint:
    endpoint = endpoints_for(orgs=Org.objects.filter(pk=org.pk)).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise PermissionDenied("No such endpoint in this org.")
    return endpoint


@login_required_403
def webhook(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    org, role = _org(request)
    endpoint = _endpoint(org, endpoint_id)
    owner = role == Membership.Role.OWNER
    context = {
        "org": org,
        "orgs": selectors.member_orgs(user_id=request.user.pk or 0),
        "role": role,
        "can_manage": owner,
        "base": "/portal/webhooks",
        "org_query": f"?org={org.slug}",
        **notifications.endpoint_page(endpoint, with_secrets=owner),
    }
    return render(request, "portal/webhook.html", context)


@require_POST
@login_required_403
def webhook_create(request: HttpRequest) -> HttpResponse:
    org = owner_org(request, "its webhook endpoints")
    endpoint = notifications.endpoint_create_from(request, org)
    if endpoint is None:
        return HttpResponseRedirect(f"/portal/webhooks?org={org.slug}")
    return HttpResponseRedirect(f"/portal/webhooks/{endpoint.pk}?org={org.slug}")


@require_POST
@login_required_403
def webhook_act(request: HttpRequest, endpoint_id: int, action: str) -> HttpResponse:
    org = owner_org(request, "its webhook endpoints")
    endpoint = _endpoint(org, endpoint_id)
    if action not in ("rotate", "enable", "disable", "delete"):
        raise PermissionDenied("Unknown action.")
    if notifications.endpoint_act(request, endpoint, action):
        return HttpResponseRedirect(f"/portal/webhooks/{endpoint.pk}?org={org.slug}")
    return HttpResponseRedirect(f"/portal/webhooks?org={org.slug}")


@require_POST
@login_required_403
def delivery_replay(request: HttpRequest, delivery_id: int) -> HttpResponse:
    org = owner_org(request, "its webhook deliveries")
    delivery = (
        WebhookDelivery.objects.filter(pk=delivery_id, endpoint__org=org)
        .select_related("endpoint")
        .first()
    )
    if delivery is None:
        raise PermissionDenied("No such delivery in this org.")
    notifications.delivery_replay(request, delivery)
    return HttpResponseRedirect(f"/portal/webhooks/{delivery.endpoint_id}?org={org.slug}")
