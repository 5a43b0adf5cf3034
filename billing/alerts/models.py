from django.conf import settings
from django.db import models
from django.db.models import Q

from tenancy.models import Org

from ..models.base import BillingPeriod, Product

__all__ = ["Alert", "AlertFiring"]


class Alert(models.Model):
    """A threshold an org wants to hear about (SPEC §5). Set by the org's owners or finance.

    ``threshold`` is an amount in ``currency`` for ``cost_above`` and ``credits_below``, a
    percentage for ``commitment_burn_above`` and ``reservation_utilization_below``. Upper
    thresholds fire when the value reaches them (≥), lower ones when it drops below (<).
    """

    class Kind(models.TextChoices):
        COST_ABOVE = "cost_above", "Cost so far in the period above an amount"
        COMMITMENT_BURN_ABOVE = "commitment_burn_above", "Spend commitment burn above a percentage"
        CREDITS_BELOW = "credits_below", "Credits left below an amount"
        RESERVATION_UTILIZATION_BELOW = (
            "reservation_utilization_below",
            "Reservation utilization below a percentage over the last N hours",
        )

    PERCENT_KINDS = (Kind.COMMITMENT_BURN_ABOVE, Kind.RESERVATION_UTILIZATION_BELOW)

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    threshold = models.DecimalField(
        max_digits=20, decimal_places=4, help_text="Amount in `currency`, or percent."
    )
    # ISO 4217 of an amount threshold (compared with periods and credits in that currency);
    # empty for percentages.
    currency = models.CharField(max_length=3, blank=True)
    # reservation_utilization_below: the reserved product watched (null: every reservation).
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    window_hours = models.PositiveSmallIntegerField(
        default=24, help_text="reservation_utilization_below: the last N rated hours."
    )
    name = models.CharField(max_length=200, blank=True)
    # Who gets the email; empty: the org's owners.
    emails = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["org_id", "kind", "threshold", "pk"]
        indexes = [models.Index(fields=["org", "active"], name="alert_org_active")]
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gt=0), name="alert_threshold_positive"),
            models.CheckConstraint(condition=Q(window_hours__gte=1), name="alert_window_hours"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} {self.threshold_label}"

    @property
    def threshold_label(self) -> str:
        number = f"{self.threshold.normalize():f}"
        return f"{number}%" if self.kind in self.PERCENT_KINDS else f"{number} {self.currency}"


class AlertFiring(models.Model):
    """An alert crossed its threshold in a billing period. The unique constraint on (alert,
    period, threshold, subject) is what makes an alert fire once: a re-rating, the beat
    backstop or a concurrent evaluation insert the same row and fail, so nothing is sent
    twice. ``subject`` tells apart what one alert watches several of (each reservation, each
    commitment). Never modified, except ``emailed_at``."""

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="+")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="firings")
    period = models.ForeignKey(BillingPeriod, on_delete=models.CASCADE, related_name="+")
    threshold = models.DecimalField(max_digits=20, decimal_places=4)
    subject = models.CharField(max_length=64, blank=True)
    # The value that crossed: an amount in `currency`, or percent (2 places).
    value = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3, blank=True)
    message = models.CharField(max_length=500)
    fired_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "alert", "period", "threshold", "subject"],
                name="alert_fires_once_per_threshold_and_period",
            )
        ]
        indexes = [models.Index(fields=["org", "fired_at"], name="alert_firing_org_fired")]

    def __str__(self) -> str:
        return self.message
