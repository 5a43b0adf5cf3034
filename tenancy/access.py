"""Who may see which org's data. Fails closed: an unknown caller sees nothing."""

from typing import Any

from django.db.models import QuerySet

from .models import ApiKey, Membership, Org, StaffRole


def staff_roles(user: Any) -> set[str]:
    if user is None or not getattr(user, "is_authenticated", False) or not hasattr(user, "groups"):
        return set()
    cached = getattr(user, "_tessera_staff_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=StaffRole.values).values_list("name", flat=True))
        user._tessera_staff_roles = cached
    return cached


def has_role(user: Any, *roles: str) -> bool:
    return bool(staff_roles(user) & set(roles))


def visible_orgs(*, user: Any = None, api_key: ApiKey | None = None) -> QuerySet[Org]:
    """The orgs whose tenant data this caller may read."""
    if api_key is not None:
        if api_key.kind == ApiKey.Kind.ORG and api_key.org_id is not None:
            return Org.objects.filter(pk=api_key.org_id)
        return Org.objects.none()
    roles = staff_roles(user)
    if StaffRole.FINANCE in roles or StaffRole.OPERATOR in roles:
        return Org.objects.all()
    if user is None or not getattr(user, "is_authenticated", False):
        return Org.objects.none()
    member_of = Membership.objects.filter(user=user).values("org_id")
    if StaffRole.ACCOUNT_MANAGER in roles:
        return Org.objects.filter(pk__in=member_of) | Org.objects.filter(account_manager=user)
    return Org.objects.filter(pk__in=member_of)


def is_staff_reader(*, user: Any = None, api_key: ApiKey | None = None) -> bool:
    """Staff who may read across orgs (and so may omit the org in a query)."""
    return api_key is None and bool(staff_roles(user))


def may_manage(*, user: Any, org: Org | None) -> bool:
    """Who changes an org's settings (alerts, webhook endpoints): its owners and finance; for
    platform-wide settings (``org`` None), finance and operators. Never an API key."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if org is None:
        return has_role(user, StaffRole.FINANCE, StaffRole.OPERATOR)
    if has_role(user, StaffRole.FINANCE):
        return True
    return Membership.objects.filter(org=org, user=user, role=Membership.Role.OWNER).exists()


def caller(request: Any) -> tuple[Any, ApiKey | None]:
    """(user, api_key) of a DRF or Django request; exactly one of them identifies the caller."""
    api_key = getattr(request, "auth", None)
    if isinstance(api_key, ApiKey):
        return None, api_key
    return getattr(request, "user", None), None
