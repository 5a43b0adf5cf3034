"""Closing periods into draft invoices, and finalizing them with gapless numbers."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from billing.invoicing.drafting import invoice_draft, periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import DocumentCounter, Invoice, InvoiceLine
from billing.invoicing.numbering import next_number
from billing.models import BillingPeriod

from ...factories import IssuerFactory
from ...support.invoicing import finalize
from ...support.narrow import present
from .conftest import AFTER_GRACE, NOV, OCT, Kind, rated_period, worked_charges


def test_close_drafts_one_invoice_from_the_rated_charges(world):
    period = rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))

    report = periods_close(as_of=AFTER_GRACE)

    assert len(report.drafted) == 1
    invoice = report.drafted[0]
    assert (invoice.status, invoice.number, invoice.period_id) == ("draft", "", period.pk)
    assert [
        (line.kind, present(line.product).key, line.amount) for line in invoice.lines.all()
    ] == [
        ("reservation", "h100-eu-north", Decimal("12499.20")),
        ("covered", "h100-eu-north", Decimal("0.00")),
        ("burst", "h100-eu-north", Decimal("29.40")),
        ("on_demand", "llama-70b-input", Decimal("900.00")),
        ("on_demand", "llama-70b-input", Decimal("164.15")),
    ]
    assert invoice.subtotal == Decimal("13592.75")
    assert invoice.credits == Decimal("500.00")
    assert invoice.tax_total == Decimal("2618.55")  # 20% of 13,092.75, rounded once
    assert invoice.total == Decimal("15711.30")
    period.refresh_from_db()
    assert period.status == BillingPeriod.Status.INVOICED


def test_close_waits_for_the_grace_window_and_for_a_final_rating(world):
    rated_period(world, charges=worked_charges(world))
    stale = rated_period(world, slug="globex", charges=worked_charges(world))
    BillingPeriod.objects.filter(pk=stale.pk).update(rated_as_of=NOV - timedelta(hours=3))

    assert periods_close(as_of=AFTER_GRACE - timedelta(seconds=1)).drafted == []
    report = periods_close(as_of=AFTER_GRACE)

    assert [i.org.slug for i in report.drafted] == ["acme"]
    assert [(p.pk, why) for p, why in report.skipped] == [
        (stale.pk, "not rated through its end yet")
    ]
    assert Invoice.objects.filter(period=stale).count() == 0


def test_drafting_one_period_is_the_close_run_for_that_period_alone(world):
    # given two due periods and one still in its grace window
    acme = rated_period(world, charges=worked_charges(world), credits=Decimal("500.00"))
    globex = rated_period(world, slug="globex", charges=worked_charges(world))
    BillingPeriod.objects.filter(pk=globex.pk).update(rated_as_of=NOV - timedelta(hours=3))

    # when acme's period is drafted on its own, then globex's, then acme's again
    invoice, why = invoice_draft(period_id=acme.pk, as_of=AFTER_GRACE)
    refused = invoice_draft(period_id=globex.pk, as_of=AFTER_GRACE)
    again = invoice_draft(period_id=acme.pk, as_of=AFTER_GRACE)

    # then acme's invoice is the one the close run drafts, and the others say why not
    assert why == ""
    assert invoice is not None
    assert (invoice.subtotal, invoice.credits, invoice.total) == (
        Decimal("13592.75"), Decimal("500.00"), Decimal("15711.30"),
    )  # fmt: skip
    assert invoice.lines.count() == 5
    assert refused == (None, "not rated through its end yet")
    assert again == (None, "already invoiced")
    assert invoice_draft(period_id=globex.pk, as_of=NOV) == (None, "grace window not over")
    assert Invoice.objects.count() == 1


def test_close_twice_makes_nothing_new(world):
    rated_period(world, charges=worked_charges(world))
    call_command("close_periods", "--as-of", "2026-11-03")

    report = periods_close(as_of=AFTER_GRACE + timedelta(days=5))

    assert report.drafted == []
    assert Invoice.objects.count() == 1


def test_the_database_refuses_a_second_invoice_for_a_period(world):
    period = rated_period(world, charges=worked_charges(world))
    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]

    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            org=invoice.org, issuer=invoice.issuer, contract=invoice.contract, period=period,
            currency="USD", period_start=OCT, period_end=NOV, payment_terms_days=30,
            customer_name="x", customer_country="FR", issuer_name="y", issuer_country="FR",
        )  # fmt: skip
    assert Invoice.objects.count() == 1


def test_finalize_numbers_snapshots_and_dates(world):
    rated_period(world, charges=worked_charges(world))
    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]
    invoice.org.name = "Acme AI SAS (renamed)"
    invoice.org.save()

    finalized = finalize(invoice.pk, as_of=datetime(2026, 11, 4, 9, tzinfo=UTC))

    assert finalized.number == "TFR-2026-000001"
    assert (finalized.number_year, finalized.sequence) == (2026, 1)
    assert finalized.status == Invoice.Status.FINALIZED
    assert finalized.issue_date == date(2026, 11, 4)
    assert finalized.due_date == date(2026, 12, 4)  # net 30
    assert finalized.customer_name == "Acme AI SAS (renamed)"
    assert finalized.customer_vat_id == "FR12345678901"
    assert (finalized.issuer_name, finalized.issuer_vat_id) == (
        "Tessera Cloud SAS",
        "FR40123456789",
    )
    again = finalize(invoice.pk, as_of=datetime(2026, 11, 9, tzinfo=UTC))
    assert (again.number, again.issue_date) == ("TFR-2026-000001", date(2026, 11, 4))


def test_numbers_run_per_issuer_and_year(world):
    other = IssuerFactory.create(key="tessera-de", legal_name="Tessera Cloud GmbH", country="DE",
                          vat_id="DE123456789", invoice_prefix="TDE")  # fmt: skip
    for slug in ("a1", "a2"):
        rated_period(world, slug=slug, charges=worked_charges(world))
    rated_period(world, slug="b1", issuer=other, charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)

    invoices_finalize(as_of=datetime(2026, 12, 31, 23, tzinfo=UTC))
    rated_period(world, slug="a3", charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    invoices_finalize(as_of=datetime(2027, 1, 2, tzinfo=UTC))

    assert sorted(Invoice.objects.values_list("number", flat=True)) == [
        "TDE-2026-000001", "TFR-2026-000001", "TFR-2026-000002", "TFR-2027-000001",
    ]  # fmt: skip


def test_a_rolled_back_finalization_gives_its_number_back(world):
    rated_period(world, charges=worked_charges(world))
    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]

    def crash_after_taking_a_number() -> None:
        with transaction.atomic():
            next_number(issuer=world.issuer, year=2026, kind=DocumentCounter.Kind.INVOICE)
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash_after_taking_a_number()
    finalized = finalize(invoice.pk, as_of=AFTER_GRACE)

    assert finalized.number == "TFR-2026-000001"


def test_finalize_command_filters_by_org_and_period(world):
    rated_period(world, charges=worked_charges(world))
    rated_period(world, slug="globex", charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)

    call_command("finalize_invoices", "--org", "globex", "--period", "2026-10")

    assert dict(Invoice.objects.values_list("org__slug", "status")) == {
        "acme": "draft",
        "globex": "finalized",
    }


def test_an_empty_period_still_gets_an_invoice_of_zero(world):
    rated_period(world)

    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]

    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (0, 0, 0)
    assert InvoiceLine.objects.filter(invoice=invoice).count() == 0
    assert Kind.RESERVATION  # kinds are the rating's own
