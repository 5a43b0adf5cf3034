from typing import Any, cast

from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import BaseInlineFormSet, Form, ModelForm
from django.http import HttpRequest

from audit.admin_mixins import AuditedAdmin

from .models import (
    Amendment,
    BillingPeriod,
    CapacityPool,
    Contract,
    ContractPrice,
    CreditDraw,
    CreditGrant,
    Issuer,
    Price,
    Product,
    RateCard,
    RatedCharge,
    Reservation,
    ReservationRamp,
    SpendCommitment,
)
from .rating.triggers import inputs_changed


class RatingInputAdmin:
    """For the admins of what ratings read (SPEC §6): once a save or delete commits, the open
    and closing periods of the contracts that read the row, as it was and as it is, are
    marked for rating again (``rating.triggers.inputs_changed``). The inline rows of these
    admins are the row's own terms (a contract's prices, a card's prices), read by the same
    contracts."""

    def save_model(self, request: HttpRequest, obj: Any, form: Form, change: bool) -> None:
        before = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            inputs_changed([obj] if before is None else [before, obj])

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():  # stamped once the delete has committed
            inputs_changed([obj])
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        with transaction.atomic():
            inputs_changed(list(queryset))
            super().delete_queryset(request, queryset)  # type: ignore[misc]


class OrgInlinesAdmin:
    """A row added inline belongs to the parent's org (the inlines do not show the org)."""

    def save_formset(
        self, request: HttpRequest, form: Form, formset: BaseInlineFormSet, change: bool
    ) -> None:
        org_id = cast(ModelForm, form).instance.org_id
        for row in formset.forms:
            if row.instance.org_id is None:
                row.instance.org_id = org_id
        super().save_formset(request, form, formset, change)  # type: ignore[misc]


@admin.register(Issuer)
class IssuerAdmin(RatingInputAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["key", "legal_name", "country", "vat_id", "invoice_prefix", "rounding"]


@admin.register(Product)
class ProductAdmin(RatingInputAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["key", "name", "meter", "filter", "unit", "unit_size", "quantity"]
    list_filter = ["meter", "quantity"]
    search_fields = ["key", "name"]


@admin.register(CapacityPool)
class CapacityPoolAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["region", "gpu_model", "gpus", "valid_from"]
    list_filter = ["region", "gpu_model"]


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0


@admin.register(RateCard)
class RateCardAdmin(RatingInputAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["key", "effective_from", "currency", "name"]
    inlines = [PriceInline]


class ContractPriceInline(admin.TabularInline):
    """Dated on-demand terms: a discount, or a custom price, from ``valid_from`` until
    ``valid_until`` (exclusive; empty: the contract's end)."""

    model = ContractPrice
    extra = 0
    fields = ["product", "discount_percent", "unit_price", "valid_from", "valid_until", "amendment"]
    readonly_fields = ["amendment"]


class ReservationInline(admin.TabularInline):
    model = Reservation
    extra = 0
    show_change_link = True
    fields = ["product", "quantity", "unit_price", "burst_unit_price", "start", "end", "amendment"]
    readonly_fields = ["amendment"]


class AmendmentInline(admin.TabularInline):
    """The contract's amendment history: appended by signed deals, never edited here."""

    model = Amendment
    extra = 0
    can_delete = False
    fields = ["effective", "signed_at", "signed_by", "summary"]
    readonly_fields = ["effective", "signed_at", "signed_by", "summary"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class SpendCommitmentInline(admin.TabularInline):
    model = SpendCommitment
    extra = 0
    exclude = ["org"]


@admin.register(Contract)
class ContractAdmin(RatingInputAdmin, OrgInlinesAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["key", "org", "issuer", "rate_card_key", "currency", "start", "end"]
    list_filter = ["issuer", "currency"]
    search_fields = ["key", "org__slug"]
    inlines = [ContractPriceInline, ReservationInline, SpendCommitmentInline, AmendmentInline]


class ReservationRampInline(admin.TabularInline):
    model = ReservationRamp
    extra = 0
    exclude = ["org"]


@admin.register(Reservation)
class ReservationAdmin(RatingInputAdmin, OrgInlinesAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["contract", "product", "quantity", "unit_price", "start", "end"]
    inlines = [ReservationRampInline]


@admin.register(CreditGrant)
class CreditGrantAdmin(RatingInputAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["key", "org", "amount", "balance", "currency", "effective", "expires"]
    search_fields = ["key", "org__slug"]
    # The balance moves only with a ledger row (billing.rating.credits).
    readonly_fields = ["balance"]


@admin.register(CreditDraw)
class CreditDrawAdmin(admin.ModelAdmin):
    """Append-only ledger: visible, never edited."""

    list_display = ["created_at", "org", "grant", "period", "amount", "balance_after"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RatedChargeInline(admin.TabularInline):
    model = RatedCharge
    extra = 0
    can_delete = False
    readonly_fields = [
        "product",
        "kind",
        "line",
        "description",
        "quantity",
        "unit_price",
        "amount",
        "currency",
    ]


@admin.register(BillingPeriod)
class BillingPeriodAdmin(admin.ModelAdmin):
    list_display = ["org", "contract", "start", "end", "status", "subtotal", "rated_at"]
    list_filter = ["status"]
    search_fields = ["org__slug", "contract__key"]
    inlines = [RatedChargeInline]
