from django.db.models import QuerySet

from .models import AuditEntry


def audit_entries(
    *, object_type: str | None = None, org_slug: str | None = None, limit: int = 500
) -> QuerySet[AuditEntry]:
    """Newest first. Staff-only data: callers check the finance or operator role."""
    entries = AuditEntry.objects.select_related("org")
    if object_type:
        entries = entries.filter(object_type=object_type)
    if org_slug:
        entries = entries.filter(org__slug=org_slug)
    return entries[:limit]
