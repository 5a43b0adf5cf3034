"""Late usage for an invoiced period becomes adjustment lines on the next invoice (SPEC §6
step 5). The rating engine is on another branch: its read-only ``compute_period`` is stood in
for by ``stub_rating`` through the ``TESSERA_RERATE_PERIOD`` seam."""

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoice_finalize
from billing.invoicing.models import InvoiceLine
from billing.models import BillingPeriod

from . import stub_rating
from .conftest import AFTER_GRACE, DEC, NOV, Kind, rated_period
from .stub_rating import StubCharge

D = Decimal


@pytest.fixture(autouse=True)
def _stub_rating(settings):
    settings.TESSERA_RERATE_PERIOD = "tests.billing.invoicing.stub_rating.compute_period_stub"
    stub_rating.RERATED.clear()
    stub_rating.CALLS.clear()


def _october_invoiced(world, charges):
    october = rated_period(world, charges=charges)
    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice_finalize(invoice_id=invoice.pk, as_of=AFTER_GRACE)
    return october


def _late_usage(period, charges):
    """What metering + rating do when a late event lands in an invoiced period."""
    stub_rating.RERATED[period.pk] = [StubCharge(*c) for c in charges]
    BillingPeriod.objects.filter(pk=period.pk).update(usage_changed_at=timezone.now())


def _november(world, period):
    charges = [(world.h100, Kind.ON_DEMAND, 0, "10", "2.50", "25.00")]
    return rated_period(world, contract=period.contract, start=NOV, end=DEC, charges=charges)


def test_a_late_event_after_finalization_appears_as_an_adjustment_next_period(world):
    october = _october_invoiced(world, [(world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00")])
    _late_usage(october, [(world.h100, Kind.ON_DEMAND, 0, D("104.5"), D("2.50"), D("261.25"))])
    _november(world, october)

    invoice = periods_close(as_of=DEC + timedelta(days=2)).drafted[0]

    adjustment = InvoiceLine.objects.get(invoice=invoice, kind="adjustment")
    assert (adjustment.charge_kind, adjustment.product, adjustment.adjusts_period_id) == (
        "on_demand", world.h100, october.pk)  # fmt: skip
    assert (adjustment.quantity, adjustment.unit_price, adjustment.amount) == (
        D("4.5"), D("2.5"), D("11.25"))  # fmt: skip
    assert adjustment.description.startswith("Adjustment 2026-10-01 to 2026-10-31")
    assert invoice.subtotal == D("36.25")  # 25.00 this period + 11.25 for October
    out = io.StringIO()
    invoice_finalize(invoice_id=invoice.pk, as_of=DEC + timedelta(days=2))
    call_command("export_invoices", "--period", "2026-11", stdout=out)
    exported = json.loads(out.getvalue())[0]["lines"][-1]
    assert (exported["kind"], exported["amount"], exported["period"]) == (
        "adjustment", "11.25", {"start": "2026-10-01", "end": "2026-11-01"})  # fmt: skip


def test_extra_usage_absorbed_by_the_minimum_nets_to_zero(world):
    october = _october_invoiced(world, [
        (world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00"),
        (None, Kind.MINIMUM_TRUE_UP, 0, "1", "750.00", "750.00"),
    ])  # fmt: skip
    _late_usage(october, [
        (world.h100, Kind.ON_DEMAND, 0, D("140"), D("2.50"), D("350.00")),
        (None, Kind.MINIMUM_TRUE_UP, 0, D("1"), D("650.00"), D("650.00")),
    ])  # fmt: skip
    _november(world, october)

    invoice = periods_close(as_of=DEC + timedelta(days=2)).drafted[0]

    adjustments = InvoiceLine.objects.filter(invoice=invoice, kind="adjustment")
    assert sorted((a.charge_kind, a.amount) for a in adjustments) == [
        ("minimum_true_up", D("-100.00")), ("on_demand", D("100.00"))]  # fmt: skip
    assert invoice.subtotal == D("25.00")  # the adjustments sum to zero


def test_adjustments_are_billed_once(world):
    october = _october_invoiced(world, [(world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00")])
    _late_usage(october, [(world.h100, Kind.ON_DEMAND, 0, D("104"), D("2.50"), D("260.00"))])
    november = _november(world, october)
    first = periods_close(as_of=DEC + timedelta(days=2)).drafted[0]
    # More late usage for October arrives after November's invoice was drafted.
    _late_usage(october, [(world.h100, Kind.ON_DEMAND, 0, D("106"), D("2.50"), D("265.00"))])
    december = rated_period(world, contract=november.contract, start=DEC,
                            end=datetime(2027, 1, 1, tzinfo=UTC))  # fmt: skip

    second = periods_close(as_of=datetime(2027, 1, 3, tzinfo=UTC)).drafted[0]

    assert second.period_id == december.pk
    assert [(a.invoice_id, a.amount) for a in InvoiceLine.objects.filter(kind="adjustment")] == [
        (first.pk, D("10.00")), (second.pk, D("5.00"))]  # fmt: skip


def test_no_late_usage_no_rerating(world):
    october = _october_invoiced(world, [(world.h100, Kind.ON_DEMAND, 0, "100", "2.50", "250.00")])
    _november(world, october)

    invoice = periods_close(as_of=DEC + timedelta(days=2)).drafted[0]

    assert stub_rating.CALLS == []
    assert not InvoiceLine.objects.filter(invoice=invoice, kind="adjustment").exists()
