from datetime import date

from django.conf import settings
from django.db import models

from tenancy.models import Org

from ..models.base import Amendment, Contract, Issuer, Product

__all__ = ["Deal", "DealEvent", "DealLine", "DealTerm"]


class Deal(models.Model):
    """An account manager's draft of a capacity contract for one org, or of an amendment to
    the org's running contract (``amends``, SPEC §3 "Amendments").

    draft → pending_approval → approved | rejected; approved → signed (the contract, or the
    amendment, is created in the same transaction, so a signed deal always has one); draft →
    approved when submitted without needing approval; rejected → draft when edited again.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SIGNED = "signed", "Signed"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3, help_text="ISO 4217; the rate card's.")
    # The rate card family the contract will use; its per-unit prices are the list prices.
    rate_card_key = models.SlugField(max_length=64)
    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    # Why submission needed approval (empty when it went straight to approved).
    approval_reasons = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # One contract per deal: the one-to-one column is unique in the database.
    contract = models.OneToOneField(
        Contract, null=True, blank=True, on_delete=models.PROTECT, related_name="deal"
    )
    # The org's running contract this deal amends; null: the deal makes a new contract.
    amends = models.ForeignKey(
        Contract, null=True, blank=True, on_delete=models.PROTECT, related_name="amending_deals"
    )
    # The amendment signing made (deals that amend only).
    amendment = models.OneToOneField(
        Amendment, null=True, blank=True, on_delete=models.PROTECT, related_name="deal"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(contract__isnull=True) | models.Q(status="signed"),
                name="deal_contract_only_when_signed",
            ),
            models.CheckConstraint(
                condition=models.Q(amendment__isnull=True)
                | models.Q(status="signed", amends__isnull=False, contract__isnull=True),
                name="deal_amendment_only_when_signed",
            ),
        ]
        indexes = [models.Index(fields=["org", "status"], name="deal_org_status")]

    def __str__(self) -> str:
        return f"deal {self.pk} ({self.org_id}, {self.status})"

    @property
    def contract_key(self) -> str:
        return f"deal-{self.pk}"


class DealLine(models.Model):
    """``quantity`` GPUs of ``product`` for ``term_months`` calendar months from ``start``
    (00:00 UTC) at ``unit_price`` per GPU-hour; ``ramp`` steps change the quantity from
    their date on: ``[{"from": "2027-02-01", "quantity": 16}, ...]`` (the catalog's shape).

    A line of an amendment whose term would run past the contract's end is co-termed with
    the contract: ``end`` holds that end, as CPQ tools co-term add-ons."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField(help_text="Concurrent GPUs at the start.")
    start = models.DateField(help_text="00:00 UTC, inclusive.")
    term_months = models.PositiveSmallIntegerField()
    unit_price = models.DecimalField(
        max_digits=28, decimal_places=12, help_text="Per GPU-hour, deal currency."
    )
    # Above the reserved quantity; null: the rate card's on-demand price.
    burst_unit_price = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    ramp = models.JSONField(default=list, blank=True)
    # Exclusive; set when co-termed with the amended contract; null: start + term_months.
    end = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["deal_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["org", "deal", "position"], name="deal_line_position"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="deal_line_qty"),
            models.CheckConstraint(
                condition=models.Q(term_months__gte=1, term_months__lte=120),
                name="deal_line_term_1_120",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__gte=0), name="deal_line_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} x{self.quantity} from {self.start} for {self.term_months} mo"

    @property
    def line_end(self) -> date:
        """Exclusive: co-termed ``end``, else ``term_months`` after the start."""
        from .schedule import add_months

        return self.end or add_months(self.start, self.term_months)


class DealTerm(models.Model):
    """An on-demand term of the deal, dated like a contract's (SPEC §3 "Amendments"): a
    ``discount_percent`` off list for ``product`` (null: every product), or a custom
    ``unit_price`` per billing unit of ``product``, from ``valid_from`` until ``valid_until``
    (exclusive; null: the contract's end). Exactly one of the two is set."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="terms")
    position = models.PositiveSmallIntegerField()
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    discount_percent = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    unit_price = models.DecimalField(
        max_digits=28, decimal_places=12, null=True, blank=True, help_text="Deal currency."
    )
    valid_from = models.DateField(help_text="00:00 UTC, inclusive.")
    valid_until = models.DateField(null=True, blank=True, help_text="00:00 UTC, exclusive.")

    class Meta:
        ordering = ["deal_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["org", "deal", "position"], name="deal_term_position"),
            models.CheckConstraint(
                condition=models.Q(discount_percent__isnull=True, unit_price__gte=0)
                | models.Q(
                    unit_price__isnull=True, discount_percent__gte=0, discount_percent__lte=100
                ),
                name="deal_term_discount_xor_price",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__isnull=True) | models.Q(product__isnull=False),
                name="deal_term_price_per_product",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gt=models.F("valid_from")),
                name="deal_term_until_after_from",
            ),
        ]

    def __str__(self) -> str:
        what = f"{self.discount_percent}% off" if self.unit_price is None else self.unit_price
        return f"{self.product_id or '*'} {what} from {self.valid_from}"


class DealEvent(models.Model):
    """The audit trail: one row per edit or transition. Append-only: the services only ever
    insert rows, and the admin shows them read-only."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        EDITED = "edited", "Edited"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SIGNED = "signed", "Signed"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    deal = models.ForeignKey(Deal, on_delete=models.PROTECT, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    action = models.CharField(max_length=16, choices=Action.choices)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    # {"field": [before, after]}, "lines": [before, after] — JSON-ready values.
    changes = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["deal_id", "at", "id"]
        indexes = [models.Index(fields=["org", "deal"], name="deal_event_org_deal")]

    def __str__(self) -> str:
        return f"{self.deal_id} {self.action} {self.from_status}→{self.to_status}"
