"""Invoicing under concurrency, on PostgreSQL with real threads and connections."""

import threading
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from django.db import connection

from audit.models import AuditEntry
from billing.invoicing import finalization
from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice

from ...factories import IssuerFactory
from ...support.invoicing import finalize
from .conftest import AFTER_GRACE, rated_period, worked_charges

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_threads(targets: list, *, timeout: float = 120) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target):
        def run():
            try:
                barrier.wait()
                target()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return errors


def test_two_concurrent_close_runs_make_one_invoice_per_period(world):
    for slug in ("acme", "globex", "initech"):
        rated_period(world, slug=slug, charges=worked_charges(world))
    reports = []

    errors = _run_threads([lambda: reports.append(periods_close(as_of=AFTER_GRACE))] * 2)

    assert errors == []
    assert Invoice.objects.count() == 3
    assert sorted(len(r.drafted_ids) + r.already for r in reports) == [3, 3]
    assert sum(len(r.drafted_ids) for r in reports) == 3


def test_fifty_concurrent_finalizations_across_two_issuers_are_gapless(world):
    germany = IssuerFactory.create(key="tessera-de", legal_name="Tessera Cloud GmbH", country="DE",
                            vat_id="DE123456789", invoice_prefix="TDE")  # fmt: skip
    for i in range(50):
        rated_period(world, slug=f"org-{i:02d}", issuer=germany if i % 2 else world.issuer,
                     charges=worked_charges(world)[:1])  # fmt: skip
    ids = [i.pk for i in periods_close(as_of=AFTER_GRACE).drafted]
    as_of = datetime(2026, 11, 5, tzinfo=UTC)

    errors = _run_threads([lambda pk=pk: finalize(pk, as_of=as_of) for pk in ids])

    assert errors == []
    numbers: dict[str, list[int]] = defaultdict(list)
    for issuer, year, sequence, number in Invoice.objects.values_list(
        "issuer__key", "number_year", "sequence", "number"
    ):
        assert sequence is not None  # a finalized invoice has its number
        numbers[f"{issuer}/{year}"].append(sequence)
        assert number.endswith(f"-{year}-{sequence:06d}")
    assert {k: sorted(v) for k, v in numbers.items()} == {
        "tessera-fr/2026": list(range(1, 26)),
        "tessera-de/2026": list(range(1, 26)),
    }


def test_batched_runs_racing_single_finalizations_number_each_invoice_once_without_gaps(
    world, monkeypatch
):
    # given 30 drafts of two issuers, finalized five to a chunk
    germany = IssuerFactory.create(key="tessera-de", legal_name="Tessera Cloud GmbH", country="DE",
                            vat_id="DE123456789", invoice_prefix="TDE")  # fmt: skip
    for i in range(30):
        rated_period(world, slug=f"org-{i:02d}", issuer=germany if i % 3 else world.issuer,
                     charges=worked_charges(world)[:1])  # fmt: skip
    ids = [i.pk for i in periods_close(as_of=AFTER_GRACE).drafted]
    monkeypatch.setattr(finalization, "CHUNK", 5)
    as_of = datetime(2026, 11, 5, tzinfo=UTC)

    # when two whole runs and ten single finalizations (from the last) race
    errors = _run_threads(
        [lambda: invoices_finalize(as_of=as_of)] * 2
        + [lambda pk=pk: finalize(pk, as_of=as_of) for pk in ids[::-3]]
    )

    # then no deadlock or error, and each issuer's numbers run 1..n once each
    assert errors == []
    numbers: dict[str, list[int]] = defaultdict(list)
    for issuer, sequence in Invoice.objects.values_list("issuer__key", "sequence"):
        assert sequence is not None  # a finalized invoice has its number
        numbers[issuer].append(sequence)
    assert {k: sorted(v) for k, v in numbers.items()} == {
        "tessera-fr": list(range(1, 11)),
        "tessera-de": list(range(1, 21)),
    }
    assert AuditEntry.objects.filter(action="invoice.finalized").count() == 30
