import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, Org, StaffRole

KEY_PREFIX = "tsk"


class BillingDetailsError(ValueError):
    """Billing details refused; ``fields`` maps each offending field to its message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = fields


@transaction.atomic
def org_billing_details_update(
    *,
    org: Org,
    name: str | None = None,
    billing_address: str | None = None,
    country: str | None = None,
    vat_id: str | None = None,
    billing_email: str | None = None,
    actor: str = "api",
    user: Any = None,
) -> Org:
    """Change what the org's next invoices print and how they are taxed (SPEC §3, §6 step 8);
    a ``None`` field is left as it is. Finalized invoices keep their snapshot.

    The VAT id is checked for format and check digits against the (new) country and stored
    compacted (``tenancy.vat_ids``). Raises ``BillingDetailsError`` naming each field;
    nothing is written then. Audited.
    """
    from audit.services import audit_record

    from .vat_ids import VatIdError, vat_id_clean

    errors: dict[str, str] = {}
    new_country = org.country if country is None else country.strip().upper()
    if country is not None and not (len(new_country) == 2 and new_country.isalpha()):
        errors["country"] = f"{country!r} must be an ISO 3166 two-letter code"
    new_vat_id = org.vat_id if vat_id is None else vat_id
    if "country" not in errors:
        try:
            new_vat_id = vat_id_clean(country=new_country, vat_id=new_vat_id)
        except VatIdError as exc:
            errors["vat_id"] = exc.message
    if name is not None and not name.strip():
        errors["name"] = "must not be empty"
    if billing_email:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        try:
            validate_email(billing_email)
        except ValidationError:
            errors["billing_email"] = f"{billing_email!r} is not an email address"
    if errors:
        raise BillingDetailsError(errors)
    wanted = {
        "name": org.name if name is None else name.strip(),
        "billing_address": org.billing_address if billing_address is None else billing_address,
        "country": new_country,
        "vat_id": new_vat_id,
        "billing_email": org.billing_email if billing_email is None else billing_email.strip(),
    }
    changed = {field: value for field, value in wanted.items() if getattr(org, field) != value}
    if changed:
        for field, value in changed.items():
            setattr(org, field, value)
        org.save(update_fields=list(changed))
        audit_record(
            action="org.billing_details",
            object_type="org",
            object_key=org.slug,
            changes=changed,
            user=user,
            actor=actor,
            org=org,
        )
    return org


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
