from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from metering.models import Meter
from tenancy.models import Org


class Issuer(models.Model):
    """A legal entity of the cloud that issues invoices (numbers: PREFIX-YEAR-NNNNNN)."""

    class Rounding(models.TextChoices):
        HALF_UP = "half_up", "Half up"
        HALF_EVEN = "half_even", "Half even (banker's)"
        DOWN = "down", "Down (truncate)"

    key = models.SlugField(max_length=64, unique=True)
    legal_name = models.CharField(max_length=200)
    address = models.TextField(blank=True)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2.")
    vat_id = models.CharField(max_length=32, blank=True)
    invoice_prefix = models.CharField(max_length=16, unique=True)
    rounding = models.CharField(max_length=16, choices=Rounding.choices, default="half_up")
    # Legal details printed on every document (SPEC §5 issuers; French art. R123-237 and
    # L441-9 C. com., German §35a GmbHG, §14 UStG). Optional: load_catalog warns when one a
    # country's documents need is missing, and the documents omit it.
    legal_form = models.CharField(max_length=64, blank=True, help_text="SAS, GmbH, Inc.")
    share_capital = models.DecimalField(
        max_digits=20, decimal_places=2, null=True, blank=True,
        help_text="In the issuer's national currency.",
    )  # fmt: skip
    siren = models.CharField(max_length=9, blank=True, help_text="France: SIREN (9 digits).")
    rcs_city = models.CharField(max_length=100, blank=True, help_text="France: RCS city.")
    register_court = models.CharField(
        max_length=100, blank=True, help_text="Germany: Registergericht (Amtsgericht ...)."
    )
    register_number = models.CharField(
        max_length=32, blank=True, help_text="Germany: HRB 123456 (Handelsregister)."
    )
    managing_directors = models.CharField(
        max_length=300, blank=True, help_text="Germany: Geschäftsführer, comma-separated."
    )
    iban = models.CharField(max_length=34, blank=True, help_text="Compacted, checked.")
    bic = models.CharField(max_length=11, blank=True)
    payment_terms_text = models.CharField(max_length=300, blank=True)
    late_payment_rate = models.CharField(
        max_length=200, blank=True, help_text="France: the late-payment penalty rate, as printed."
    )
    early_payment_discount = models.CharField(
        max_length=200, blank=True, help_text="Empty: 'No discount for early payment.'"
    )
    contact_name = models.CharField(max_length=100, blank=True)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        """Model validation (admin forms): VAT id, SIREN, IBAN and BIC check digits; the
        ids are stored compacted (``billing.legal.legal_ids_clean``)."""
        from django.core.exceptions import ValidationError

        from ..legal import legal_ids_clean

        values, errors = legal_ids_clean(
            country=self.country, vat_id=self.vat_id, siren=self.siren, iban=self.iban,
            bic=self.bic,
        )  # fmt: skip
        if errors:
            raise ValidationError(errors)
        for name, value in values.items():
            setattr(self, name, value)


class Product(models.Model):
    """A billable thing: a meter restricted to some dimension values, in a billing unit."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="products")
    # {"gpu_model": "H100", "region": "eu-north"}: every key is one of the meter's group_by.
    filter = models.JSONField(default=dict, blank=True)
    unit = models.CharField(max_length=50, help_text="Billing unit, e.g. 'GPU-hour'.")
    # Raw meter units per billing unit: 3600 GPU-seconds = 1 GPU-hour.
    unit_size = models.DecimalField(
        max_digits=24, decimal_places=6, validators=[MinValueValidator(Decimal("0.000001"))]
    )

    class Quantity(models.TextChoices):
        """How a period's quantity is taken (SPEC §3 Product). The same for sum and count
        meters; for max, latest and unique count meters ``period`` bills the month's peak,
        last value or distinct count instead of the sum of the hours' values."""

        HOURLY = "hourly", "Hourly: Σ U(h), in unit-hours"
        PERIOD = "period", "Period: the meter's aggregation over the whole period"

    quantity = models.CharField(max_length=8, choices=Quantity.choices, default="hourly")

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class CapacityPool(models.Model):
    """GPUs installed for one region and GPU model, from a date on (until the next row)."""

    gpu_model = models.CharField(max_length=32)
    region = models.CharField(max_length=64)
    gpus = models.PositiveIntegerField()
    valid_from = models.DateField()

    class Meta:
        ordering = ["region", "gpu_model", "valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["gpu_model", "region", "valid_from"], name="capacity_pool_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.gpu_model} {self.region} {self.gpus} from {self.valid_from}"


# Column shapes of the money models (SPEC §7): unit prices (28, 12) — a token costs a fraction
# of a cent; quantities in billing units (30, 12) — 60 GPU-seconds / 3600 keeps its precision;
# amounts (20, 4) — already rounded to the currency's minor unit (at most 3 places, e.g. BHD).


class RateCard(models.Model):
    """List prices in one currency. Versioned: a key may hold several versions, each valid
    from its ``effective_from`` until the next version's; a period is priced by the version in
    force at its start."""

    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3, help_text="ISO 4217.")
    effective_from = models.DateField()

    class Meta:
        ordering = ["key", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["key", "effective_from"], name="rate_card_version")
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.effective_from}"


class Price(models.Model):
    """How one product is priced on one rate card version, per billing unit of the product.

    ``tiers`` (graduated, volume): ``[{"up_to": "1000", "unit_price": "0.90"}, ...,
    {"up_to": null, "unit_price": "0.70"}]``: ``up_to`` in billing units, strictly increasing,
    the last one open (null). Package: ``unit_price`` is the price of one block of
    ``package_size`` billing units; a started block is billed whole.
    """

    class Model(models.TextChoices):
        PER_UNIT = "per_unit", "Per unit"
        GRADUATED = "graduated", "Graduated tiers"
        VOLUME = "volume", "Volume tiers"
        PACKAGE = "package", "Package"

    rate_card = models.ForeignKey(RateCard, on_delete=models.CASCADE, related_name="prices")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    model = models.CharField(max_length=16, choices=Model.choices)
    # per_unit: per billing unit; package: per block. Null for tiered models.
    unit_price = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    package_size = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    tiers = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rate_card", "product"], name="price_unique"),
            models.CheckConstraint(
                condition=models.Q(unit_price__isnull=True) | models.Q(unit_price__gte=0),
                name="price_unit_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rate_card} {self.product_id} {self.model}"


class Contract(models.Model):
    """One org's terms for ``[start, end)`` (end null: open-ended). Contracts of one org never
    overlap (checked by ``contract_validate`` and the catalog; ranges are not a unique key)."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    key = models.SlugField(max_length=64)
    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="+")
    # The rate card family; the version in force at each period's start prices that period.
    rate_card_key = models.SlugField(max_length=64)
    currency = models.CharField(max_length=3, help_text="ISO 4217; equals the rate card's.")
    start = models.DateField(help_text="First day (00:00 UTC), inclusive.")
    end = models.DateField(null=True, blank=True, help_text="Exclusive; null: open-ended.")
    billing_day = models.PositiveSmallIntegerField(
        default=1, help_text="Day of month (1-28) on which each period starts."
    )
    payment_terms_days = models.PositiveSmallIntegerField(default=30)

    class Meta:
        ordering = ["org_id", "start"]
        constraints = [
            models.UniqueConstraint(fields=["org", "key"], name="contract_org_key"),
            models.CheckConstraint(
                condition=models.Q(end__isnull=True) | models.Q(end__gt=models.F("start")),
                name="contract_end_after_start",
            ),
            models.CheckConstraint(
                condition=models.Q(billing_day__gte=1, billing_day__lte=28),
                name="contract_billing_day_1_28",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class Amendment(models.Model):
    """A dated change to a running contract (SPEC §3 "Amendments"): terms appended to it from a
    date on, never rewriting a billed period. The reservations and prices it added point back
    to it; the contract's own terms (its catalog entry) have none. Append-only: an amendment is
    never edited or deleted; a later amendment changes things again."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="amendments")
    effective = models.DateField(help_text="The first day (00:00 UTC) any of its terms holds.")
    signed_at = models.DateTimeField()
    # Who signed it; null only for amendments not signed through the deal desk.
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What it adds, in words: "+2 × NVIDIA H100 GPU-hour, eu-north from 2026-11-11 at 2.80".
    summary = models.TextField()

    class Meta:
        ordering = ["contract_id", "signed_at", "id"]
        indexes = [models.Index(fields=["org", "contract"], name="amendment_org_contract")]

    def __str__(self) -> str:
        return f"{self.contract_id} amended from {self.effective}"


class ContractPrice(models.Model):
    """A contract's dated on-demand term for one product (or, with product null, for all of
    them): a custom unit price (per billing unit, replaces the rate card's model, takes no
    discount) or a discount, in force over ``[valid_from, valid_until)``.

    Precedence in each hour: the product's custom price > the product's discount > the
    contract-wide discount (SPEC §6 step 3). The contract's own terms are unique by
    (product, kind, ``valid_from``), the catalog's natural key; an amendment's are appended.
    The catalog refuses two terms of one kind for one product on the same day; an amendment
    may add one over an earlier term, and from its date the term that started last holds
    (the earlier one is never rewritten).
    """

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="prices")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    discount_percent = models.DecimalField(
        max_digits=7, decimal_places=4, default=Decimal(0), help_text="0 for a custom price."
    )
    unit_price = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    valid_from = models.DateField(help_text="00:00 UTC, inclusive.")
    valid_until = models.DateField(
        null=True, blank=True, help_text="00:00 UTC, exclusive; null: to the contract's end."
    )
    # The amendment that added it; null: the contract's own terms (its catalog entry).
    amendment = models.ForeignKey(
        Amendment, null=True, blank=True, on_delete=models.PROTECT, related_name="prices"
    )

    class Meta:
        ordering = ["contract_id", "product_id", "valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "contract", "product", "valid_from"],
                condition=models.Q(
                    product__isnull=False, unit_price__isnull=True, amendment__isnull=True
                ),
                name="contract_price_discount",
            ),
            models.UniqueConstraint(
                fields=["org", "contract", "product", "valid_from"],
                condition=models.Q(unit_price__isnull=False, amendment__isnull=True),
                name="contract_price_custom",
            ),
            models.UniqueConstraint(
                fields=["org", "contract", "valid_from"],
                condition=models.Q(product__isnull=True, amendment__isnull=True),
                name="contract_price_overall",
            ),
            models.CheckConstraint(
                condition=models.Q(discount_percent__gte=0, discount_percent__lte=100),
                name="contract_price_discount_0_100",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__isnull=True)
                | models.Q(discount_percent=0, product__isnull=False),
                name="contract_price_custom_is_per_product",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gt=models.F("valid_from")),
                name="contract_price_until_after_from",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contract_id} {self.product_id or '*'} from {self.valid_from}"


class Reservation(models.Model):
    """Reserved capacity, take-or-pay: ``quantity`` concurrent units of ``product`` for every
    hour of ``[start, end)``, changed from each ramp step's date on. Several reservations of one
    product in one contract stack (SPEC §3): in each hour R(h) is the sum of those in force."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="reservations")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="Concurrent billing units (GPUs)."
    )
    unit_price = models.DecimalField(
        max_digits=28, decimal_places=12, help_text="Per unit-hour, contract currency."
    )
    # Per billing unit above the reserved quantity; null: on-demand price after discount.
    burst_unit_price = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    start = models.DateField(help_text="00:00 UTC, inclusive.")
    end = models.DateField(help_text="00:00 UTC, exclusive.")
    # The amendment that added it; null: the contract's own terms (its catalog entry).
    amendment = models.ForeignKey(
        Amendment, null=True, blank=True, on_delete=models.PROTECT, related_name="reservations"
    )

    class Meta:
        ordering = ["contract_id", "product_id", "start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "contract", "product", "start"],
                condition=models.Q(amendment__isnull=True),
                name="reservation_unique",
            ),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="reservation_qty"),
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="reservation_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} x{self.quantity} {self.start}..{self.end}"


class ReservationRamp(models.Model):
    """From ``starts`` (00:00 UTC) on, the reservation holds ``quantity`` units."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="ramps")
    starts = models.DateField()
    quantity = models.DecimalField(max_digits=30, decimal_places=12)

    class Meta:
        ordering = ["reservation_id", "starts"]
        constraints = [
            models.UniqueConstraint(fields=["org", "reservation", "starts"], name="ramp_unique"),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="ramp_qty"),
        ]

    def __str__(self) -> str:
        return f"{self.reservation_id} from {self.starts}: {self.quantity}"


class SpendCommitment(models.Model):
    """A minimum spend, per billing period (prorated for partial periods) or over the term."""

    class Per(models.TextChoices):
        PERIOD = "period", "Per billing period"
        TERM = "term", "Over the contract term"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="commitments")
    amount = models.DecimalField(max_digits=20, decimal_places=4, help_text="Contract currency.")
    per = models.CharField(max_length=8, choices=Per.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "contract", "per"], name="commitment_unique"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="commitment_amount"),
        ]

    def __str__(self) -> str:
        return f"{self.contract_id} min {self.amount} per {self.per}"


class CreditGrant(models.Model):
    """Prepaid or promotional credit. ``balance`` = amount − net draws; the check constraint
    keeps it within [0, amount] and every change to it goes with a ``CreditDraw`` row, under a
    row lock taken by ``billing.lock_objects.lock_credit_grants``."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(
        Contract, null=True, blank=True, on_delete=models.PROTECT, related_name="credits"
    )
    key = models.SlugField(max_length=64)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    balance = models.DecimalField(max_digits=20, decimal_places=4)
    effective = models.DateField(help_text="00:00 UTC, inclusive.")
    expires = models.DateField(null=True, blank=True, help_text="Exclusive; null: never.")
    priority = models.PositiveSmallIntegerField(default=1, help_text="Lower draws first.")
    # SPEC §3: the remainder of a negative period is a ``balance`` credit, drawn first.
    source = models.CharField(
        max_length=16,
        choices=[("grant", "Grant"), ("balance", "Account balance")],
        default="grant",
    )
    from_invoice = models.ForeignKey(
        "billing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["org_id", "expires", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "key"], name="credit_grant_org_key"),
            models.CheckConstraint(
                condition=models.Q(balance__gte=0, balance__lte=models.F("amount")),
                name="credit_grant_balance_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.balance}/{self.amount} {self.currency}"


class BillingPeriod(models.Model):
    """One billing cycle of a contract, ``[start, end)`` in aware UTC.

    open → closing (ended; grace window for late events) → invoiced (the invoicing app adds
    more states). ``usage_changed_at`` > ``rated_at`` means the rated charges are stale.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSING = "closing", "Closing"
        INVOICED = "invoiced", "Invoiced"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="periods")
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default="open")
    currency = models.CharField(max_length=3)
    # When the charges were last computed (taken at the start of the computation) and the
    # "now" they were computed for: usage of hours before rated_as_of is in them.
    rated_at = models.DateTimeField(null=True, blank=True)
    rated_as_of = models.DateTimeField(null=True, blank=True)
    usage_changed_at = models.DateTimeField(null=True, blank=True)
    # Sum of the rounded charge amounts, and the forecast of it at the period's end.
    subtotal = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    forecast = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    # {product key: usage so far in billing units (decimal string)}, from the last rating.
    usage = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["org_id", "start"]
        constraints = [
            models.UniqueConstraint(fields=["org", "contract", "start"], name="period_unique"),
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="period_end_after_start"
            ),
        ]
        indexes = [models.Index(fields=["status", "end"], name="period_status_end")]

    def __str__(self) -> str:
        return f"{self.contract_id} [{self.start:%Y-%m-%d}, {self.end:%Y-%m-%d}) {self.status}"


class RatedCharge(models.Model):
    """One line of a period's rating. Replaced as a whole, atomically, on every re-rate.

    ``line`` tells apart several lines of one (product, kind): graduated tiers (0, 1, ...),
    successive reservations of a product, or the per-period (0) and per-term (1) true-ups.
    ``amount`` is rounded once, to the currency's minor unit, by the issuer's rounding mode.
    ``quantity`` × ``unit_price`` (the net price) = ``amount`` before rounding; a line under a
    percent discount also keeps its ``list_unit_price``, so the discount is shown as such
    (issue 14): per unit it is ``list_unit_price`` − ``unit_price``.
    """

    class Kind(models.TextChoices):
        RESERVATION = "reservation", "Reservation"
        COVERED = "covered", "Covered by reservation"
        BURST = "burst", "Burst above reservation"
        ON_DEMAND = "on_demand", "On demand"
        MINIMUM_TRUE_UP = "minimum_true_up", "Minimum spend true-up"

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(BillingPeriod, on_delete=models.CASCADE, related_name="charges")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    line = models.PositiveSmallIntegerField(default=0)
    description = models.CharField(max_length=200, blank=True)
    quantity = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="Billing units (unit-hours, blocks)."
    )
    unit_price = models.DecimalField(
        max_digits=28, decimal_places=12, help_text="Net price, after any discount (BT-146)."
    )
    list_unit_price = models.DecimalField(
        max_digits=28,
        decimal_places=12,
        null=True,
        blank=True,
        help_text="Price before the contract's percent discount (EN 16931 BT-148, item gross "
        "price); null when not discounted (list price, custom price, reservation).",
    )
    amount = models.DecimalField(
        max_digits=20, decimal_places=4, help_text="Rounded to the currency's minor unit."
    )
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["period_id", "kind", "product_id", "line"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "period", "product", "kind", "line"], name="rated_charge_unique"
            ),
            models.UniqueConstraint(
                fields=["org", "period", "kind", "line"],
                condition=models.Q(product__isnull=True),
                name="rated_charge_unique_no_product",
            ),
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="rated_charge_qty"),
        ]
        indexes = [models.Index(fields=["org", "period"], name="rated_charge_org_period")]

    def __str__(self) -> str:
        return f"{self.kind} {self.product_id} {self.amount} {self.currency}"


class ReservationUsage(models.Model):
    """The hourly netting of one reservation in one period, kept for audit and the portal.

    One row per (period, reservation), not per hour: ``hours`` is the list of
    ``[hour offset from period start, reserved, used]`` (decimal strings, billing units) for
    every hour of the term rated so far. Per-hour rows would be 3.6 M rows a month for
    1,000 orgs × 5 reserved products; this is 5,000, and it is always read whole.

    Stacked reservations of one product (SPEC §3) are netted once against their sum; each
    row then holds its reservation's share, so that the rows of a product add up to the stack:
    usage fills the reservations in the order they started (the oldest first, each up to its
    own R_i(h)), and the burst above the sum goes to the reservation whose burst price bills it
    (the one in force that started last). ``used`` = ``covered`` + ``burst`` of that share.
    """

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(
        BillingPeriod, on_delete=models.CASCADE, related_name="reservation_usage"
    )
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="+")
    reserved = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="Σ R_i(h), unit-hours."
    )
    used = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="Its share of Σ U(h): covered + burst."
    )
    covered = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="Its share of Σ min(U(h), R(h))."
    )
    burst = models.DecimalField(
        max_digits=30, decimal_places=12, help_text="Its share of Σ max(0, U(h) − R(h))."
    )
    hours = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["org", "period", "reservation"], name="reservation_usage_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.period_id} {self.reservation_id} {self.covered}/{self.reserved}"


class CreditDraw(models.Model):
    """Append-only ledger of credit use: each row changes one grant's net draw for one period
    (negative when a re-rate lowers it). Σ amount per grant = amount − balance."""

    org = models.ForeignKey(Org, on_delete=models.PROTECT, related_name="+")
    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="draws")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(
        max_digits=20, decimal_places=4, help_text="Grant currency; never 0."
    )
    balance_after = models.DecimalField(max_digits=20, decimal_places=4)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["org", "period"], name="credit_draw_org_period")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount=0), name="credit_draw_not_zero"),
            models.CheckConstraint(
                condition=models.Q(balance_after__gte=0), name="credit_draw_balance_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.grant_id} {self.period_id} {self.amount}"
