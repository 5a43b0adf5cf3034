"""Row locks of metering: the only place ``select_for_update`` appears for its models."""

from datetime import datetime

from .models import Device, QuarantinedWork, RollupMark


def lock_or_create_device(*, node: str, uuid: str) -> Device:
    """The device row, created if new, locked until the transaction ends."""
    device, _ = Device.objects.get_or_create(node=node, uuid=uuid)
    return lock_device(device_id=device.pk)


def lock_device(*, device_id: int) -> Device:
    """Lock one device's row: its allocations change one at a time."""
    return Device.objects.select_for_update().get(pk=device_id)


def lock_rollup_marks(*, limit: int) -> list[tuple[int, int, str, datetime]]:
    """Claim up to ``limit`` of the oldest rollup marks as (id, org id, event type, hour),
    skipping the marks another transaction holds (so rollup workers share the backlog)."""
    return list(
        RollupMark.objects.select_for_update(skip_locked=True)
        .order_by("hour", "id")
        .values_list("id", "org_id", "event_type", "hour")[:limit]
    )


def lock_open_work(*, kind: str, org_id: int, unit: str) -> QuarantinedWork | None:
    """The open quarantine row of one unit of batch work, locked (its failures are counted
    one at a time)."""
    return (
        QuarantinedWork.objects.select_for_update()
        .filter(kind=kind, org_id=org_id, unit=unit, resolved_at__isnull=True)
        .first()
    )
