from django.conf import settings
from django.db import models
from django.db.models import Q


class Org(models.Model):
    """A customer account: the tenant. Every row a customer owns points here."""

    slug = models.SlugField(max_length=64, unique=True, help_text="CloudEvents `subject`.")
    name = models.CharField(max_length=200, help_text="Legal name, printed on invoices.")
    billing_address = models.TextField(blank=True)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, upper case.")
    vat_id = models.CharField(max_length=32, blank=True)
    # Where invoices are sent; the buyer's electronic address on e-invoices (BT-49, scheme EM).
    billing_email = models.EmailField(blank=True, default="", db_default="")
    currency = models.CharField(max_length=3, help_text="ISO 4217 billing currency.")
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_orgs",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        """Model validation (admin forms): the country is an ISO 3166-1 code
        (``tenancy.countries``); the VAT id's format and check digits for it
        (``tenancy.vat_ids``), stored compacted."""
        from django.core.exceptions import ValidationError

        from .countries import country_problem
        from .vat_ids import VatIdError, vat_id_clean

        self.country = (self.country or "").strip().upper()
        if problem := country_problem(self.country):
            raise ValidationError({"country": problem})
        try:
            self.vat_id = vat_id_clean(country=self.country, vat_id=self.vat_id)
        except VatIdError as exc:
            raise ValidationError({"vat_id": exc.message}) from None


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        VIEWER = "viewer", "Viewer"

    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "user"], name="membership_org_user_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} of {self.org}"


class StaffRole(models.TextChoices):
    """Staff roles are Django groups of these names, so the admin can manage them too."""

    FINANCE = "finance", "Finance"
    ACCOUNT_MANAGER = "account_manager", "Account manager"
    OPERATOR = "operator", "Operator"


class ApiKey(models.Model):
    """A bearer key. Only its SHA-256 is stored; the key itself is shown once at creation."""

    class Kind(models.TextChoices):
        ORG = "org", "Org key"
        COLLECTOR = "collector", "Platform collector key"

    class Scope(models.TextChoices):
        INGEST = "ingest", "Report usage"
        READ = "read", "Read usage"
        COLLECTOR = "collector", "Report usage for any org"

    # NULL only for platform collector keys (enforced by the check constraint below).
    org = models.ForeignKey(
        Org, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=16, unique=True, help_text="Public lookup part of the key."
    )
    key_hash = models.CharField(max_length=64, help_text="hex SHA-256 of the whole key.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Refreshed at most every few minutes, not on every request (see authentication).
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="org", org__isnull=False, scope__in=["ingest", "read"])
                    | Q(kind="collector", org__isnull=True, scope="collector")
                ),
                name="api_key_kind_matches_org_and_scope",
            )
        ]
        indexes = [models.Index(fields=["org", "kind"])]

    def __str__(self) -> str:
        owner = self.org.slug if self.org else "platform"
        return f"{self.name} ({owner}, {self.scope}, {self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
