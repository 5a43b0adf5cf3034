"""The customer portal: usage and cost, price list, API keys (alerts and webhooks in
``portal.notifications``). Every page answers ``Cache-Control: no-store`` (the middleware)."""

import csv
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.alerts.selectors import firings_for
from billing.invoicing.selectors import org_documents
from billing.models import BillingPeriod, Product
from billing.selectors import org_summary
from billing.usage import ProductWindow, products_matching
from tenancy.models import ApiKey, Membership, Org
from tenancy.services import api_key_create, api_key_revoke
from web import charts
from web.access import login_required_403
from web.formatting import Numbers, csv_amount, csv_quantity, org_locale

from . import selectors

MAX_DAYS = 400
# The cost and usage charts sit side by side: drawn at about the size they are shown.
HALF = {"width": 560, "height": 380}
Status = BillingPeriod.Status


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


def numbers_for(org: Org, currency: str | None = None) -> Numbers:
    return Numbers(org_locale(org.country), currency or org.currency)


def _range(request: HttpRequest, period: BillingPeriod) -> tuple[datetime, datetime]:
    """``?from=`` and ``?to=`` (ISO dates, both inclusive), default the period's days."""
    start, end = period.start, period.end
    raw_from, raw_to = request.GET.get("from"), request.GET.get("to")
    if not raw_from and not raw_to:
        return start, end
    try:
        if raw_from:
            start = datetime.combine(date.fromisoformat(raw_from), datetime.min.time(), UTC)
        if raw_to:
            last = date.fromisoformat(raw_to) + timedelta(days=1)
            end = datetime.combine(last, datetime.min.time(), UTC)
    except ValueError:
        messages.error(request, "Dates are YYYY-MM-DD; showing the whole period.")
        return period.start, period.end
    if end <= start or (end - start).days > MAX_DAYS:
        messages.error(request, f"Pick 1 to {MAX_DAYS} days, 'to' after 'from'.")
        return period.start, period.end
    return start, end


def _filters(request: HttpRequest, choices: dict[str, list[str]]) -> dict[str, str]:
    """``?filter.<dimension>=value`` for the dimensions products are defined by."""
    return {
        name: value
        for name in choices
        if (value := request.GET.get(f"filter.{name}", "")) and value in choices[name]
    }


def _by_day(
    rows: list[ProductWindow], days: list[datetime], attribute: str
) -> dict[Product, list[Decimal | None]]:
    series: dict[Product, dict[datetime, Decimal]] = defaultdict(dict)
    for row in rows:
        value = getattr(row, attribute)
        if value:
            series[row.product][row.start.replace(hour=0)] = value
    return {product: [values.get(d) for d in days] for product, values in series.items()}


@login_required_403
def dashboard(request: HttpRequest) -> HttpResponse:
    org, role = _org(request)
    period = _period(request, org)
    summary = org_summary(org=org, period=period) if period else org_summary(org=org)
    numbers = numbers_for(org, summary.currency)
    context: dict[str, Any] = {
        "org": org,
        "orgs": selectors.member_orgs(user_id=request.user.pk or 0),
        "role": role,
        "period": period,
        "periods": selectors.org_periods(org=org),
        "summary": summary,
        "numbers": numbers,
        "credits_left": sum((c.balance for c in summary.credits), Decimal(0)),
        "invoice": selectors.period_invoice(org=org, period=period) if period else None,
    }
    if period is not None:
        context.update(_period_context(request, org, period, numbers))
    context["invoices"] = org_documents(org=org)
    context["keys"] = ApiKey.objects.filter(org=org).order_by("-created_at")
    return render(request, "portal/dashboard.html", context)


def _period_context(
    request: HttpRequest, org: Org, period: BillingPeriod, numbers: Numbers
) -> dict[str, Any]:
    catalog = list(Product.objects.select_related("meter").order_by("key"))
    choices = selectors.dimension_choices(catalog)
    filters = _filters(request, choices)
    start, end = _range(request, period)
    rows = selectors.daily_usage_and_cost(
        org=org, start=start, end=end, products=products_matching(filters),
        currency=numbers.currency,
    )  # fmt: skip
    days = selectors.days_of(start, end)
    labels = [d.strftime("%b %d") for d in days]
    costs = _by_day(rows, days, "amount")
    usage = _by_day(rows, days, "quantity")
    # One stacked usage chart per billing unit: GPU-hours and tokens do not add up.
    units = sorted({p.unit for p in usage})
    stacks = selectors.reservation_stacks(org=org, period=period)
    names = {p.key: p for p in catalog}
    # A product keeps its colour in every chart (by its place in the catalog).
    colour = {p: charts.PALETTE[i % len(charts.PALETTE)] for i, p in enumerate(catalog)}
    return {
        "range_from": start.date(),
        "range_to": (end - timedelta(days=1)).date(),
        "whole_period": (start, end) == (period.start, period.end),
        "choices": choices,
        "filters": filters,
        "query": request.GET.urlencode(),
        "cost_chart": charts.stacked_bars(
            title=f"Cost per day, {numbers.currency} excl. VAT",
            labels=labels,
            series={p.name: values for p, values in costs.items()},
            y_title=f"{numbers.currency} excl. VAT",
            formatter=numbers.axis,
            colors=[colour[p] for p in costs],
            **HALF,
        )
        if costs
        else None,
        "usage_charts": [
            charts.stacked_bars(
                title=f"Usage per day, {unit}",
                labels=labels,
                series={p.name: values for p, values in usage.items() if p.unit == unit},
                y_title=unit,
                formatter=numbers.axis,
                colors=[colour[p] for p in usage if p.unit == unit],
                **HALF,
            )
            for unit in units
        ],
        "reservation_charts": [
            _reservation_chart(names.get(stack.product), stack, numbers) for stack in stacks
        ],
        "firings": firings_for(orgs=Org.objects.filter(pk=org.pk), period=period)[:20],
        **_tokens(org, period),
    }


def _reservation_chart(
    product: Product | None, stack: selectors.ReservationStack, numbers: Numbers
) -> dict[str, Any]:
    """Reserved vs used per hour of one reserved product: its reservations stacked (SPEC §3:
    stacked reservations net once against their sum), each line the top of its share."""
    name, unit = (product.name, product.unit) if product else (stack.product, "unit")
    reserved = sum((sum(band, Decimal(0)) for band in stack.bands.values()), Decimal(0))
    totals = stack.totals
    covered = sum((min(u, r) for u, r in zip(stack.used, totals, strict=True)), Decimal(0))
    return {
        "name": name,
        "unit": unit,
        "stack": list(stack.bands),
        "reserved": reserved,
        "used": sum(stack.used, Decimal(0)),
        "burst": sum(
            (max(Decimal(0), u - r) for u, r in zip(stack.used, totals, strict=True)), Decimal(0)
        ),  # fmt: skip
        "utilization": covered * 100 / reserved if reserved else Decimal(0),
        "burst_hours": sum(1 for u, r in zip(stack.used, totals, strict=True) if u > r),
        "chart": charts.reserved_vs_used(
            title=name,
            labels=[h.strftime("%b %d %H:00") for h in stack.hours],
            stack=stack.bands,
            used=stack.used,
            y_title=f"{unit}s in the hour",
            formatter=numbers.axis,
        ),
    }


def _tokens(org: Org, period: BillingPeriod) -> dict[str, Any]:
    meters, tokens = selectors.token_usage_by_model(org=org, start=period.start, end=period.end)
    return {
        "token_meters": meters,
        "token_rows": [
            {"model": row.model, "values": [row.values.get(m.key, Decimal(0)) for m in meters]}
            for row in tokens
        ],
    }


@login_required_403
def usage_csv(request: HttpRequest) -> HttpResponse:
    """The dashboard's daily usage and cost, per product, as CSV (same range and filters)."""
    org, _ = _org(request)
    period = _period(request, org)
    if period is None:
        raise PermissionDenied("This org has no billing period yet.")
    catalog = list(Product.objects.select_related("meter").order_by("key"))
    filters = _filters(request, selectors.dimension_choices(catalog))
    start, end = _range(request, period)
    rows = selectors.daily_usage_and_cost(
        org=org, start=start, end=end, products=products_matching(filters),
        currency=period.currency,
    )  # fmt: skip
    response = HttpResponse(content_type="text/csv")
    name = f"{org.slug}-usage-{start:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(["date", "product", "name", "unit", "quantity", "amount_excl_vat", "currency"])
    for row in rows:
        writer.writerow(
            [
                row.start.date().isoformat(),
                row.product.key,
                row.product.name,
                row.product.unit,
                csv_quantity(row.quantity),
                csv_amount(row.amount, row.currency),
                row.currency,
            ]
        )
    return response


@login_required_403
def prices(request: HttpRequest) -> HttpResponse:
    """The org's price list: what each product costs it, its reservations and commitments."""
    org, role = _org(request)
    lists = selectors.price_lists(org=org, at=timezone.now())
    context = {
        "org": org,
        "orgs": selectors.member_orgs(user_id=request.user.pk or 0),
        "role": role,
        "lists": [{"list": pl, "numbers": numbers_for(org, pl.currency)} for pl in lists],
        "numbers": numbers_for(org),
    }
    return render(request, "portal/prices.html", context)


def owner_org(request: HttpRequest, what: str = "its API keys") -> Org:
    org, role = _org(request)
    if role != Membership.Role.OWNER:
        raise PermissionDenied(f"Only an org's owners manage {what}.")
    return org


@require_POST
@login_required_403
def key_create(request: HttpRequest) -> HttpResponse:
    org = owner_org(request)
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
    org = owner_org(request)
    key = ApiKey.objects.filter(org=org, pk=key_id).first()
    if key is None:
        raise PermissionDenied("No such key in this org.")
    api_key_revoke(api_key=key)
    messages.success(request, f"Key {key.name!r} revoked.")
    return HttpResponseRedirect(f"/portal/?org={org.slug}#keys")
