from typing import Any

from django.http import HttpRequest

from tenancy.access import staff_roles
from tenancy.models import Membership, StaffRole

# (label, url prefix, who sees it): customers see the portal, staff their consoles.
_NAV = [
    ("Usage portal", "/portal/", "member"),
    ("Deal desk", "/deals/", StaffRole.ACCOUNT_MANAGER),
    ("Capacity", "/deals/capacity/", StaffRole.ACCOUNT_MANAGER),
    ("Finance", "/finance/", StaffRole.FINANCE),
    ("Admin", "/admin/", StaffRole.OPERATOR),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    roles = staff_roles(user)
    is_member = Membership.objects.filter(user=user).exists()
    items = []
    for label, url, who in _NAV:
        allowed = (
            is_member
            if who == "member"
            else (who in roles or (who == StaffRole.ACCOUNT_MANAGER and StaffRole.FINANCE in roles))
        )
        if allowed:
            items.append({"label": label, "url": url, "active": request.path.startswith(url)})
    # The longest matching prefix is the active one (/deals/capacity/ over /deals/).
    active = [i for i in items if i["active"]]
    for item in active[:-1]:
        item["active"] = False
    return {"nav_items": items}
