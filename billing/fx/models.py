"""ECB euro foreign-exchange reference rates, as loaded by ``load_fx_rates`` (SPEC §5)."""

from django.db import models


class FxRate(models.Model):
    """One ECB reference rate: 1 EUR = ``rate`` units of ``currency`` on ``date``.

    Reference data, not tenant data: the same for every org. Loaded from the ECB's published
    CSV files; a rate is never fetched at invoicing time. Loading a file again changes nothing;
    a corrected rate for a date replaces the old one (finalized invoices keep the rate they
    froze).
    """

    date = models.DateField()
    currency = models.CharField(max_length=3, help_text="ISO 4217, never EUR.")
    rate = models.DecimalField(
        max_digits=20, decimal_places=8, help_text="Units of currency for 1 EUR (ECB quote)."
    )
    source = models.CharField(max_length=200, blank=True, help_text="The file it came from.")
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["currency", "date"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "date"], name="fx_rate_currency_date"),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="fx_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.date} 1 EUR = {self.rate} {self.currency}"


__all__ = ["FxRate"]
