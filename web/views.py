from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from tenancy.access import staff_roles
from tenancy.models import Membership, StaffRole

from .access import login_required_403


@login_required_403
def home(request: HttpRequest) -> HttpResponse:
    """Send each person to their own place."""
    roles = staff_roles(request.user)
    if StaffRole.FINANCE in roles:
        return HttpResponseRedirect("/finance/")
    if StaffRole.ACCOUNT_MANAGER in roles:
        return HttpResponseRedirect("/deals/")
    if StaffRole.OPERATOR in roles:
        return HttpResponseRedirect("/admin/")
    if Membership.objects.filter(user_id=request.user.pk or 0).exists():
        return HttpResponseRedirect("/portal/")
    return HttpResponse("Your account has no org and no staff role yet.", status=403)
