"""The deal desk pages (``/deals/``): account managers draft, finance approves; both sign.
Customers and operators get 403 on every page (``role_required``)."""

from collections.abc import Sequence
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
from web.charts import bars, stacked_bars

from . import access, selectors, services
from .capacity import PoolMonth
from .economics import EconomicsError
from .errors import DealError
from .forms import DealForm, LineFormSet, TermFormSet, line_initial, term_initial
from .models import Deal
from .quote import render_quote_pdf
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


def _term_text(term: dict[str, Any]) -> str:
    what = (
        f"custom price {term['unit_price']}"
        if term.get("unit_price")
        else f"{term.get('discount_percent')}% off"
    )
    until = f" until {term['until']}" if term.get("until") else ""
    return f"{what} {term.get('product') or 'every product'} from {term['from']}{until}"


def _value_text(name: str, value: Any) -> str:
    if name == "lines" and isinstance(value, list):
        return "; ".join(_line_text(line) for line in value) or "none"
    if name == "terms" and isinstance(value, list):
        return "; ".join(_term_text(term) for term in value) or "none"
    if value is None:
        return "none"
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
        terms_formset = TermFormSet(request.POST, prefix="terms")
        if form.is_valid() and formset.is_valid() and terms_formset.is_valid():
            lines = [
                f.line()
                for f in formset.forms
                if f.has_changed() and not f.cleaned_data.get("DELETE")
            ]
            terms = [
                f.term()
                for f in terms_formset.forms
                if f.has_changed() and not f.cleaned_data.get("DELETE")
            ]
            values = {
                "title": form.cleaned_data["title"],
                "currency": form.currency(),
                "rate_card_key": form.cleaned_data["rate_card"],
                "issuer": form.cleaned_data["issuer"],
                "amends": form.cleaned_data["amends"],
                "lines": lines,
                "terms": terms,
            }
            try:
                if deal is None:
                    deal = services.deal_create(
                        actor=request.user, org=form.cleaned_data["org"], **values
                    )
                else:
                    deal = services.deal_update(actor=request.user, deal_id=deal.pk, **values)
            except DealError as exc:
                if exc.kind == ErrorKind.FORBIDDEN:
                    raise PermissionDenied(exc.message) from None
                # Each message names the product and dates it is about: listed at the top.
                for errors in (exc.fields or {"__all__": [exc.message]}).values():
                    for error in errors:
                        form.add_error(None, error)
            else:
                messages.success(request, "Deal saved.")
                return HttpResponseRedirect(f"/deals/{deal.pk}/")
    elif deal is None:
        form = DealForm(user=request.user)
        formset = LineFormSet(prefix="lines")
        terms_formset = TermFormSet(prefix="terms")
    else:
        form = DealForm(
            user=request.user,
            deal=deal,
            initial={
                "org": deal.org,
                "amends": deal.amends,
                "title": deal.title,
                "rate_card": deal.rate_card_key,
                "issuer": deal.issuer,
            },
        )
        formset = LineFormSet(prefix="lines", initial=line_initial(deal))
        terms_formset = TermFormSet(prefix="terms", initial=term_initial(deal))
    return render(
        request,
        "deals/form.html",
        {"form": form, "formset": formset, "terms_formset": terms_formset, "deal": deal},
    )


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
    months: int | None = None
    if request.GET.get("months"):
        try:
            months = max(1, min(MAX_MONTHS, int(request.GET["months"])))
        except ValueError:
            messages.error(request, "Months is a whole number from 1 to 24.")
    simulation = simulate(deal=deal, months=months, as_of=timezone.now(), lines=view.lines)
    amending = deal.amends_id is not None
    current, proposed = (
        ("Current contract", "With this amendment") if amending else ("Current terms", "Deal")
    )
    chart = bars(
        title=f"Real usage, month by month: {current.lower()} vs {proposed.lower()} "
        f"({deal.currency})",
        labels=[f"{m.month:%Y-%m}" for m in simulation.months],
        series={
            current: [m.current for m in simulation.months],
            proposed: [m.deal for m in simulation.months],
        },
        y_title=deal.currency,
        height=260,
    )
    monthly_chart = None
    if view.economics:
        series: dict[str, Sequence[Decimal | float | None]] = {
            "This deal": [m.amount for m in view.economics.monthly]
        }
        if amending:
            series = {"Current contract": [m.current for m in view.economics.monthly], **series}
        monthly_chart = stacked_bars(
            title=f"Committed per month ({deal.currency})",
            labels=[f"{m.month:%Y-%m}" for m in view.economics.monthly],
            series=series,
            height=220,
        )
    return render(
        request,
        "deals/detail.html",
        {
            "view": view,
            "deal": deal,
            "simulation": simulation,
            "months": len(simulation.months),
            "labels": {"current": current, "proposed": proposed},
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
            if deal.amends is not None:
                messages.success(request, f"Signed: contract {deal.amends.key} amended.")
            else:
                messages.success(request, f"Signed: contract {deal.contract_key} created.")
    except DealError as exc:
        if exc.kind == ErrorKind.FORBIDDEN and exc.code != "four_eyes":
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
    rows = [{"pool": pool, "cells": [_cell(m) for m in pool.months]} for pool in pools]
    months = [m.month for m in pools[0].months] if pools else []
    return render(request, "deals/capacity.html", {"rows": rows, "months": months, "start": start})


def _cell(month: PoolMonth) -> dict[str, Any]:
    """One month of a pool: its state (for the colour) and who holds what (for the title)."""
    free = month.available - month.pipeline
    if month.available < 0:
        state = "short"
    elif free < 0 or (month.installed and free * 10 < month.installed):
        state = "tight"
    else:
        state = "idle"
    holders = "; ".join(
        f"{h.label}{f' ({h.org})' if h.org else ''}"
        f"{', approved' if h.kind == 'deal' else ''}: {h.quantity.normalize():f}"
        for h in month.holders
    )
    title = (
        f"{month.month:%Y-%m}: installed {month.installed.normalize():f}, reserved "
        f"{month.reserved.normalize():f}, free {month.available.normalize():f}"
        + (f", approved not signed {month.pipeline.normalize():f}" if month.pipeline else "")
        + (f" — {holders}" if holders else "")
    )
    return {"month": month, "state": state, "title": title}


@desk
def deal_quote(request: HttpRequest, deal_id: int) -> HttpResponse:
    """The quote for the customer, as a PDF."""
    deal = _deal(request, deal_id)
    try:
        pdf = render_quote_pdf(deal)
    except EconomicsError as exc:
        messages.error(request, f"No quote: {exc}")
        return HttpResponseRedirect(f"/deals/{deal_id}/")
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{quote_filename(deal)}"'
    return response


def quote_filename(deal: Deal) -> str:
    return f"quote-{deal.org.slug}-{deal.pk}.pdf"


@desk
def contract_detail(request: HttpRequest, contract_id: int) -> HttpResponse:
    """A contract's terms, each with the amendment that added it, and its amendments."""
    try:
        view = selectors.contract_view(user=request.user, contract_id=contract_id)
    except DealError as exc:
        raise PermissionDenied(exc.message) from None
    return render(request, "deals/contract.html", {"view": view, "contract": view.contract})
