"""VAT by issuer and customer (SPEC §6 step 8), on the invoice itself."""

from decimal import Decimal

import pytest

from billing.invoicing.drafting import periods_close
from billing.invoicing.tax import REVERSE_CHARGE_MENTION, tax_rule

from .conftest import AFTER_GRACE, Kind, rated_period


def _invoice(world, **org):
    charges = [(world.h100, Kind.ON_DEMAND, 0, "400", "2.50", "1000.00")]
    rated_period(world, charges=charges, credits=Decimal("100.00"), **org)
    return periods_close(as_of=AFTER_GRACE).drafted[0]


def _taxes(invoice):
    return [(t.rate, t.basis, t.amount, t.reason) for t in invoice.taxes.all()]


def test_fr_to_fr_is_domestic_vat_on_subtotal_less_credits(world):
    invoice = _invoice(world, country="FR", vat_id="FR12345678901")

    assert _taxes(invoice) == [
        (Decimal("20"), Decimal("900.00"), Decimal("180.00"), "domestic_vat")
    ]
    assert (invoice.tax_total, invoice.total) == (Decimal("180.00"), Decimal("1080.00"))


def test_fr_to_de_with_a_vat_id_is_reverse_charge(world):
    invoice = _invoice(world, country="DE", vat_id="DE811907980")

    assert _taxes(invoice) == [(Decimal("0"), Decimal("900.00"), Decimal("0.00"), "reverse_charge")]
    assert invoice.taxes.get().mention == (
        "Autoliquidation / reverse charge, art. 196 Directive 2006/112/EC"
    )
    assert invoice.total == Decimal("900.00")


def test_fr_to_de_without_a_vat_id_pays_the_issuers_vat(world):
    invoice = _invoice(world, country="DE", vat_id="")

    assert _taxes(invoice) == [
        (Decimal("20"), Decimal("900.00"), Decimal("180.00"), "domestic_vat")
    ]


def test_fr_to_us_is_export_at_zero(world):
    invoice = _invoice(world, country="US", vat_id="")

    assert _taxes(invoice) == [(Decimal("0"), Decimal("900.00"), Decimal("0.00"), "export")]
    assert invoice.total == Decimal("900.00")


@pytest.mark.parametrize(
    ("issuer", "customer", "vat_id", "rate", "reason"),
    [
        ("DE", "DE", "", "19", "domestic_vat"),
        ("FR", "IT", "IT00743110157", "0", "reverse_charge"),
        ("FR", "IT", "", "20", "domestic_vat"),
        ("FR", "GB", "GB123456789", "0", "export"),
        ("US", "US", "", "0", "domestic_vat"),  # no VAT in the table: 0%
        ("US", "FR", "FR12345678901", "0", "export"),
    ],
)
def test_the_rule_table(issuer, customer, vat_id, rate, reason):
    rule = tax_rule(issuer_country=issuer, customer_country=customer, customer_vat_id=vat_id)

    assert (rule.rate, rule.reason) == (Decimal(rate), reason)
    assert (rule.mention == REVERSE_CHARGE_MENTION) == (reason == "reverse_charge")


def test_tax_is_rounded_once_on_the_basis_with_the_issuers_mode(world):
    world.issuer.rounding = "half_even"
    world.issuer.save()
    charges = [(world.h100, Kind.ON_DEMAND, 0, "1", "0.125", "0.12")]  # basis 0.12
    rated_period(world, charges=charges + [(world.llama, Kind.ON_DEMAND, 0, "1", "0.005", "0.01")])

    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]

    # 20% of 0.13 = 0.026 → 0.03 (half even and half up agree); per-line tax would be 0.02+0.00
    assert (invoice.subtotal, invoice.tax_total) == (Decimal("0.13"), Decimal("0.03"))
