import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, Org, StaffRole

KEY_PREFIX = "tsk"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def split_key(raw_key: str) -> tuple[str, str] | None:
    """``tsk_<prefix>_<secret>`` → (prefix, secret), or None when it is not of that shape."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once; never stored


@transaction.atomic
def api_key_create(
    *,
    name: str,
    org: Org | None = None,
    scope: str = ApiKey.Scope.INGEST,
    created_by: Any = None,
) -> IssuedKey:
    """Issue an org key (scope ingest or read) or, without org, a platform collector key."""
    if org is None:
        kind, scope = ApiKey.Kind.COLLECTOR, ApiKey.Scope.COLLECTOR
    else:
        if scope not in (ApiKey.Scope.INGEST, ApiKey.Scope.READ):
            raise ValueError(f"scope must be 'ingest' or 'read' for an org key, not {scope!r}")
        kind = ApiKey.Kind.ORG
    prefix = secrets.token_hex(6)
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        org=org,
        kind=kind,
        scope=scope,
        name=name,
        prefix=prefix,
        key_hash=hash_key(raw_key),
        created_by=created_by,
    )
    return IssuedKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke once; revoking again keeps the first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


@transaction.atomic
def staff_user_create(
    *, username: str, role: str, email: str = "", password: str | None = None
) -> User:
    """Create (or update) a staff user holding ``role``; idempotent by username."""
    if role not in StaffRole.values:
        raise ValueError(f"role must be one of {', '.join(StaffRole.values)}, not {role!r}")
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    # Operators run the Django admin; other staff work in their own consoles.
    user.is_staff = user.is_staff or role == StaffRole.OPERATOR
    user.is_superuser = user.is_superuser or role == StaffRole.OPERATOR
    if password is not None:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user
