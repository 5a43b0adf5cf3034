"""SPEC §8: rating, close, finalize and export runs isolate per org. One org's failure (any
exception, not only a RatingError) is rolled back, quarantined, reported; every other org is
processed; the command exits non-zero at the end."""

import io
import json
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from billing import services
from billing.invoicing import drafting, export, finalization
from billing.invoicing.models import Invoice
from billing.models import BillingPeriod, RatedCharge
from billing.tasks import period_unit, rate_due
from metering.models import HourlyRollup, QuarantinedWork
from tenancy.models import Org, StaffRole

from ..factories import staff_user
from .conftest import charges, contract, gpu, ingest, the_period

AS_OF = "2026-10-05T00:00:00Z"  # after the two-day period and its two-day grace window
GLOBEX_CHARGES = [("h100", "on_demand", 0, D(2), D("2.50"), D("5.00"))]


@pytest.fixture
def two_orgs(catalog: Any) -> None:
    catalog(contract(), contract(key="globex-c", org="globex"))
    ingest([gpu(0, "3600"), gpu(1, "7200", org="globex")])


def run(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def held(slug: str, kind: str) -> list[QuarantinedWork]:
    return list(
        QuarantinedWork.objects.filter(
            org__slug=slug, kind=kind, resolved_at__isnull=True
        ).order_by("pk")
    )


def break_rating_of(monkeypatch: pytest.MonkeyPatch, slug: str) -> None:
    """The rating engine raises (not a RatingError) for one org's periods."""
    real = services.compute_period

    def faulty(*, period: BillingPeriod, as_of: datetime, **shared: Any) -> Any:
        if period.org.slug == slug:
            raise ZeroDivisionError("injected fault")
        return real(period=period, as_of=as_of, **shared)

    monkeypatch.setattr(services, "compute_period", faulty)


@pytest.mark.usefixtures("two_orgs")
def test_rate_goes_on_after_a_failing_org_and_exits_non_zero(monkeypatch):
    break_rating_of(monkeypatch, "acme")  # acme sorts first: globex comes after it

    out, err, error = run("rate", "--as-of", AS_OF)

    assert error is not None
    assert str(error) == (
        "1 org(s) could not be rated and are quarantined: acme. Every other org was rated."
    )
    assert "acme: ZeroDivisionError: injected fault" in err
    assert "Rated 1 period(s) of 1 org(s)" in out
    assert charges(the_period("globex")) == GLOBEX_CHARGES
    assert not RatedCharge.objects.filter(org__slug="acme").exists()
    assert the_period("acme").rated_at is None  # rolled back, not half-rated
    [entry] = held("acme", "rating")
    assert (entry.unit, entry.error) == ("", "ZeroDivisionError: injected fault")
    assert held("globex", "rating") == []
    assert 'tessera_quarantined_work{kind="rating"} 1.0' in Client().get("/metrics").text
    console = Client()
    console.force_login(staff_user("fin", StaffRole.FINANCE))
    assert "1 unit of batch work quarantined" in console.get("/finance/").text
    page = console.get("/finance/quarantine/").text
    assert "<td>acme</td>" in page
    assert "ZeroDivisionError: injected fault" in page

    # close_periods drafts every org that rated fine; acme's period waits for its rating
    out, _, error = run("close_periods", "--as-of", AS_OF)
    assert error is not None
    assert "acme" in str(error)
    assert "rating quarantined" in out
    # 5.00 + German VAT 19% through the OSS: globex is a consumer (no VAT id) in DE
    assert list(Invoice.objects.values_list("org__slug", "total")) == [("globex", D("5.95"))]

    # once the fault is gone, rate succeeds, resolves the quarantine and exits zero
    monkeypatch.undo()
    _, _, error = run("rate", "--as-of", AS_OF)
    assert error is None
    assert held("acme", "rating") == []
    assert charges(the_period("acme")) == [("h100", "on_demand", 0, D(1), D("2.50"), D("2.50"))]


@pytest.mark.postgres
@pytest.mark.usefixtures("two_orgs")
def test_a_value_that_overflows_rating_fails_only_its_org():
    """Bad data written straight into the rollups (bypassing validation): the charge does not
    fit the rating's decimal arithmetic. Before: `rate` caught only RatingError and aborted at
    that org, leaving every later org unrated."""
    HourlyRollup.objects.filter(org__slug="acme").update(value=D("1e25"))

    _, err, error = run("rate", "--as-of", AS_OF)

    assert error is not None
    assert "acme: InvalidOperation" in err
    assert charges(the_period("globex")) == GLOBEX_CHARGES
    assert [e.error.split(":")[0] for e in held("acme", "rating")] == ["InvalidOperation"]


@pytest.mark.usefixtures("two_orgs")
def test_rate_due_rates_every_other_period_and_backs_off_the_failing_one(monkeypatch):
    for org in Org.objects.all():
        services.org_rate(org=org, as_of=datetime(2026, 10, 1, 12, tzinfo=UTC))
    break_rating_of(monkeypatch, "acme")

    assert rate_due.apply().get() == 2  # both stale (not rated through their end): in-process

    acme, globex = the_period("acme"), the_period("globex")
    assert charges(globex) == GLOBEX_CHARGES
    assert globex.status == BillingPeriod.Status.CLOSING
    [entry] = held("acme", "rating")
    assert (entry.unit, entry.hour) == (period_unit(acme.pk), acme.start)
    # the next beat run leaves acme alone until its backoff expires
    assert rate_due.apply().get() == 0
    QuarantinedWork.objects.filter(pk=entry.pk).update(next_attempt_at=entry.first_failed_at)
    monkeypatch.undo()
    assert rate_due.apply().get() == 1
    assert held("acme", "rating") == []
    assert charges(the_period("acme")) == [("h100", "on_demand", 0, D(1), D("2.50"), D("2.50"))]


@pytest.mark.usefixtures("two_orgs")
def test_close_goes_org_by_org_when_a_batch_fails(monkeypatch):
    run("rate", "--as-of", AS_OF)
    real = drafting._charge_lines

    def faulty(invoice: Invoice, charges: Any) -> Any:
        if invoice.org.slug == "acme":
            raise LookupError("injected fault")
        return real(invoice, charges)

    # both orgs' periods are one batch, which fails as a whole first
    monkeypatch.setattr(drafting, "_charge_lines", faulty)
    out, err, error = run("close_periods", "--as-of", AS_OF)

    assert error is not None
    assert "acme" in str(error)
    assert "acme: close failed and is quarantined: LookupError: injected fault" in err
    assert "1 draft invoice(s) created" in out
    assert list(Invoice.objects.values_list("org__slug", flat=True)) == ["globex"]
    assert the_period("acme").status == BillingPeriod.Status.CLOSING  # rolled back
    [entry] = held("acme", "close")
    assert entry.error == "LookupError: injected fault"

    monkeypatch.undo()
    _, _, error = run("close_periods", "--as-of", AS_OF)
    assert error is None
    assert sorted(Invoice.objects.values_list("org__slug", flat=True)) == ["acme", "globex"]
    assert held("acme", "close") == []


@pytest.mark.usefixtures("two_orgs")
def test_finalize_goes_org_by_org_when_a_batch_fails(monkeypatch):
    run("rate", "--as-of", AS_OF)
    run("close_periods", "--as-of", AS_OF)
    real = finalization._finalize_drafts

    def faulty(drafts: Any, **kwargs: Any) -> list[int]:
        if any(invoice.org.slug == "acme" for invoice in drafts):
            raise ValueError("injected fault")
        return real(drafts, **kwargs)

    # the batch holds both orgs' drafts, so it fails as a whole first
    monkeypatch.setattr(finalization, "_finalize_drafts", faulty)
    out, err, error = run("finalize_invoices", "--as-of", "2026-10-06")

    assert error is not None
    assert "acme" in str(error)
    assert "acme: ValueError: injected fault" in err
    numbers = dict(Invoice.objects.values_list("org__slug", "number"))
    assert numbers == {"acme": "", "globex": "TFR-2026-000001"}
    assert [e.kind for e in held("acme", "finalize")] == ["finalize"]


@pytest.mark.usefixtures("two_orgs")
def test_export_leaves_out_a_failing_document_and_writes_the_others(monkeypatch, tmp_path):
    run("rate", "--as-of", AS_OF)
    run("close_periods", "--as-of", AS_OF)
    run("finalize_invoices", "--as-of", "2026-10-06")
    real = export.invoice_dict

    def faulty(invoice: Invoice) -> dict[str, Any]:
        if invoice.org.slug == "acme":
            raise KeyError("injected fault")
        return real(invoice)

    monkeypatch.setattr(export, "invoice_dict", faulty)
    target = tmp_path / "out.json"

    _, err, error = run("export_invoices", "--period", "2026-10", "--output", str(target))

    assert error is not None
    assert "1 document(s) could not be exported" in str(error)
    assert "TFR-2026-000001: KeyError: 'injected fault'" in err
    written = json.loads(target.read_text())
    assert [doc["org"] for doc in written] == ["globex"]
    [entry] = held("acme", "export")
    assert entry.unit.startswith("invoice:")
    monkeypatch.undo()
    _, _, error = run("export_invoices", "--period", "2026-10", "--output", str(target))
    assert error is None
    assert held("acme", "export") == []
