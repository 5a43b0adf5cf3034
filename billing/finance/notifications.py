"""Finance console pages for alerts (any org) and webhooks (platform endpoints and every
org's), with the replay button for platform and org deliveries."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from tenancy.models import Org, StaffRole
from web import notifications
from web.access import role_required
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import endpoints_for

from ..alerts.selectors import alerts_for, firings_for

finance_only = role_required(StaffRole.FINANCE)
platform_staff = role_required(StaffRole.FINANCE, StaffRole.OPERATOR)


@finance_only
def alerts(request: HttpRequest) -> HttpResponse:
    orgs = Org.objects.order_by("slug")
    slug = request.GET.get("org") or ""
    shown = orgs.filter(slug=slug) if slug else orgs
    context = {
        "alerts": alerts_for(orgs=shown).order_by("org__slug", "kind", "threshold"),
        "firings": firings_for(orgs=shown)[:100],
        "kinds": notifications.alert_kinds(),
        "products": notifications.reserved_products(None),
        "org_choices": orgs,
        "selected": slug,
        "can_manage": True,
        "show_org": True,
        "action": "/finance/alerts",
        "numbers": None,  # thresholds in each alert's currency, default locale
    }
    return render(request, "finance/alerts.html", context)


@require_POST
@finance_only
def alert_create(request: HttpRequest) -> HttpResponse:
    org = Org.objects.filter(slug=request.POST.get("org") or "").first()
    if org is None:
        raise Http404("No such org.")
    notifications.alert_create_from(request, org)
    return HttpResponseRedirect(f"/finance/alerts?org={org.slug}")


@require_POST
@finance_only
def alert_act(request: HttpRequest, alert_id: int, action: str) -> HttpResponse:
    alert = alerts_for(orgs=Org.objects.all()).filter(pk=alert_id).first()
    if alert is None or action not in ("pause", "resume", "delete"):
        raise Http404("No such alert.")
    slug = alert.org.slug
    notifications.alert_act(request, alert, action)
    return HttpResponseRedirect(f"/finance/alerts?org={slug}")


@platform_staff
def webhooks(request: HttpRequest) -> HttpResponse:
    context = {
        "endpoints": endpoints_for(orgs=Org.objects.all(), platform=True).order_by(
            "org__slug", "pk"
        ),
        "event_types": notifications.event_types(),
        "org_choices": Org.objects.order_by("slug"),
        "can_manage": True,
        "show_org": True,
        "base": "/finance/webhooks",
        "org_query": "",
    }
    return render(request, "finance/webhooks.html", context)


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_related("org").filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("No such endpoint.")
    return endpoint


@platform_staff
def webhook(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    context = {
        "can_manage": True,
        "base": "/finance/webhooks",
        "org_query": "",
        **notifications.endpoint_page(endpoint, with_secrets=True),
    }
    return render(request, "finance/webhook.html", context)


@require_POST
@platform_staff
def webhook_create(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("org") or ""
    org = Org.objects.filter(slug=slug).first() if slug else None
    if slug and org is None:
        raise Http404("No such org.")
    if org is not None and not request.user.groups.filter(name=StaffRole.FINANCE).exists():
        raise PermissionDenied("Org endpoints are set by the org's owners or finance.")
    endpoint = notifications.endpoint_create_from(request, org)
    if endpoint is None:
        return HttpResponseRedirect("/finance/webhooks")
    return HttpResponseRedirect(f"/finance/webhooks/{endpoint.pk}")


@require_POST
@platform_staff
def webhook_act(request: HttpRequest, endpoint_id: int, action: str) -> HttpResponse:
    endpoint = _endpoint(endpoint_id)
    if action not in ("rotate", "enable", "disable", "delete"):
        raise Http404("Unknown action.")
    if notifications.endpoint_act(request, endpoint, action):
        return HttpResponseRedirect(f"/finance/webhooks/{endpoint.pk}")
    return HttpResponseRedirect("/finance/webhooks")


@require_POST
@platform_staff
def delivery_replay(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).select_related("endpoint").first()
    if delivery is None:
        raise Http404("No such delivery.")
    notifications.delivery_replay(request, delivery)
    return HttpResponseRedirect(f"/finance/webhooks/{delivery.endpoint_id}")
