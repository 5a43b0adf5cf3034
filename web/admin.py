"""Admin pages for tenancy's models. They live here, above tenancy and audit, because the org
admin is audited (``AuditedAdmin``) and tenancy imports nothing from the apps above it."""

from django.contrib import admin
from django.db.models import QuerySet

from audit.admin_mixins import AuditedAdmin
from tenancy.models import ApiKey, Membership, Org
from tenancy.services import api_key_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Org)
class OrgAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["slug", "name", "country", "currency", "vat_id", "account_manager"]
    search_fields = ["slug", "name", "vat_id"]
    list_filter = ["country", "currency"]
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued with create_api_key (the raw key is shown once); here they are revoked."""

    list_display = [
        "name",
        "org",
        "kind",
        "scope",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["kind", "scope"]
    search_fields = ["name", "prefix", "org__slug"]
    readonly_fields = [
        "org",
        "kind",
        "scope",
        "prefix",
        "key_hash",
        "created_at",
        "created_by",
        "last_used_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request: object) -> bool:
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: object, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
