from django.conf import settings
from django.db import models

from tenancy.models import Org


class AuditEntry(models.Model):
    """One money-relevant change: who, when, what, and the values it set.

    Append-only: database triggers refuse UPDATE and DELETE (see the migration).
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="Username, API key or command.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100, help_text="e.g. contract.updated, invoice.voided")
    object_type = models.CharField(max_length=100)
    object_key = models.CharField(max_length=200)
    # The org the change concerns, when it concerns one (for finance's filters).
    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(default=dict, help_text="Field → new value (JSON-safe).")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_key"], name="audit_object")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_key}"
