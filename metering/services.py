from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.module_loading import import_string

from core.errors import DomainError, ErrorCode, ErrorKind
from tenancy.models import Org

from .lock_objects import lock_device, lock_or_create_device
from .models import Allocation, Device, Meter


class AllocationConflict(DomainError, ValueError):
    """The allocation overlaps another of the same device, or ends before it starts."""

    codes = {
        "allocation_conflict": ErrorCode(
            ErrorKind.CONFLICT, "The allocation overlaps another of the device, or ends early."
        )
    }

    def __init__(self, message: str) -> None:
        super().__init__("allocation_conflict", message)


def _overlapping(
    device: Device, start: datetime, end: datetime | None, exclude: int | None
) -> bool:
    query = Allocation.objects.filter(device=device).filter(Q(end__isnull=True) | Q(end__gt=start))
    if end is not None:
        query = query.filter(start__lt=end)
    if exclude is not None:
        query = query.exclude(pk=exclude)
    return query.exists()


@transaction.atomic
def allocation_create(
    *, org: Org, node: str, device_uuid: str, start: datetime, end: datetime | None = None
) -> Allocation:
    """Record that ``org`` holds a device from ``start`` (until ``end``, or until ended)."""
    if end is not None and end <= start:
        raise AllocationConflict("end must be after start")
    device = lock_or_create_device(node=node, uuid=device_uuid)
    if _overlapping(device, start, end, exclude=None):
        raise AllocationConflict(f"{node}/{device_uuid} is already allocated in that interval")
    return Allocation.objects.create(org=org, device=device, start=start, end=end)


@transaction.atomic
def allocation_end(*, allocation: Allocation, end: datetime) -> Allocation:
    """End an allocation (or move its end); it must still end after it starts."""
    device = lock_device(device_id=allocation.device_id)
    if end <= allocation.start:
        raise AllocationConflict("end must be after start")
    if _overlapping(device, allocation.start, end, exclude=allocation.pk):
        raise AllocationConflict("the new end overlaps a later allocation of this device")
    allocation.end = end
    allocation.save(update_fields=["end"])
    return allocation


def meters_changed(*, meters: list[Meter]) -> None:
    """An edit or delete of ``meters`` (the admin), inside its transaction, before a delete:
    each ``TESSERA_METER_HOOKS`` is called with them, so billing marks the periods whose
    usage they measure for rating again without metering importing billing."""
    for hook in getattr(settings, "TESSERA_METER_HOOKS", []):
        import_string(hook)(meters)
