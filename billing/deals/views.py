"""The deal desk pages (``/deals/``): account managers draft, finance approves; both sign.
Customers and operators get 403 on every page (``role_required``)."""

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.errors import ErrorKind
from core.timeparse import month_start
from tenancy.models import StaffRole
from web.access import role_required
from web.charts import lines as line_chart
from web.charts import stacked_bars

from . import access, selectors, services
from .errors import DealError
from .forms import DealForm, LineFormSet, ramp_text
from .models import Deal
from .simulation import MAX_MONTHS, simulate

ZERO = Decimal(0)
desk = role_required(StaffRole.ACCOUNT_MANAGER, StaffRole.FINANCE)


def _line_text(line: dict[str, Any]) -> str:
    ramp = "".join(f", {s['quantity']} from {s['from']}" for s in line.get("ramp", []))
    burst = f", burst {line['burst_unit_price']}" if line.get("burst_unit_price") else ""
    return (
        f"{line['quantity']} × {line['product']} from {line['start']} for "
        f"{line['term_months']} mo at {line['unit_price']}{burst}{ramp}"
    )


def _value_text(name: str, value: Any) -> str:
    if name == "lines" and isinstance(value, list):
        return "; ".join(_line_text(line) for line in value) or "none"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    return str(value)


def changes_text(changes: dict[str, Any], edited: bool) -> list[str]:
    """The trail's changes as lines a person reads: "field: before → after" for edits."""
    if edited:
        return [
            f"{name}: {_value_text(name, before)} → {_value_text(name, after)}"
            for name, (before, after) in changes.items()
        ]
    return [f"{name}: {_value_text(name, value)}" for name, value in changes.items()]


def _deal(request: HttpRequest, deal_id: int) -> Deal:
    try:
        return selectors.deal_for(user=request.user, deal_id=deal_id)
    except DealError as exc:
        raise PermissionDenied(exc.message) from None


@desk
def deal_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or None
    deals = selectors.deals_for(user=request.user, status=status).prefetch_related("lines__product")
    return render(
        request,
        "deals/list.html",
        {
            "deals": deals,
            "status": status,
            "statuses": Deal.Status.choices,
            "may_draft": access.draftable_orgs(request.user).exists(),
        },
    )


def _form_page(request: HttpRequest, deal: Deal | None) -> HttpResponse:
    if request.method == "POST":
        form = DealForm(request.POST, user=request.user, deal=deal)
        formset = LineFormSet(request.POST, prefix="lines")
        if form.is_valid() and formset.is_valid():
            lines = [
                f.line()
                for f in formset.forms
                if f.has_changed() and not f.cleaned_data.get("DELETE")
            ]
            terms = {
                "title": form.cleaned_data["title"],
                "currency": form.currency(),
                "rate_card_key": form.cleaned_data["rate_card"],
                "issuer": form.cleaned_data["issuer"],
                "lines": lines,
            }
            try:
                if deal is None:
                    deal = services.deal_create(
                        actor=request.user, org=form.cleaned_data["org"], **terms
                    )
                else:
                    deal = services.deal_update(actor=request.user, deal_id=deal.pk, **terms)
            except DealError as exc:
                if exc.kind == ErrorKind.FORBIDDEN:
                    raise PermissionDenied(exc.message) from None
                for name, errors in (exc.fields or {"__all__": [exc.message]}).items():
                    for error in errors:
                        form.add_error(None, f"{name}: {error}" if name != "__all__" else error)
            else:
                messages.success(request, "Deal saved.")
                return HttpResponseRedirect(f"/deals/{deal.pk}/")
    elif deal is None:
        form = DealForm(user=request.user)
        formset = LineFormSet(prefix="lines")
    else:
        form = DealForm(
            user=request.user,
            deal=deal,
            initial={
                "org": deal.org,
                "title": deal.title,
                "rate_card": deal.rate_card_key,
                "issuer": deal.issuer,
            },
        )
        formset = LineFormSet(
            prefix="lines",
            initial=[
                {
                    "product": line.product,
                    "quantity": line.quantity,
                    "start": line.start,
                    "term_months": line.term_months,
                    "unit_price": line.unit_price.normalize(),
                    "burst_unit_price": line.burst_unit_price.normalize()
                    if line.burst_unit_price is not None
                    else None,
                    "ramp": ramp_text(line.ramp),
                }
                for line in deal.lines.select_related("product")
            ],
        )
    return render(request, "deals/form.html", {"form": form, "formset": formset, "deal": deal})


@role_required(StaffRole.ACCOUNT_MANAGER)
def deal_new(request: HttpRequest) -> HttpResponse:
    if not access.draftable_orgs(request.user).exists():
        raise PermissionDenied("No org is assigned to you.")
    return _form_page(request, None)


@desk
def deal_edit(request: HttpRequest, deal_id: int) -> HttpResponse:
    deal = _deal(request, deal_id)
    if not access.may_edit(request.user, deal):
        raise PermissionDenied("Only the org's account manager edits a draft or rejected deal.")
    return _form_page(request, deal)


@desk
def deal_detail(request: HttpRequest, deal_id: int) -> HttpResponse:
    deal = _deal(request, deal_id)
    view = selectors.deal_view(user=request.user, deal=deal)
    try:
        months = max(1, min(MAX_MONTHS, int(request.GET.get("months", 6))))
    except ValueError:
        months = 6
    simulation = simulate(deal=deal, months=months, as_of=timezone.now(), lines=view.lines)
    chart = line_chart(
        title=f"Last {months} months of real usage: current terms vs this deal ({deal.currency})",
        labels=[f"{m.month:%Y-%m}" for m in simulation.months],
        series={
            "Current terms": [m.current for m in simulation.months],
            "Under the deal": [m.deal for m in simulation.months],
        },
        y_title=deal.currency,
        height=280,
    )
    monthly_chart = None
    if view.economics:
        monthly_chart = stacked_bars(
            title=f"Monthly commitment ({deal.currency})",
            labels=[f"{m.month:%Y-%m}" for m in view.economics.monthly],
            series={"Commitment": [m.amount for m in view.economics.monthly]},
            height=240,
        )
    return render(
        request,
        "deals/detail.html",
        {
            "view": view,
            "deal": deal,
            "simulation": simulation,
            "months": months,
            "chart": chart,
            "monthly_chart": monthly_chart,
            "threshold": services.approval_threshold(),
            "events": [
                (e, changes_text(e.changes, e.action == e.Action.EDITED)) for e in view.events
            ],
        },
    )


def _transition(request: HttpRequest, deal_id: int, action: str) -> HttpResponse:
    deal = _deal(request, deal_id)
    comment = request.POST.get("comment", "")
    try:
        if action == "submit":
            deal = services.deal_submit(actor=request.user, deal_id=deal.pk)
            messages.success(
                request, f"Submitted: the deal is {deal.get_status_display().lower()}."
            )
        elif action == "approve":
            services.deal_approve(actor=request.user, deal_id=deal.pk, comment=comment)
            messages.success(request, "Deal approved.")
        elif action == "reject":
            services.deal_reject(actor=request.user, deal_id=deal.pk, comment=comment)
            messages.success(request, "Deal rejected.")
        else:
            deal = services.deal_sign(actor=request.user, deal_id=deal.pk)
            messages.success(request, f"Signed: contract {deal.contract_key} created.")
    except DealError as exc:
        if exc.kind == ErrorKind.FORBIDDEN:
            raise PermissionDenied(exc.message) from None
        messages.error(request, exc.message)
    return HttpResponseRedirect(f"/deals/{deal_id}/")


@require_POST
@desk
def deal_submit(request: HttpRequest, deal_id: int) -> HttpResponse:
    return _transition(request, deal_id, "submit")


@require_POST
@desk
def deal_approve(request: HttpRequest, deal_id: int) -> HttpResponse:
    return _transition(request, deal_id, "approve")


@require_POST
@desk
def deal_reject(request: HttpRequest, deal_id: int) -> HttpResponse:
    return _transition(request, deal_id, "reject")


@require_POST
@desk
def deal_sign(request: HttpRequest, deal_id: int) -> HttpResponse:
    return _transition(request, deal_id, "sign")


@desk
def capacity(request: HttpRequest) -> HttpResponse:
    start = timezone.now().date().replace(day=1)
    raw = request.GET.get("from")
    if raw:
        try:
            start = month_start(raw)
        except ValueError:
            messages.error(request, f"{raw!r} is not a month (YYYY-MM).")
    pools = selectors.capacity_for(user=request.user, start=start, months=24)
    charts = {
        pool.name: stacked_bars(
            title=f"{pool.name}: GPUs per month",
            labels=[f"{m.month:%Y-%m}" for m in pool.months],
            series={
                # Series take the palette in order: blue, green, amber, red.
                "Reserved (signed)": [m.reserved for m in pool.months],
                "Free": [max(m.available - m.pipeline, ZERO) for m in pool.months],
                "Approved, not signed": [
                    min(m.pipeline, max(m.available, ZERO)) for m in pool.months
                ],
                "Oversold": [max(m.reserved + m.pipeline - m.installed, ZERO) for m in pool.months],
            },
            y_title="GPUs",
            height=280,
        )
        for pool in pools
    }
    return render(
        request,
        "deals/capacity.html",
        {"pools": [(pool, charts[pool.name]) for pool in pools], "start": start},
    )
