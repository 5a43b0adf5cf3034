from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from metering.models import Meter


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

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


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
