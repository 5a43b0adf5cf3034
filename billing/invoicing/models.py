"""Invoices, credit notes, their gapless numbering and their Stripe sync state (SPEC §3, §6).

A finalized invoice never changes: migration ``0003_invoicing`` installs database triggers
that refuse any UPDATE of its business columns and any write to its lines and tax lines; only
the status may move forward (finalized → paid / void / uncollectible, uncollectible → paid /
void). Credit notes are never updated at all. Column shapes follow ``billing.models``: amounts
(20, 4) already rounded to the currency's minor unit, unit prices (28, 12), quantities (30, 12).
"""

from decimal import Decimal

from django.db import models
from django.db.models import Q

from tenancy.models import Org

from ..models.base import BillingPeriod, Contract, Issuer, Product

ZERO = Decimal(0)


class LineKind(models.TextChoices):
    """SPEC §5: the kinds of an invoice line (rated charge kinds plus ``adjustment``)."""

    RESERVATION = "reservation", "Reservation"
    COVERED = "covered", "Covered by reservation"
    BURST = "burst", "Burst above reservation"
    ON_DEMAND = "on_demand", "On demand"
    MINIMUM_TRUE_UP = "minimum_true_up", "Minimum spend true-up"
    ADJUSTMENT = "adjustment", "Prior-period adjustment"
    ONE_OFF = "one_off", "One-off"


class TaxReason(models.TextChoices):
    """SPEC §6 step 8; each maps to an EN 16931 VAT category (``billing.invoicing.tax``)."""

    DOMESTIC_VAT = "domestic_vat", "VAT"
    REVERSE_CHARGE = "reverse_charge", "EU reverse charge"
    OSS = "oss", "VAT of the customer's country (One-Stop Shop)"
    EXPORT = "export", "Export outside the EU"
    OUT_OF_SCOPE = "out_of_scope", "Out of scope of VAT"


class DocumentCounter(models.Model):
    """The last number given, per issuer, calendar year and kind of document.

    Gapless by construction: the row is locked (``numbering.next_number``) and incremented in
    the same transaction that stores the number on the document, so a rollback gives the
    number back. A database sequence would not (it never rolls back).
    """

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    last = models.PositiveIntegerField(default=0, help_text="Last number given; 0: none yet.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "year", "kind"], name="document_counter")
        ]

    def __str__(self) -> str:
        return f"{self.issuer_id} {self.kind} {self.year}: {self.last}"


class Invoice(models.Model):
    """One invoice per billing period (draft at close, numbered at finalization); plus, for
    usage that arrives after a contract's last invoiced period, final adjustment invoices of
    that period, which carry only ``adjustment`` lines (SPEC §3 "Unbilled usage", §6 step 5).

    Business columns are never modified after finalization (database trigger); ``status``,
    ``status_reason`` and ``status_changed_at`` are the only columns that move afterwards.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Open"
        OVERDUE = "overdue", "Overdue"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    class Kind(models.TextChoices):
        PERIOD = "period", "Period invoice"
        FINAL_ADJUSTMENT = "final_adjustment", "Final adjustment invoice"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="+")
    # For a final adjustment invoice: the contract's last invoiced period, which no later
    # invoice follows; its lines adjust that period and earlier ones.
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.PERIOD)
    status = models.CharField(max_length=16, choices=Status.choices, default="draft")
    currency = models.CharField(max_length=3, help_text="ISO 4217; every amount below is in it.")
    period_start = models.DateTimeField(help_text="The period billed, inclusive (UTC).")
    period_end = models.DateTimeField(help_text="Exclusive (UTC).")
    # PREFIX-YYYY-NNNNNN, given at finalization from the issuer's counter for ``number_year``.
    number = models.CharField(max_length=40, blank=True, help_text="Empty while draft.")
    number_year = models.PositiveSmallIntegerField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    payment_terms_days = models.PositiveSmallIntegerField()
    subtotal = models.DecimalField(
        max_digits=20, decimal_places=4, default=ZERO, help_text="Σ rounded line amounts."
    )
    credits = models.DecimalField(
        max_digits=20, decimal_places=4, default=ZERO, help_text="Credits applied, ≤ subtotal."
    )
    tax_total = models.DecimalField(max_digits=20, decimal_places=4, default=ZERO)
    # SPEC §3: a period whose total would be negative is invoiced at zero; the remainder (before
    # tax) goes to the org's balance (a ``CreditGrant`` of source ``balance``).
    balance_carried = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        default=ZERO,
        help_text="Carried to the org's balance: −(subtotal − credits) when < 0.",
    )
    total = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        default=ZERO,
        help_text="subtotal − credits + balance_carried + tax; never negative.",
    )
    # Void and reissue: the reissued invoice names the voided one it replaces (its reverse,
    # ``replaced_by``, names the reissue from the void).
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )
    # Legal details as printed: refreshed while draft, frozen at finalization.
    customer_name = models.CharField(max_length=200)
    customer_address = models.TextField(blank=True)
    customer_country = models.CharField(max_length=2)
    customer_vat_id = models.CharField(max_length=32, blank=True)
    customer_email = models.EmailField(blank=True, help_text="BT-49 on the e-invoice.")
    issuer_name = models.CharField(max_length=200)
    issuer_address = models.TextField(blank=True)
    issuer_country = models.CharField(max_length=2)
    issuer_vat_id = models.CharField(max_length=32, blank=True)
    # The issuer's legal details as printed (``billing.legal.details_snapshot``: legal form,
    # share capital, registration ids, IBAN/BIC, payment terms text, ...): refreshed while
    # draft, frozen at finalization.
    issuer_details = models.JSONField(default=dict, blank=True)
    # Art. 230 Directive 2006/112/EC: when the invoice currency is not the issuer's national
    # currency, the VAT is also stated in the national currency, at the ECB reference rate of
    # the issue date (the latest published on or before it). Set at finalization; empty
    # ``tax_currency`` when the currencies are the same.
    tax_currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217 (BT-6).")
    tax_fx_rate = models.DecimalField(
        max_digits=24, decimal_places=10, null=True, blank=True,
        help_text="Units of the invoice currency for 1 unit of tax_currency.",
    )  # fmt: skip
    tax_fx_date = models.DateField(null=True, blank=True, help_text="The ECB rate's date.")
    tax_total_national = models.DecimalField(
        max_digits=20, decimal_places=4, null=True, blank=True,
        help_text="tax_total in tax_currency, rounded to its minor unit (BT-111).",
    )  # fmt: skip
    # The period's ``rated_at`` when its charges were copied here: usage that changes after it
    # is billed as adjustments on a later invoice.
    charges_rated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    # The only columns a finalized invoice may still change (with ``status``).
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["org_id", "period_start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "period"],
                condition=Q(kind="period") & ~Q(status="void"),
                name="invoice_one_live_per_period",
            ),
            models.UniqueConstraint(
                fields=["issuer", "number_year", "sequence"],
                condition=Q(sequence__isnull=False),
                name="invoice_sequence_unique",
            ),
            models.UniqueConstraint(
                fields=["number"], condition=~Q(number=""), name="invoice_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(status="draft", number="")
                | (
                    ~Q(status="draft")
                    & ~Q(number="")
                    & Q(issue_date__isnull=False, due_date__isnull=False)
                ),
                name="invoice_numbered_iff_not_draft",
            ),
            models.CheckConstraint(
                condition=Q(credits__gte=0, credits__lte=models.F("subtotal"))
                | Q(credits=0, subtotal__lt=0),
                name="invoice_credits_within_subtotal",
            ),
        ]
        indexes = [
            models.Index(fields=["org", "status"], name="invoice_org_status"),
            models.Index(fields=["period_start"], name="invoice_period_start"),
        ]

    def __str__(self) -> str:
        return self.number or f"draft #{self.pk}"

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT


class InvoiceLine(models.Model):
    """One line as printed. Never modified once its invoice is finalized (database trigger).

    For an ``adjustment``, ``charge_kind`` is the kind it corrects and ``adjusts_period`` the
    (already invoiced) period it belongs to; ``quantity`` and ``amount`` are differences and
    may be negative.
    """

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(help_text="Order on the invoice, from 0.")
    kind = models.CharField(max_length=24, choices=LineKind.choices)
    charge_kind = models.CharField(
        max_length=24, help_text="The rated charge kind; for an adjustment, the kind it corrects."
    )
    charge_line = models.PositiveSmallIntegerField(default=0, help_text="RatedCharge.line.")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=30, decimal_places=12, help_text="Billing units.")
    unit = models.CharField(max_length=50, blank=True)
    unit_price = models.DecimalField(
        max_digits=28, decimal_places=12, help_text="Net price, after any discount (BT-146)."
    )
    list_unit_price = models.DecimalField(
        max_digits=28,
        decimal_places=12,
        null=True,
        blank=True,
        help_text="Price before the contract's percent discount (EN 16931 BT-148, item gross "
        "price; the discount per unit, BT-147, is it less unit_price); null when not "
        "discounted.",
    )
    amount = models.DecimalField(
        max_digits=20, decimal_places=4, help_text="Rounded to the currency's minor unit."
    )
    adjusts_period = models.ForeignKey(
        BillingPeriod, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["invoice_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "invoice", "position"], name="invoice_line_position"
            ),
            models.CheckConstraint(
                condition=Q(kind="adjustment", adjusts_period__isnull=False)
                | (~Q(kind="adjustment") & Q(adjusts_period__isnull=True)),
                name="invoice_line_adjustment_names_period",
            ),
        ]
        indexes = [
            models.Index(fields=["org", "adjusts_period"], name="invoice_line_adjusts"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.product_id} {self.amount}"


class InvoiceTax(models.Model):
    """One tax rate on an invoice: ``amount`` = ``basis`` × ``rate`` / 100, rounded once."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="taxes")
    rate = models.DecimalField(max_digits=7, decimal_places=4, help_text="Percent.")
    basis = models.DecimalField(max_digits=20, decimal_places=4, help_text="Subtotal less credits.")
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    reason = models.CharField(max_length=16, choices=TaxReason.choices)
    mention = models.CharField(max_length=300, blank=True, help_text="Legal mention, printed.")

    class Meta:
        ordering = ["invoice_id", "rate"]
        constraints = [
            models.UniqueConstraint(fields=["org", "invoice", "rate"], name="invoice_tax_rate"),
        ]

    def __str__(self) -> str:
        return f"{self.rate}% of {self.basis} = {self.amount}"


class InvoicePayment(models.Model):
    """Money received against an invoice (SPEC §5 receivables): a bank transfer recorded by
    finance, or a payment Stripe reported. Append-only; several make a partial payment.

    ``attention``: why finance must look at it (e.g. paid on a void invoice: refund or
    reallocate); such payments are shown on the finance overview until resolved elsewhere.
    """

    class Method(models.TextChoices):
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        STRIPE = "stripe", "Stripe"
        OTHER = "other", "Other"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(max_digits=20, decimal_places=4, help_text="Invoice currency.")
    currency = models.CharField(max_length=3)
    paid_on = models.DateField()
    method = models.CharField(max_length=16, choices=Method.choices)
    reference = models.CharField(max_length=200, help_text="Bank reference or Stripe id.")
    stripe_event_id = models.CharField(max_length=255, blank=True)
    attention = models.CharField(max_length=200, blank=True)
    recorded_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["invoice_id", "paid_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_payment_positive"),
            models.UniqueConstraint(
                fields=["stripe_event_id"],
                condition=~Q(stripe_event_id=""),
                name="invoice_payment_stripe_event_unique",
            ),
        ]
        indexes = [models.Index(fields=["org", "invoice"], name="invoice_payment_org_invoice")]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.amount} {self.currency} {self.paid_on}"


class LateUsageCheck(models.Model):
    """An invoiced period re-rated for late usage while drafting ``invoice``; ``rated_at`` is
    when that re-rating started. Usage changed after it is looked at again next time."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="+")
    rated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "period", "invoice"], name="late_usage_check_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period_id} checked {self.rated_at} for {self.invoice_id}"


class CreditNote(models.Model):
    """A correction of a finalized invoice, numbered from its own gapless sequence when issued.
    Never modified or deleted (database trigger)."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=40, unique=True, help_text="PREFIX-CN-YYYY-NNNNNN.")
    number_year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    issue_date = models.DateField()
    reason = models.TextField()
    full = models.BooleanField(help_text="Cancels the whole invoice, credits and taxes included.")
    subtotal = models.DecimalField(max_digits=20, decimal_places=4)
    credits = models.DecimalField(
        max_digits=20, decimal_places=4, help_text="Invoice credits given back (full notes)."
    )
    tax_total = models.DecimalField(max_digits=20, decimal_places=4)
    total = models.DecimalField(max_digits=20, decimal_places=4)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["issuer_id", "number_year", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "number_year", "sequence"], name="credit_note_sequence_unique"
            ),
        ]
        indexes = [models.Index(fields=["org", "invoice"], name="credit_note_org_invoice")]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    """A credited (part of an) invoice line; amounts positive (they are credited)."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=24, choices=LineKind.choices)
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=30, decimal_places=12)
    unit = models.CharField(max_length=50, blank=True)
    unit_price = models.DecimalField(max_digits=28, decimal_places=12)
    amount = models.DecimalField(max_digits=20, decimal_places=4)

    class Meta:
        ordering = ["credit_note_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "credit_note", "position"], name="credit_note_line_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.credit_note_id} {self.description} {self.amount}"


class CreditNoteTax(models.Model):
    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="taxes")
    rate = models.DecimalField(max_digits=7, decimal_places=4, help_text="Percent.")
    basis = models.DecimalField(max_digits=20, decimal_places=4)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    reason = models.CharField(max_length=16, choices=TaxReason.choices)
    mention = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["credit_note_id", "rate"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "credit_note", "rate"], name="credit_note_tax_rate"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rate}% of {self.basis} = {self.amount}"


class StripeInvoiceSync(models.Model):
    """Progress of pushing one finalized invoice to Stripe, saved after every step, so that a
    crash or an error resumes where it stopped (each step also carries an idempotency key).

    ``items``: {our item key: Stripe invoice item id} for the items already created.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (will be retried)"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="stripe_sync")
    state = models.CharField(max_length=16, choices=State.choices, default="pending")
    stripe_invoice_id = models.CharField(max_length=64, blank=True)
    items = models.JSONField(default=dict, blank=True)
    stripe_finalized = models.BooleanField(default=False)
    # The local terminal status last pushed to Stripe (void / uncollectible), if any.
    pushed_status = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # A worker holds the row until then (a lease, not a lock held across Stripe calls).
    locked_until = models.DateTimeField(null=True, blank=True)
    # Where the customer pays online, once Stripe has finalized the invoice (printed on the PDF).
    hosted_invoice_url = models.URLField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_invoice_id"],
                condition=~Q(stripe_invoice_id=""),
                name="stripe_sync_invoice_id_unique",
            )
        ]
        indexes = [models.Index(fields=["state"], name="stripe_sync_state")]

    def __str__(self) -> str:
        return f"{self.invoice_id} → {self.stripe_invoice_id or '?'} {self.state}"


class StripeCreditNoteSync(models.Model):
    """Pushing one credit note to Stripe (a Stripe credit note on the invoice's Stripe
    invoice), resumable like ``StripeInvoiceSync``: one request, with an idempotency key
    derived from the credit note's id; it waits until its invoice is in Stripe."""

    State = StripeInvoiceSync.State

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    credit_note = models.OneToOneField(
        CreditNote, on_delete=models.PROTECT, related_name="stripe_sync"
    )
    state = models.CharField(max_length=16, choices=State.choices, default="pending")
    stripe_credit_note_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_credit_note_id"],
                condition=~Q(stripe_credit_note_id=""),
                name="stripe_cn_sync_id_unique",
            )
        ]
        indexes = [models.Index(fields=["state"], name="stripe_cn_sync_state")]

    def __str__(self) -> str:
        return f"{self.credit_note_id} → {self.stripe_credit_note_id or '?'} {self.state}"


class StripeEvent(models.Model):
    """A webhook event, stored once (its Stripe id is unique) and applied once."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=200, blank=True, help_text="What applying it did.")

    class Meta:
        ordering = ["received_at"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


__all__ = [
    "CreditNote",
    "CreditNoteLine",
    "CreditNoteTax",
    "DocumentCounter",
    "Invoice",
    "InvoiceLine",
    "InvoicePayment",
    "InvoiceTax",
    "LateUsageCheck",
    "LineKind",
    "StripeCreditNoteSync",
    "StripeEvent",
    "StripeInvoiceSync",
    "TaxReason",
]
