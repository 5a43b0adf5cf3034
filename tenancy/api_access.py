"""The org an API read is about, refused with DRF's errors (403 / 400). For the API layer only:
``tenancy.access`` holds the roles and visibility rules it applies."""

from typing import Any

from rest_framework.exceptions import PermissionDenied, ValidationError

from .access import caller, visible_orgs
from .models import ApiKey, Org


def org_for_read(request: Any, slug: str | None) -> Org:
    """The org a read is about: the one named (if visible) or the caller's only org.

    Raises PermissionDenied (403) for an org the caller may not see, whether or not it exists,
    so that existence never leaks.
    """
    user, api_key = caller(request)
    if api_key is not None and api_key.scope != ApiKey.Scope.READ:
        raise PermissionDenied(f"An API key with scope '{api_key.scope}' cannot read usage.")
    orgs = visible_orgs(user=user, api_key=api_key)
    if slug:
        org = orgs.filter(slug=slug).first()
        if org is None:
            raise PermissionDenied(f"You may not read org {slug!r}.")
        return org
    mine = list(orgs[:2])
    if len(mine) == 1:
        return mine[0]
    if not mine:
        raise PermissionDenied("You may not read any org's usage.")
    raise ValidationError({"org": ["Name the org (slug): you may read several."]})
