import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from tenancy.models import Org

from .models import AuditEntry


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    # Decimals and dates become strings, exactly as written (no float rounding).
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder, default=str))


def audit_record(
    *,
    action: str,
    object_type: str,
    object_key: str,
    changes: dict[str, Any] | None = None,
    actor: str = "system",
    user: Any = None,
    org: Org | None = None,
) -> AuditEntry:
    """Append one entry. Call it inside the transaction that makes the change."""
    entry = audit_entry(action=action, object_type=object_type, object_key=object_key,
                        changes=changes, actor=actor, user=user, org=org)  # fmt: skip
    entry.save(force_insert=True)
    return entry


def audit_entry(
    *,
    action: str,
    object_type: str,
    object_key: str,
    changes: dict[str, Any] | None = None,
    actor: str = "system",
    user: Any = None,
    org: Org | None = None,
) -> AuditEntry:
    """The unsaved entry ``audit_record`` would append, for a batch's ``bulk_create``: the
    acting user's name when ``user`` is signed in, else ``actor``."""
    if user is not None and getattr(user, "is_authenticated", False):
        actor = user.get_username()
    else:
        user = None
    return AuditEntry(
        action=action,
        object_type=object_type,
        object_key=object_key,
        changes=_json_safe(changes or {}),
        actor=actor[:150],
        user=user,
        org=org,
    )
