"""Who may see webhook endpoints (fails closed). Org endpoints: whoever may read the org
(secrets aside); platform endpoints (no org): finance and operators. Managing them is
``tenancy.access.may_manage``: the org's owners and finance."""

from typing import Any

from tenancy.access import has_role, visible_orgs
from tenancy.models import ApiKey, Org, StaffRole


def may_read(*, user: Any, api_key: ApiKey | None, org: Org | None) -> bool:
    if org is None:
        return api_key is None and has_role(user, StaffRole.FINANCE, StaffRole.OPERATOR)
    if api_key is not None and api_key.scope != ApiKey.Scope.READ:
        return False
    return visible_orgs(user=user, api_key=api_key).filter(pk=org.pk).exists()
