"""The finance export (SPEC §5) of a worked scenario, checked against hand arithmetic."""

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice
from billing.invoicing.status import invoice_void
from metering.models import QuarantinedWork

from .conftest import AFTER_GRACE, DISCOUNTED_LLAMA, rated_period, worked_charges


def test_json_export_of_the_worked_scenario_matches_the_hand_computation(world, tmp_path):
    # Reservation: 8 GPUs × 744 h = 5,952 GPU-hours × 2.10 = 12,499.20
    # Covered: 5,000.5 GPU-hours at 0 = 0.00; burst: 12.25 × 2.40 = 29.40
    # Llama input, graduated: 1,000 × 0.90 = 900.00 (10% off list 1.00); 234.5 × 0.70 = 164.15
    subtotal = (
        Decimal("12499.20")
        + Decimal("0.00")
        + Decimal("29.40")
        + Decimal("900.00")
        + Decimal("164.15")
    )
    credits = Decimal("500.00")
    tax = ((subtotal - credits) * Decimal("0.20")).quantize(Decimal("0.01"))
    assert (subtotal, tax) == (Decimal("13592.75"), Decimal("2618.55"))
    rated_period(world, charges=worked_charges(world), credits=credits,
                 list_prices=DISCOUNTED_LLAMA)  # fmt: skip
    periods_close(as_of=AFTER_GRACE)
    invoices_finalize(as_of=datetime(2026, 11, 4, tzinfo=UTC))
    out = tmp_path / "invoices.json"

    call_command("export_invoices", "--period", "2026-10", "--format", "json", "--output", str(out))

    assert json.loads(out.read_text()) == [
        {
            "number": "TFR-2026-000001",
            "org": "acme",
            "issuer": "tessera-fr",
            "status": "finalized",
            "currency": "USD",
            "period_start": "2026-10-01",
            "period_end": "2026-11-01",
            "issue_date": "2026-11-04",
            "due_date": "2026-12-04",
            "lines": [
                {"kind": "reservation", "product": "h100-eu-north",
                 "description": "NVIDIA H100 GPU-hour, eu-north: reservation",
                 "quantity": "5952", "unit": "GPU-hour", "unit_price": "2.1",
                 "list_unit_price": None, "amount": "12499.20", "period": None},
                {"kind": "covered", "product": "h100-eu-north",
                 "description": "NVIDIA H100 GPU-hour, eu-north: covered by reservation",
                 "quantity": "5000.5", "unit": "GPU-hour", "unit_price": "0",
                 "list_unit_price": None, "amount": "0.00", "period": None},
                {"kind": "burst", "product": "h100-eu-north",
                 "description": "NVIDIA H100 GPU-hour, eu-north: burst above reservation",
                 "quantity": "12.25", "unit": "GPU-hour", "unit_price": "2.4",
                 "list_unit_price": None, "amount": "29.40", "period": None},
                {"kind": "on_demand", "product": "llama-70b-input",
                 "description": "Llama 3.1 70B input, 1M tokens: on demand",
                 "quantity": "1000", "unit": "1M tokens", "unit_price": "0.9",
                 "list_unit_price": "1", "amount": "900.00", "period": None},
                {"kind": "on_demand", "product": "llama-70b-input",
                 "description": "Llama 3.1 70B input, 1M tokens: on demand",
                 "quantity": "234.5", "unit": "1M tokens", "unit_price": "0.7",
                 "list_unit_price": None, "amount": "164.15", "period": None},
            ],
            "subtotal": str(subtotal),
            "credits": "500.00",
            "taxes": [{"rate": "20", "basis": "13092.75", "amount": str(tax),
                       "reason": "domestic_vat"}],
            "tax_total": "2618.55",
            "total": str(subtotal - credits + tax),
        }
    ]  # fmt: skip
    assert str(subtotal - credits + tax) == "15711.30"


def test_csv_export_has_one_row_per_line_with_the_invoice_repeated(world):
    rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"),
                 list_prices=DISCOUNTED_LLAMA)  # fmt: skip
    rated_period(world, slug="globex")  # no lines: one row
    periods_close(as_of=AFTER_GRACE)
    invoices_finalize(as_of=datetime(2026, 11, 4, tzinfo=UTC))
    out = io.StringIO()

    call_command("export_invoices", "--period", "2026-10", "--format", "csv", stdout=out)

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["number"], r["line_kind"], r["line_amount"], r["total"]) for r in rows] == [
        ("TFR-2026-000001", "reservation", "12499.20", "15711.30"),
        ("TFR-2026-000001", "covered", "0.00", "15711.30"),
        ("TFR-2026-000001", "burst", "29.40", "15711.30"),
        ("TFR-2026-000001", "on_demand", "900.00", "15711.30"),
        ("TFR-2026-000001", "on_demand", "164.15", "15711.30"),
        ("TFR-2026-000002", "", "", "0.00"),
    ]
    # A discounted line's list price; empty for the others.
    assert [r["line_list_unit_price"] for r in rows] == ["", "", "", "1", "", ""]
    assert rows[0]["tax_rate"] == "20"
    assert rows[0]["credits"] == "500.00"


def test_drafts_and_other_months_are_not_exported_by_default(world):
    rated_period(world, charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    out = io.StringIO()

    call_command("export_invoices", "--period", "2026-10", stdout=out)
    assert json.loads(out.getvalue()) == []
    call_command("export_invoices", "--period", "2026-10", "--status", "draft", stdout=out)
    assert json.loads(out.getvalue().split("]\n", 1)[1])[0]["number"] is None


def _finalized_and_void(world):
    """Two orgs' invoices finalized, the first one then voided."""
    rated_period(world, charges=worked_charges(world))
    rated_period(world, slug="globex", charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    invoices_finalize(as_of=datetime(2026, 11, 4, tzinfo=UTC))
    first, second = Invoice.objects.order_by("number")
    invoice_void(invoice_id=first.pk, reason="billed twice")
    return first, second


@pytest.mark.parametrize("fmt", ["json", "facturx"])
def test_an_output_that_cannot_be_written_is_a_usage_error_naming_it(world, tmp_path, fmt):
    taken = tmp_path / "taken.json"
    taken.write_text("keep me")
    directory = tmp_path / "a-directory"
    directory.mkdir()
    # facturx needs a directory (a file is in the way); json a file (a directory is in the way).
    in_the_way = taken if fmt == "facturx" else directory

    for path in (in_the_way, Path("/proc/nope/out")):
        with pytest.raises(CommandError) as refused:
            call_command("export_invoices", period="2026-10", format=fmt, output=str(path))
        assert f"--output {path}" in str(refused.value)
    assert taken.read_text() == "keep me"


def test_an_unknown_issuer_is_refused_listing_the_known_ones(world):
    with pytest.raises(CommandError) as refused:
        call_command("export_invoices", period="2026-10", issuer="nope", stdout=io.StringIO())

    assert "no issuer 'nope'" in str(refused.value)
    assert "tessera-fr" in str(refused.value)


@pytest.mark.parametrize("fmt", ["facturx", "xrechnung"])
@pytest.mark.parametrize("status", ["draft", "void"])
def test_e_invoices_of_drafts_or_void_invoices_are_refused_up_front(world, tmp_path, fmt, status):
    rated_period(world, charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    if status == "void":
        invoices_finalize(as_of=datetime(2026, 11, 4, tzinfo=UTC))
        invoice_void(invoice_id=Invoice.objects.order_by("number")[0].pk, reason="billed twice")

    with pytest.raises(CommandError) as refused:
        call_command("export_invoices", period="2026-10", format=fmt, status=[status],
                     output=str(tmp_path / "out"))  # fmt: skip

    assert f"--format {fmt} --status {status}" in str(refused.value)
    assert "json or csv" in str(refused.value)
    assert not QuarantinedWork.objects.exists()  # a usage error, not finance's quarantine
    assert not (tmp_path / "out").exists()


def test_void_invoices_are_left_out_by_default_and_listed_when_asked_for(world, tmp_path):
    void, payable = _finalized_and_void(world)
    out = io.StringIO()

    call_command("export_invoices", period="2026-10", stdout=out)
    listed = json.loads(out.getvalue())
    out = io.StringIO()
    call_command("export_invoices", period="2026-10", status=["void"], stdout=out)
    asked = json.loads(out.getvalue())
    call_command("export_invoices", period="2026-10", format="facturx",
                 output=str(tmp_path / "fx"), stderr=io.StringIO())  # fmt: skip

    assert [i["number"] for i in listed] == [payable.number]
    assert [(i["number"], i["status"]) for i in asked] == [(void.number, "void")]
    assert [p.name for p in (tmp_path / "fx").iterdir()] == [f"{payable.number}.pdf"]
    assert not QuarantinedWork.objects.exists()
