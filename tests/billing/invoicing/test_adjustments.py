"""Late usage for an invoiced period becomes adjustment lines on the next invoice (SPEC §6
step 5), end to end: the late event goes through ingestion and the rollup, whose hook marks
the invoiced period, and drafting the next invoice re-rates it with the real rating engine."""

import io
import json
from datetime import timedelta

from django.core.management import call_command

from billing.invoicing.models import Invoice, InvoiceLine, LateUsageCheck
from billing.models import RatedCharge

from .late_usage import DEC, GRACE, JAN, LATE, NOV, OCT, D, bill, contracts, gpu_hours, period


def _october_invoiced(catalog, **terms) -> Invoice:
    contracts(catalog, "acme", **terms)
    gpu_hours("acme", OCT, 4)  # 4 GPU-hours × 2.50 = 10.00
    (invoice,) = bill(NOV, "acme").drafted
    return invoice


def test_a_late_event_after_finalization_appears_as_an_adjustment_next_period(catalog):
    # given October invoiced (4 GPU-hours), then 1.5 GPU-hours of October arriving late
    october_invoice = _october_invoiced(catalog)
    gpu_hours("acme", OCT + timedelta(hours=20), 1, seconds="5400", tag=1, now=LATE)
    gpu_hours("acme", NOV, 10)  # November's own usage: 25.00

    # when November is rated and closed
    (invoice,) = bill(DEC, "acme").drafted

    # then November's invoice bills October's difference, re-rated by the engine
    adjustment = InvoiceLine.objects.get(invoice=invoice, kind="adjustment")
    assert adjustment.product is not None
    assert (adjustment.charge_kind, adjustment.product.key, adjustment.adjusts_period_id) == (
        "on_demand", "h100", period("acme", OCT).pk)  # fmt: skip
    assert (adjustment.quantity, adjustment.unit_price, adjustment.amount) == (
        D("1.5"), D("2.5"), D("3.75"))  # fmt: skip
    assert adjustment.description.startswith("Adjustment 2026-10-01 to 2026-10-31")
    assert Invoice.objects.get(pk=invoice.pk).subtotal == D("28.75")  # 25.00 + 3.75
    # and October's invoice and rated charges are history: unchanged
    assert Invoice.objects.get(pk=october_invoice.pk).subtotal == D("10.00")
    assert [c.amount for c in RatedCharge.objects.filter(period=period("acme", OCT))] == [
        D("10.00")
    ]
    out = io.StringIO()
    call_command("export_invoices", "--period", "2026-11", stdout=out)
    exported = json.loads(out.getvalue())[0]["lines"][-1]
    assert (exported["kind"], exported["amount"], exported["period"]) == (
        "adjustment", "3.75", {"start": "2026-10-01", "end": "2026-11-01"})  # fmt: skip


def test_an_adjustment_of_a_discounted_line_keeps_its_list_price(catalog):
    # given 10% off h100 (2.50 → 2.25) and October invoiced, then 2 late GPU-hours
    _october_invoiced(catalog, discounts=[{"product": "h100", "percent": "10"}])
    gpu_hours("acme", OCT + timedelta(hours=20), 2, tag=1, now=LATE)

    (invoice,) = bill(DEC, "acme").drafted

    adjustment = InvoiceLine.objects.get(invoice=invoice, kind="adjustment")
    assert (adjustment.quantity, adjustment.list_unit_price, adjustment.unit_price,
            adjustment.amount) == (D(2), D("2.5"), D("2.25"), D("4.50"))  # fmt: skip


def test_extra_usage_absorbed_by_the_minimum_nets_to_zero(catalog):
    # given a 100.00 monthly minimum: October's 10.00 of usage was trued up by 90.00
    _october_invoiced(catalog, spend_commitments=[{"amount": "100.00", "per": "period"}])
    gpu_hours("acme", OCT + timedelta(hours=20), 1, seconds="5400", tag=1, now=LATE)
    gpu_hours("acme", NOV, 10)

    (invoice,) = bill(DEC, "acme").drafted

    # then usage up 3.75, true-up down 3.75: the adjustments sum to zero
    adjustments = InvoiceLine.objects.filter(invoice=invoice, kind="adjustment")
    assert sorted((a.charge_kind, a.amount) for a in adjustments) == [
        ("minimum_true_up", D("-3.75")), ("on_demand", D("3.75"))]  # fmt: skip
    assert Invoice.objects.get(pk=invoice.pk).subtotal == D("100.00")  # 25.00 + 75.00 true-up


def test_adjustments_are_billed_once(catalog):
    # given 1 late GPU-hour billed on November's invoice
    _october_invoiced(catalog)
    gpu_hours("acme", OCT + timedelta(hours=20), 1, tag=1, now=LATE)
    (first,) = bill(DEC, "acme").drafted
    # when half an hour more of October arrives after November's invoice
    gpu_hours("acme", OCT + timedelta(hours=30), 1, seconds="1800", tag=2, now=LATE)
    (second,) = bill(JAN, "acme").drafted

    # then December's invoice bills only what was not billed yet
    assert second.period_id == period("acme", DEC).pk
    assert [(a.invoice_id, a.amount) for a in InvoiceLine.objects.filter(kind="adjustment")] == [
        (first.pk, D("2.50")), (second.pk, D("1.25"))]  # fmt: skip


def test_no_late_usage_no_rerating(catalog):
    _october_invoiced(catalog)
    gpu_hours("acme", NOV, 10)

    (invoice,) = bill(DEC, "acme").drafted

    assert not InvoiceLine.objects.filter(invoice=invoice, kind="adjustment").exists()
    assert not LateUsageCheck.objects.exists()  # no earlier period was re-rated
    assert Invoice.objects.get(pk=invoice.pk).subtotal == D("25.00")
    assert DEC + GRACE > NOV  # (the grace window of each month is what bill() waits for)
