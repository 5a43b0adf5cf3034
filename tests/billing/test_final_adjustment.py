"""Late usage after a contract's last invoiced period (SPEC §3 "Unbilled usage", §6 step 5):
no next invoice will carry it, so close_periods drafts a final adjustment invoice. Before, it
was billed nowhere and listed nowhere."""

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.invoicing.models import Invoice
from billing.models import BillingPeriod

from .conftest import contract, gpu, ingest, the_period

AS_OF = "2026-10-05T00:00:00Z"
LATE = datetime(2026, 10, 6, tzinfo=UTC)  # when the late events arrive (within the late window)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def after_grace() -> str:
    """A moment when the late usage (stamped when it was rolled up: now) is settled."""
    return (timezone.now() + timedelta(days=3)).isoformat()


def lines(invoice: Invoice) -> list[tuple[str, str, str | None, D, D, str | None]]:
    return [
        (line.kind, line.charge_kind, line.product.key if line.product else None,
         line.quantity, line.amount,
         f"{line.adjusts_period.start:%Y-%m-%d}" if line.adjusts_period else None)
        for line in invoice.lines.order_by("position")
    ]  # fmt: skip


def unbilled() -> list[Any]:
    out = io.StringIO()
    call_command("unbilled_usage", "--start", "2026-09-01", "--end", "2026-12-01",
                 stdout=out, stderr=io.StringIO())  # fmt: skip
    return list(json.loads(out.getvalue()))


@pytest.fixture
def invoiced(catalog: Any) -> Invoice:
    """acme's two-day contract (it ends 2026-10-03), rated, closed and finalized."""
    catalog(contract())
    ingest([gpu(0, "3600")])
    run("rate", "--as-of", AS_OF)
    run("close_periods", "--as-of", AS_OF)
    run("finalize_invoices", "--as-of", AS_OF)
    return Invoice.objects.get()


def test_late_usage_after_the_last_period_goes_on_a_final_adjustment_invoice(invoiced):
    ingest([gpu(5, "7200", n=1)], now=LATE)  # two GPU-hours for the contract's last period

    assert unbilled() == []  # covered by the contract: billed, not unbilled
    out = run("close_periods", "--as-of", after_grace())

    assert "1 draft invoice(s) created (1 final adjustment)" in out
    final = Invoice.objects.exclude(pk=invoiced.pk).get()
    assert (final.kind, final.period_id, final.status) == (
        "final_adjustment", the_period().pk, "draft",
    )  # fmt: skip
    assert lines(final) == [("adjustment", "on_demand", "h100", D(2), D("5.00"), "2026-10-01")]
    assert (final.subtotal, final.credits, final.tax_total, final.total) == (
        D("5.00"), D("0.00"), D("1.00"), D("6.00"),
    )  # fmt: skip
    # the period invoice is untouched; the period stays invoiced
    invoiced.refresh_from_db()
    assert (invoiced.kind, invoiced.total, invoiced.lines.count()) == ("period", D("3.00"), 1)
    assert the_period().status == BillingPeriod.Status.INVOICED

    # idempotent: a second run finds nothing left to adjust
    run("close_periods", "--as-of", after_grace())
    assert Invoice.objects.count() == 2
    # finance finalizes it like any draft: the next number of the issuer
    run("finalize_invoices", "--as-of", after_grace())
    final.refresh_from_db()
    assert (final.status, final.number) == ("finalized", "TFR-2026-000002")

    # more late usage later: one more final adjustment, only for what is new
    ingest([gpu(6, "3600", n=2)], now=LATE)
    run("close_periods", "--as-of", after_grace())
    newest = Invoice.objects.order_by("-pk").first()
    assert newest is not None
    assert newest.kind == "final_adjustment"
    assert lines(newest) == [("adjustment", "on_demand", "h100", D(1), D("2.50"), "2026-10-01")]


def test_the_final_adjustment_waits_for_the_grace_window(invoiced):
    ingest([gpu(5, "3600", n=1)], now=LATE)

    out = run("close_periods", "--as-of", timezone.now().isoformat())

    assert "0 draft invoice(s) created (0 final adjustment)" in out
    assert Invoice.objects.count() == 1


def test_with_a_renewal_the_late_usage_goes_on_its_next_invoice_not_a_final_one(catalog):
    catalog(contract(), contract(key="acme-renewal", start="2026-10-03", end="2026-10-05"))
    ingest([gpu(0, "3600"), gpu(50, "3600")])
    run("rate", "--as-of", AS_OF)
    run("close_periods", "--as-of", AS_OF)  # only the first period is due
    ingest([gpu(5, "3600", n=1)], now=LATE)

    out = run("close_periods", "--as-of", after_grace())

    assert "1 draft invoice(s) created (0 final adjustment)" in out

    kinds = list(Invoice.objects.order_by("pk").values_list("kind", "period__contract__key"))
    assert kinds == [("period", "acme-c"), ("period", "acme-renewal")]
    renewal = Invoice.objects.get(period__contract__key="acme-renewal")
    assert ("adjustment", "on_demand", "h100", D(1), D("2.50"), "2026-10-01") in lines(renewal)
