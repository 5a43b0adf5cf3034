"""The batched close and finalize runs: a chunk is one transaction and a handful of queries,
and gives exactly what drafting and finalizing one by one would (SPEC §9 invoice run)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from billing.invoicing import drafting, finalization
from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import (
    invoices_finalize,
    invoices_to_finalize,
)
from billing.invoicing.models import DocumentCounter, Invoice, InvoiceLine
from billing.models import BillingPeriod
from billing.services import org_rate
from tenancy.models import Org

from ...factories import IssuerFactory
from ...support.invoicing import finalize
from ...support.narrow import present
from . import late_usage
from .conftest import AFTER_GRACE, DEC, NOV, OCT, rated_period, worked_charges

D = Decimal
AS_OF = datetime(2026, 11, 4, tzinfo=UTC)


class Rollback(Exception):
    pass


def _germany():
    return IssuerFactory.create(key="tessera-de", legal_name="Tessera Cloud GmbH", country="DE",
                         vat_id="DE136695976", invoice_prefix="TDE")  # fmt: skip


def _mixed_drafts(world, count: int) -> None:
    """``count`` drafts, alternating between two issuers, customers in three countries."""
    germany = _germany()
    for i in range(count):
        rated_period(world, slug=f"org-{i:02d}", issuer=germany if i % 3 == 1 else world.issuer,
                     country=("FR", "DE", "US")[i % 3], vat_id="" if i % 2 else "XX123",
                     charges=worked_charges(world)[: 1 + i % 5])  # fmt: skip
    periods_close(as_of=AFTER_GRACE)


def _numbers() -> dict[str, tuple[str, str]]:
    return {slug: (status, number) for slug, status, number in
            Invoice.objects.values_list("org__slug", "status", "number")}  # fmt: skip


def _finalized() -> list[tuple]:
    """Each invoice as finalized, with its tax and its audit entry."""
    invoices = Invoice.objects.order_by("org__slug").values_list(
        "org__slug", "status", "number", "issue_date", "due_date", "subtotal", "credits",
        "tax_total", "total", "customer_country", "taxes__rate", "taxes__reason",
    )  # fmt: skip
    audit = AuditEntry.objects.filter(action="invoice.finalized").order_by("object_key")
    return [*invoices, *audit.values_list("object_key", "actor", "changes", "org__slug")]


def _one_by_one_then_rolled_back() -> tuple[dict[str, tuple[str, str]], list[tuple]]:
    """What finalizing the drafts one at a time, in run order, gives (then undone)."""
    try:
        with transaction.atomic():
            for pk in invoices_to_finalize():
                finalize(pk, as_of=AS_OF)
            result = _numbers(), _finalized()
            raise Rollback
    except Rollback:
        return result


def test_a_chunk_mixing_issuers_gets_the_numbers_one_by_one_finalization_gives(world, monkeypatch):
    # given drafts of two issuers, the French counter already at 1 from an earlier invoice
    rated_period(world, slug="early", charges=worked_charges(world))
    finalize(periods_close(as_of=AFTER_GRACE).drafted[0].pk, as_of=AS_OF)
    _mixed_drafts(world, 8)
    monkeypatch.setattr(finalization, "CHUNK", 3)
    one_by_one, as_finalized = _one_by_one_then_rolled_back()

    # when the drafts are finalized three to a chunk
    ids = invoices_finalize(as_of=AS_OF)

    # then every invoice has the number, totals, tax and audit entry one by one gave,
    # gapless per issuer
    assert len(ids) == 8
    assert _numbers() == one_by_one
    assert sorted(n for _, n in one_by_one.values() if n.startswith("TFR")) == [
        f"TFR-2026-{i:06d}" for i in range(1, 7)
    ]
    assert sorted(n for _, n in one_by_one.values() if n.startswith("TDE")) == [
        f"TDE-2026-{i:06d}" for i in range(1, 4)
    ]
    assert _finalized() == as_finalized


def test_a_failure_inside_a_finalization_chunk_rolls_the_chunk_back_with_its_numbers(
    world, monkeypatch
):
    # given four drafts, two to a chunk, and an audit write that fails for the fourth
    for slug in ("a", "b", "c", "d"):
        rated_period(world, slug=slug, charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    monkeypatch.setattr(finalization, "CHUNK", 2)
    audit_entry = finalization._audit_entry

    def failing(invoice, *args, **kwargs):
        if invoice.customer_name.startswith("D "):
            raise RuntimeError("audit store down")
        return audit_entry(invoice, *args, **kwargs)

    monkeypatch.setattr(finalization, "_audit_entry", failing)

    # when the run finalizes the first chunk, then fails in the second after taking numbers
    with pytest.raises(RuntimeError):
        invoices_finalize(as_of=AS_OF)

    # then the first chunk stays finalized and the second is rolled back, its numbers given back
    assert _numbers() == {
        "a": ("finalized", "TFR-2026-000001"), "b": ("finalized", "TFR-2026-000002"),
        "c": ("draft", ""), "d": ("draft", ""),
    }  # fmt: skip
    assert DocumentCounter.objects.get(issuer=world.issuer, year=2026).last == 2
    assert AuditEntry.objects.filter(action="invoice.finalized").count() == 2

    # and the next run numbers on without a gap
    monkeypatch.setattr(finalization, "_audit_entry", audit_entry)
    invoices_finalize(as_of=AS_OF)
    assert _numbers()["c"] == ("finalized", "TFR-2026-000003")
    assert _numbers()["d"] == ("finalized", "TFR-2026-000004")


def test_a_failure_inside_a_close_chunk_drafts_nothing_of_the_failing_org(world, monkeypatch):
    # given four periods, two to a chunk, and a tax rule that fails for the last customer
    for slug, country in (("a", "FR"), ("b", "FR"), ("c", "FR"), ("d", "DE")):
        rated_period(world, slug=slug, country=country, charges=worked_charges(world))
    monkeypatch.setattr(drafting, "CHUNK", 2)
    tax_rule = drafting.tax_rule

    def failing(**kwargs):
        if kwargs["customer_country"] == "DE":
            raise RuntimeError("tax table unavailable")
        return tax_rule(**kwargs)

    monkeypatch.setattr(drafting, "tax_rule", failing)

    # when the run closes them
    report = periods_close(as_of=AFTER_GRACE)

    # then the second chunk, rolled back, is closed again org by org (SPEC §8): every org but
    # the failing one is drafted, and nothing of that one: no invoice, line or status
    assert report.failed == [("d", "RuntimeError: tax table unavailable")]
    assert sorted(Invoice.objects.values_list("org__slug", flat=True)) == ["a", "b", "c"]
    assert InvoiceLine.objects.count() == 15
    assert dict(BillingPeriod.objects.values_list("org__slug", "status")) == {
        "a": "invoiced", "b": "invoiced", "c": "invoiced", "d": "closing",
    }  # fmt: skip

    # and the next run drafts the rest
    monkeypatch.setattr(drafting, "tax_rule", tax_rule)
    assert len(periods_close(as_of=AFTER_GRACE).drafted_ids) == 1


def test_the_queries_of_a_chunk_do_not_grow_with_its_invoices(world):
    def run(slugs: list[str]) -> tuple[int, int]:
        for slug in slugs:
            rated_period(world, slug=slug, charges=worked_charges(world), credits=D("10.00"))
        with CaptureQueriesContext(connection) as close:
            drafted = periods_close(as_of=AFTER_GRACE).drafted_ids
        with CaptureQueriesContext(connection) as finalize:
            finalized = invoices_finalize(as_of=AS_OF)
        assert len(drafted) == len(finalized) == len(slugs)
        return len(close.captured_queries), len(finalize.captured_queries)

    assert run(["a", "b"]) == run([f"org-{i}" for i in range(12)])


def test_a_chunk_with_late_usage_adjusts_only_that_org_and_keeps_the_drafting_order(catalog):
    # given acme's October invoiced, then a late event for it, and November for acme and two
    # orgs whose contracts start in November
    late_usage.contracts(catalog, "acme")
    late_usage.contracts(catalog, "globex", "initech", start="2026-11-01")
    late_usage.gpu_hours("acme", OCT, 4)
    late_usage.bill(NOV, "acme")
    late_usage.gpu_hours("acme", OCT + timedelta(hours=20), 1, seconds="5400", tag=1,
                         now=late_usage.LATE)  # fmt: skip
    for slug in ("acme", "globex", "initech"):
        late_usage.gpu_hours(slug, NOV, 10)
        org_rate(org=Org.objects.get(slug=slug), as_of=DEC)

    # when November is closed in one chunk
    report = periods_close(as_of=DEC + timedelta(days=2))

    # then acme's invoice has the adjustment, the others none, in (org, start) drafting order
    drafted = report.drafted
    assert [invoice.period_id for invoice in drafted] == [
        late_usage.period(slug, NOV).pk
        for slug in sorted(("acme", "globex", "initech"), key=lambda s: Org.objects.get(slug=s).pk)
    ]
    assert report.drafted_ids == [invoice.pk for invoice in drafted]
    assert {i.customer_name: i.subtotal for i in drafted} == {
        "Acme AI SAS": D("28.75"), "Globex GmbH": D("25.00"), "Initech SARL": D("25.00"),
    }  # fmt: skip
    assert list(
        InvoiceLine.objects.filter(kind="adjustment").values_list("invoice__org__slug", "amount")
    ) == [("acme", D("3.75"))]


def test_finalizing_many_returns_them_in_order_and_leaves_finalized_ones_as_they_are(world):
    for slug in ("a", "b", "c"):
        rated_period(world, slug=slug, charges=worked_charges(world))
    a, b, c = periods_close(as_of=AFTER_GRACE).drafted
    finalize(b.pk, as_of=AS_OF)

    ids = invoices_finalize(invoice_ids=[c.pk, b.pk, a.pk], as_of=AS_OF + timedelta(1))

    invoices = Invoice.objects.in_bulk(ids)
    assert [(i.pk, i.number, present(i.issue_date).day) for i in (invoices[pk] for pk in ids)] == [
        (c.pk, "TFR-2026-000002", 5), (b.pk, "TFR-2026-000001", 4), (a.pk, "TFR-2026-000003", 5),
    ]  # fmt: skip
    with pytest.raises(Invoice.DoesNotExist):
        invoices_finalize(invoice_ids=[a.pk, 10**9], as_of=AS_OF)


def test_a_chunk_stores_every_finalized_field_exactly_as_finalization_computed_it(
    world, monkeypatch
):
    """Issue 18: a chunk is written by one ``UPDATE … FROM (VALUES …)``, not ``bulk_update``;
    every frozen field reads back as computed: text with quotes, newlines and non-Latin
    letters, the issuer's details (JSON), amounts, dates, the finalization time, NULLs."""
    for slug in ("a", "b", "c"):
        rated_period(world, slug=slug, charges=worked_charges(world))
    periods_close(as_of=AFTER_GRACE)
    name, address = 'L\'Été « Ørsted » "Ωmega" SAS', "Straße 1\n10115 Berlin; DROP --"
    Org.objects.filter(slug="b").update(name=name, billing_address=address)
    computed: dict[int, dict[str, object]] = {}
    write = finalization._update_rows

    def spy(invoices, fields):
        computed.update({i.pk: {f: getattr(i, f) for f in fields} for i in invoices})
        write(invoices, fields)

    monkeypatch.setattr(finalization, "_update_rows", spy)

    ids = invoices_finalize(as_of=AS_OF)

    fields = finalization.FINALIZED_FIELDS
    stored = {i.pk: {f: getattr(i, f) for f in fields} for i in Invoice.objects.filter(pk__in=ids)}
    assert set(computed) == set(ids)
    assert stored == computed
    b = Invoice.objects.get(org__slug="b")
    assert (b.customer_name, b.customer_address, b.status) == (name, address, "finalized")
    assert b.issuer_details == computed[b.pk]["issuer_details"]
