import csv
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from billing.invoicing.selectors import org_documents
from billing.models import BillingPeriod
from billing.selectors import ReservationUse, org_summary
from tenancy.models import ApiKey, Membership, Org
from tenancy.services import api_key_create, api_key_revoke
from web import charts
from web.access import login_required_403

from . import selectors


def _org(request: HttpRequest) -> tuple[Org, str]:
    """The org asked for (``?org=``) among the caller's memberships, and the caller's role."""
    user_id = request.user.pk or 0
    orgs = selectors.member_orgs(user_id=user_id)
    slug = request.GET.get("org") or request.POST.get("org")
    org = orgs.filter(slug=slug).first() if slug else orgs.first()
    if org is None:
        raise PermissionDenied("You are not a member of that org.")
    role = selectors.membership_role(org=org, user_id=user_id)
    assert role is not None
    return org, role


def _period(request: HttpRequest, org: Org) -> BillingPeriod | None:
    periods = selectors.org_periods(org=org)
    wanted = request.GET.get("period")
    if wanted:
        period = periods.filter(pk=wanted).first() if wanted.isdigit() else None
        if period is None:
            raise PermissionDenied("No such period for this org.")
        return period
    return org_summary(org=org).period


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


@login_required_403
def dashboard(request: HttpRequest) -> HttpResponse:
    org, role = _org(request)
    period = _period(request, org)
    summary = org_summary(org=org, at=period.start if period else None)
    context: dict[str, Any] = {
        "org": org,
        "orgs": selectors.member_orgs(user_id=request.user.pk or 0),
        "role": role,
        "period": period,
        "periods": selectors.org_periods(org=org),
        "summary": summary,
        "cost_so_far": _money(summary.cost_so_far),
        "forecast": _money(summary.forecast),
        "credits_left": _money(sum((c.balance for c in summary.credits), Decimal(0))),
    }
    if period is not None:
        days = selectors.days_of(period.start, period.end)
        usage = selectors.daily_usage_by_product(org=org, start=period.start, end=period.end)
        # One stacked chart per billing unit: GPU-hours and tokens do not add up.
        units = sorted({p.unit for p in usage})
        context["usage_charts"] = [
            charts.stacked_bars(
                title=f"Usage per day, {unit}",
                labels=[d.strftime("%b %d") for d in days],
                series={p.name: [usage[p].get(d) for d in days] for p in usage if p.unit == unit},
                y_title=unit,
            )
            for unit in units
        ]
        context["reservation_charts"] = _reservation_charts(summary.reservations)
        meters, tokens = selectors.token_usage_by_model(org=org, start=period.start, end=period.end)
        context["token_meters"] = meters
        context["token_rows"] = [
            {"model": row.model, "values": [row.values.get(m.key, Decimal(0)) for m in meters]}
            for row in tokens
        ]
    context["invoices"] = org_documents(org=org)
    context["keys"] = ApiKey.objects.filter(org=org).order_by("-created_at")
    return render(request, "portal/dashboard.html", context)


def _reservation_charts(uses: list[ReservationUse]) -> list[dict[str, Any]]:
    """One chart per product: its reservations stacked (SPEC §3 "Reservations stack") under
    what was used, hour by hour; the figures are the stack's (the sum of the shares)."""
    by_product: dict[str, list[ReservationUse]] = {}
    for use in uses:
        by_product.setdefault(use.product, []).append(use)
    charts_out = []
    for product, stack in by_product.items():
        hours = sorted({h["hour"] for use in stack for h in use.hours})
        reserved = {
            id(use): {h["hour"]: Decimal(h["reserved"]) for h in use.hours} for use in stack
        }
        used: dict[Any, Decimal] = {}
        for use in stack:
            for h in use.hours:
                used[h["hour"]] = used.get(h["hour"], Decimal(0)) + Decimal(h["used"])
        total_reserved = sum((u.reserved for u in stack), Decimal(0))
        covered = sum((u.covered for u in stack), Decimal(0))
        names = {
            id(use): f"{'+' if i else ''}{use.quantity.normalize():f} reserved from {use.start}"
            + (" (amendment)" if use.amendment else "")
            for i, use in enumerate(stack)
        }
        charts_out.append(
            {
                "product": product,
                "stack": stack,
                "reserved": total_reserved,
                "used": sum(used.values(), Decimal(0)),
                "burst": sum((u.burst for u in stack), Decimal(0)),
                "utilization": (covered * 100 / total_reserved).quantize(Decimal("0.01"))
                if total_reserved
                else Decimal(0),
                "burst_hours": sum(
                    1
                    for hour in hours
                    if used.get(hour, Decimal(0))
                    > sum((reserved[id(u)].get(hour, Decimal(0)) for u in stack), Decimal(0))
                ),
                "chart": charts.stacked_reserved(
                    title=f"{product}: reserved vs used per hour",
                    labels=[hour.strftime("%d %H:00") for hour in hours],
                    stack={
                        names[id(use)]: [reserved[id(use)].get(h, Decimal(0)) for h in hours]
                        for use in stack
                    },
                    used=[used.get(h, Decimal(0)) for h in hours],
                    y_title="units",
                ),
            }
        )
    return charts_out


@login_required_403
def usage_csv(request: HttpRequest) -> HttpResponse:
    """The daily usage shown on the dashboard, per product, as CSV."""
    org, _ = _org(request)
    period = _period(request, org)
    if period is None:
        raise PermissionDenied("This org has no billing period yet.")
    usage = selectors.daily_usage_by_product(org=org, start=period.start, end=period.end)
    response = HttpResponse(content_type="text/csv")
    name = f"{org.slug}-usage-{period.start:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(["date", "product", "name", "unit", "quantity"])
    for day in selectors.days_of(period.start, period.end):
        for product, days in usage.items():
            if day in days:
                writer.writerow(
                    [
                        day.date().isoformat(),
                        product.key,
                        product.name,
                        product.unit,
                        f"{days[day]:f}",
                    ]
                )
    return response


def _owner(request: HttpRequest) -> Org:
    org, role = _org(request)
    if role != Membership.Role.OWNER:
        raise PermissionDenied("Only an org's owners manage its API keys.")
    return org


@require_POST
@login_required_403
def key_create(request: HttpRequest) -> HttpResponse:
    org = _owner(request)
    scope = request.POST.get("scope", "")
    name = (request.POST.get("name") or "").strip()[:100]
    if scope not in (ApiKey.Scope.INGEST, ApiKey.Scope.READ) or not name:
        messages.error(request, "Give the key a name and a scope (ingest or read).")
        return HttpResponseRedirect(f"/portal/?org={org.slug}#keys")
    issued = api_key_create(name=name, org=org, scope=scope, created_by=request.user)
    context = {"org": org, "issued": issued}
    return render(request, "portal/key_created.html", context)


@require_POST
@login_required_403
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    org = _owner(request)
    key = ApiKey.objects.filter(org=org, pk=key_id).first()
    if key is None:
        raise PermissionDenied("No such key in this org.")
    api_key_revoke(api_key=key)
    messages.success(request, f"Key {key.name!r} revoked.")
    return HttpResponseRedirect(f"/portal/?org={org.slug}#keys")
