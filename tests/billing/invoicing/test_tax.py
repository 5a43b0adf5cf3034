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
    invoice = _invoice(world, country="FR", vat_id="FR44732829320")

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


def test_fr_to_de_without_a_vat_id_pays_the_customers_vat_through_oss(world):
    invoice = _invoice(world, country="DE", vat_id="")

    assert _taxes(invoice) == [(Decimal("19"), Decimal("900.00"), Decimal("171.00"), "oss")]


def test_fr_to_be_consumer_pays_belgian_vat_21_percent_oss(world):
    """The hand case of issue 14: a Belgian consumer of the French entity."""
    invoice = _invoice(world, country="BE", vat_id="")

    assert _taxes(invoice) == [(Decimal("21"), Decimal("900.00"), Decimal("189.00"), "oss")]
    assert (invoice.tax_total, invoice.total) == (Decimal("189.00"), Decimal("1089.00"))
    assert "One-Stop Shop" in invoice.taxes.get().mention


def test_fr_to_de_with_an_invalid_stored_vat_id_is_not_reverse_charge(world):
    """An id stored before ids were checked does not turn on reverse charge by being there."""
    invoice = _invoice(world, country="DE", vat_id="DE123456789")  # bad check digit

    assert _taxes(invoice) == [(Decimal("19"), Decimal("900.00"), Decimal("171.00"), "oss")]


def test_us_to_us_is_out_of_scope(world):
    world.issuer.country = "US"
    world.issuer.vat_id = ""
    world.issuer.save()
    invoice = _invoice(world, country="US", vat_id="")

    assert _taxes(invoice) == [(Decimal("0"), Decimal("900.00"), Decimal("0.00"), "out_of_scope")]
    assert invoice.total == Decimal("900.00")


def test_fr_to_us_is_export_at_zero(world):
    invoice = _invoice(world, country="US", vat_id="")

    assert _taxes(invoice) == [(Decimal("0"), Decimal("900.00"), Decimal("0.00"), "export")]
    assert invoice.total == Decimal("900.00")


@pytest.mark.parametrize(
    ("issuer", "customer", "vat_id", "rate", "reason"),
    [
        ("DE", "DE", "", "19", "domestic_vat"),
        ("FR", "IT", "IT00743110157", "0", "reverse_charge"),
        ("FR", "IT", "", "22", "oss"),
        ("FR", "IT", "IT00743110158", "22", "oss"),  # a wrong check digit: a consumer
        ("FR", "BE", "", "21", "oss"),
        ("FR", "DE", "DE811907980", "0", "reverse_charge"),
        ("FR", "GB", "GB123456789", "0", "export"),
        ("FR", "US", "", "0", "export"),
        ("GB", "US", "", "0", "export"),
        ("US", "US", "", "0", "out_of_scope"),  # no VAT line at all
        ("US", "FR", "FR03552081317", "0", "out_of_scope"),
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
