from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet

from .models import Allocation, HourlyRollup, Meter, QuarantinedWork, UsageEvent
from .services import meters_changed


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    """A meter decides every rating's usage: each save or delete goes to ``meters_changed``
    (billing rates the open and closing periods again once it commits)."""

    list_display = ["key", "event_type", "aggregation", "value_path", "unit", "allow_negative"]
    list_filter = ["aggregation", "allow_negative"]
    search_fields = ["key", "event_type"]

    def save_model(self, request: Any, obj: Meter, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        meters_changed(meters=[obj])

    def delete_model(self, request: Any, obj: Meter) -> None:
        with transaction.atomic():  # the hooks act once the delete has committed
            meters_changed(meters=[obj])
            super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: QuerySet[Meter]) -> None:
        with transaction.atomic():
            meters_changed(meters=list(queryset))
            super().delete_queryset(request, queryset)


@admin.register(UsageEvent)
class UsageEventAdmin(admin.ModelAdmin):
    """Read-only: events are append-only."""

    list_display = ["event_id", "source", "org", "type", "time", "received_at"]
    list_filter = ["type"]
    search_fields = ["event_id", "source"]
    date_hierarchy = "time"
    show_full_result_count = False

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(HourlyRollup)
class HourlyRollupAdmin(admin.ModelAdmin):
    list_display = ["org", "meter", "hour", "dimensions", "value", "event_count"]
    list_filter = ["meter"]
    date_hierarchy = "hour"
    show_full_result_count = False

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    """Writes go through the API (or allocation_create), which refuses overlaps."""

    list_display = ["device", "org", "start", "end"]
    list_filter = ["device__node"]
    search_fields = ["device__uuid", "device__node", "org__slug"]
    readonly_fields = ["org", "device", "start", "created_at"]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(QuarantinedWork)
class QuarantinedWorkAdmin(admin.ModelAdmin):
    """Read-only: batch work records its own failures and resolutions (SPEC §8)."""

    list_display = ["kind", "org", "unit", "attempts", "last_failed_at", "next_attempt_at",
                    "resolved_at", "error"]  # fmt: skip
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["org__slug", "unit", "error"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
