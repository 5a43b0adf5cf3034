"""Outbound webhooks (SPEC §5): endpoints, their signing secrets, events and deliveries.

Every message is signed per the Standard Webhooks specification (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` headers). An endpoint belongs to one org, or, with
``org`` null, to the platform: a platform endpoint receives the events of every org and the
platform-only ones (an event with ``org`` null reaches platform endpoints only).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenancy.models import Org


class EventType(models.TextChoices):
    """The events Tessera sends. ``data`` of each is documented in ``webhooks.events``."""

    INVOICE_FINALIZED = "invoice.finalized", "An invoice was finalized (numbered, issued)"
    INVOICE_PAID = "invoice.paid", "An invoice was paid"
    INVOICE_OVERDUE = "invoice.overdue", "An invoice is past its due date, unpaid"
    CREDIT_NOTE_ISSUED = "credit_note.issued", "A credit note was issued"
    ALERT_TRIGGERED = "alert.triggered", "A spend or usage alert crossed its threshold"


class WebhookEndpoint(models.Model):
    """A URL that receives events. ``event_types`` empty: every type."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        # A delivery used up its attempts; new events are still tried, and the first success
        # makes the endpoint active again.
        FAILING = "failing", "Failing"
        DISABLED = "disabled", "Disabled"

    # Null: a platform endpoint (the cloud's own ERP or data warehouse), set by finance.
    org = models.ForeignKey(
        Org, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=True
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="[] = every type.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["org_id", "pk"]

    def __str__(self) -> str:
        return f"{self.org_id or 'platform'} {self.url}"

    def wants(self, event_type: str) -> bool:
        return self.status != self.Status.DISABLED and (
            not self.event_types or event_type in self.event_types
        )


class WebhookSecret(models.Model):
    """A signing secret (``whsec_`` + base64 of 32 random bytes). Rotation gives the current
    secret an expiry and adds a new one; until the old one expires every message carries both
    signatures (Standard Webhooks allows several, space-separated), so a receiver can switch
    secrets without a moment where messages fail to verify."""

    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="secrets")
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Null: the current one.")

    class Meta:
        ordering = ["endpoint_id", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(expires_at__isnull=True),
                name="webhook_secret_one_current",
            )
        ]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.secret[:10]}… until {self.expires_at or 'rotated'}"


class WebhookEvent(models.Model):
    """One event, stored with its deliveries in the transaction of the change it reports (an
    outbox): it is sent if and only if that change committed. Never modified."""

    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # The `webhook-id` header: the same on every attempt and replay, so receivers dedupe on it.
    msg_id = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=64, choices=EventType.choices)
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["org", "created_at"], name="webhook_event_org_created")]

    def __str__(self) -> str:
        return f"{self.msg_id} {self.type}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: attempted until a 2xx, with exponential backoff and a cap
    on attempts, then failed (and the endpoint marked failing). A replay starts it again."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Attempts since the delivery was created or last replayed.
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due; also moved ahead while an attempt is in flight (a claim).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    replayed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_unique")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} {self.status}"


class WebhookAttempt(models.Model):
    """The delivery log: one row per HTTP attempt, with the response code (null when no
    response came: refused, timed out) and the start of the response body."""

    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_body = models.CharField(max_length=1000, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    replay = models.BooleanField(default=False, help_text="The first attempt after a replay.")

    class Meta:
        ordering = ["-attempted_at", "-pk"]
        indexes = [models.Index(fields=["delivery", "attempted_at"], name="webhook_attempt_log")]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.attempted_at:%Y-%m-%dT%H:%M:%S} {self.status_code}"
