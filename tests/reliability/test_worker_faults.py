"""SIGKILL a real Celery worker (Redis broker, PostgreSQL) in the middle of rating, period
close, finalization and the Stripe sync; restart it; send what beat sends; and check that every
figure is what an uninterrupted run gives and that nothing happened twice: one invoice per
period, gapless numbers, exactly one Stripe invoice per invoice.

The kill lands at a named point (``hooked.py``): the N-th call of a function returns, the
process says so through a file and sleeps inside the caller's transaction, and the test kills
it there. For Stripe, the fake is served over HTTP by the test, which applies the N-th item
request, holds its answer and kills the worker: Stripe has it, Tessera never heard."""

import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone

from billing.invoicing.drafting import periods_close
from billing.invoicing.finalization import invoices_finalize
from billing.invoicing.models import Invoice, StripeInvoiceSync
from billing.models import BillingPeriod, RatedCharge
from billing.rating.due import periods_due
from billing.rating.engine import compute_period
from billing.services import period_rate
from billing.stripe import tasks as stripe_tasks
from testing.stripe_server import StripeServer

from ..support.invoicing import finalize
from ..support.narrow import present
from ..support.waiting import wait_until
from ..support.workers import ROOT
from .conftest import build_world

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

HOOKED = "tests.reliability.hooked"
ORGS = 12


@pytest.fixture
def signal_file(tmp_path: Path) -> Path:
    return tmp_path / "paused"


def kill_when_paused(proc: subprocess.Popen[bytes], signal_file: Path) -> None:
    assert wait_until(signal_file.exists), "the worker never reached the pause point"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    signal_file.unlink()


def rate_all_in_process() -> None:
    for period in BillingPeriod.objects.order_by("pk"):
        period_rate(period_id=period.pk)


def assert_rated_as_uninterrupted(world: Any) -> None:
    """Every period rated through its end, its stored charges equal to a fresh computation
    (what an uninterrupted run stores), and its subtotal the exact figure."""
    for period in BillingPeriod.objects.select_related("org").order_by("pk"):
        assert period.status == BillingPeriod.Status.CLOSING, period.org.slug
        stored = sorted(
            (c.product_id, c.kind, c.line, c.quantity, c.unit_price, c.amount)
            for c in RatedCharge.objects.filter(period=period)
        )
        assert period.rated_as_of is not None
        fresh = compute_period(period=period, as_of=period.rated_as_of)
        assert stored == sorted(
            (line.product.pk if line.product else None, line.kind, line.line, line.quantity,
             line.unit_price, line.amount)
            for line in fresh.lines
        )  # fmt: skip
        assert period.subtotal == world.subtotal[period.org.slug]


def assert_invoiced_once(world: Any, *, finalized: bool) -> list[Invoice]:
    invoices = list(Invoice.objects.select_related("org").order_by("sequence", "pk"))
    assert Counter(i.period_id for i in invoices) == Counter(
        BillingPeriod.objects.values_list("pk", flat=True)
    )
    assert {i.org.slug: i.total for i in invoices} == {s: world.total(s) for s in world.slugs}
    if finalized:
        assert [i.sequence for i in invoices] == list(range(1, len(world.slugs) + 1))
        assert len({i.number for i in invoices}) == len(invoices)
    return invoices


def test_worker_killed_mid_rating_then_beat_rates_everything_once(db, workers, signal_file):
    world = build_world(ORGS)
    # The 5th rating is killed after writing its charges, before its commit.
    victim = workers.start(
        HOOKED, TESSERA_REL_PAUSE="billing.services:_replace:5", TESSERA_REL_SIGNAL=str(signal_file)
    )
    workers.send("billing.rate_due")
    kill_when_paused(victim, signal_file)
    rated = BillingPeriod.objects.filter(rated_at__isnull=False).count()
    assert rated == 4  # the fifth rolled back with the dead worker's connection

    workers.start(HOOKED)
    workers.send("billing.rate_due")  # what beat sends every TESSERA_RATING_INTERVAL_SECONDS
    assert wait_until(lambda: not periods_due(now=timezone.now()))

    assert_rated_as_uninterrupted(world)
    assert RatedCharge.objects.aggregate(s=Sum("amount"))["s"] == sum(world.subtotal.values())


def test_worker_killed_mid_close_then_beat_drafts_one_invoice_per_period(db, workers, signal_file):
    world = build_world(ORGS)
    rate_all_in_process()
    # Chunks of 4 periods per transaction; killed in the middle of the second chunk.
    victim = workers.start(
        HOOKED,
        TESSERA_REL_SET="billing.invoicing.drafting:CHUNK:4",
        TESSERA_REL_PAUSE="billing.invoicing.drafting:_draft:2",
        TESSERA_REL_SIGNAL=str(signal_file),
    )
    workers.send("billing.invoicing.close_periods")
    kill_when_paused(victim, signal_file)
    assert Invoice.objects.count() == 4  # the first chunk committed, the second rolled back
    assert BillingPeriod.objects.filter(status=BillingPeriod.Status.INVOICED).count() == 4

    workers.start(HOOKED)
    workers.send("billing.invoicing.close_periods")  # beat, hourly
    workers.send("billing.invoicing.close_periods")  # and again: nothing new
    assert wait_until(lambda: Invoice.objects.count() == ORGS)
    assert wait_until(lambda: workers.broker.queued() == 0)

    assert_invoiced_once(world, finalized=False)
    assert set(Invoice.objects.values_list("status", flat=True)) == {"draft"}


def test_finalize_killed_mid_chunk_then_rerun_numbers_gaplessly(db, workers, signal_file):
    world = build_world(ORGS)
    rate_all_in_process()
    periods_close(as_of=timezone.now())
    env = {
        **workers.env,
        "TESSERA_REL_SET": "billing.invoicing.finalization:CHUNK:5",
        "TESSERA_REL_PAUSE": "billing.invoicing.finalization:_finalize_drafts:2",
        "TESSERA_REL_SIGNAL": str(signal_file),
    }
    command = [sys.executable, "-m", HOOKED, "finalize_invoices"]
    victim = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    kill_when_paused(victim, signal_file)
    finalized = Invoice.objects.exclude(status="draft")
    assert sorted(map(present, finalized.values_list("sequence", flat=True))) == [1, 2, 3, 4, 5]

    rerun = {k: v for k, v in env.items() if not k.startswith("TESSERA_REL_PAUSE")}
    subprocess.run(command, cwd=ROOT, env=rerun, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(command, cwd=ROOT, env=rerun, check=True, stdout=subprocess.DEVNULL)

    invoices = assert_invoiced_once(world, finalized=True)
    year = timezone.now().year
    assert [i.number for i in invoices] == [f"TFR-{year}-{n:06d}" for n in range(1, ORGS + 1)]


def finalize_all_in_process() -> list[Invoice]:
    rate_all_in_process()
    periods_close(as_of=timezone.now())
    invoices_finalize()
    return list(Invoice.objects.order_by("pk"))


def assert_stripe_holds_each_invoice_once(fake: Any, invoices: list[Invoice]) -> None:
    by_ours = Counter(i["metadata"]["tessera_invoice_id"] for i in fake.invoices.values())
    assert by_ours == Counter(str(i.pk) for i in invoices)
    for invoice in invoices:
        [theirs] = [s for s in fake.invoices.values()
                    if s["metadata"]["tessera_invoice_id"] == str(invoice.pk)]  # fmt: skip
        items = [i["amount"] for i in fake.invoice_items.values() if i["invoice"] == theirs["id"]]
        assert (theirs["status"], theirs["number"]) == ("open", invoice.number)
        assert sum(items) == theirs["total"] == int(invoice.total * 100)
    assert len(fake.customers) == len({i.org_id for i in invoices})
    assert set(StripeInvoiceSync.objects.values_list("state", flat=True)) == {"done"}


def test_worker_killed_mid_stripe_sync_then_sweep_leaves_one_stripe_invoice_each(db, workers):
    build_world(4)
    invoices = finalize_all_in_process()
    with StripeServer() as stripe:
        # Two items per invoice (the usage line, VAT): the 5th is the third invoice's first.
        # Stripe applies it; the worker dies before hearing so.
        stripe.hold("post", r"^/v1/invoiceitems$", 5)
        victim = workers.start(HOOKED, TESSERA_REL_STRIPE_BASE=stripe.base)
        workers.send("billing.stripe.sync_pending")  # beat, every 5 minutes
        assert stripe.held.wait(120)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        stripe.release.set()
        assert len(stripe.fake.invoice_items) == 5
        leased = StripeInvoiceSync.objects.get(locked_until__gt=timezone.now())
        assert leased.items == {}  # applied there, unknown here

        workers.start(HOOKED, TESSERA_REL_STRIPE_BASE=stripe.base)
        workers.send("billing.stripe.sync_pending")
        others = StripeInvoiceSync.objects.exclude(pk=leased.pk)
        assert wait_until(lambda: others.filter(state="done").count() == 3)
        leased.refresh_from_db()
        assert leased.state != "done"  # the dead worker's lease still holds it
        # Five minutes later the lease has expired; beat sends the sweep again.
        StripeInvoiceSync.objects.filter(pk=leased.pk).update(
            locked_until=timezone.now() - timedelta(seconds=1)
        )
        workers.send("billing.stripe.sync_pending")
        assert wait_until(lambda: not StripeInvoiceSync.objects.exclude(state="done").exists())

        assert_stripe_holds_each_invoice_once(stripe.fake, invoices)


def test_an_enqueue_lost_after_commit_is_run_by_the_beat_sweep(db, workers, settings, monkeypatch):
    """The broker is down when finalization commits: no sync task exists. Beat's
    ``sync_pending`` finds the invoice all the same."""
    build_world(2)
    settings.STRIPE_API_KEY = "sk_test_tessera_rel"  # Stripe on: finalizing enqueues syncs

    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(stripe_tasks.sync_invoice, "delay", broker_down)
    rate_all_in_process()
    drafts = periods_close(as_of=timezone.now()).drafted
    invoices = [finalize(d.pk) for d in drafts]  # robust on_commit: logged
    assert not StripeInvoiceSync.objects.exists()

    with StripeServer() as stripe:
        workers.start(HOOKED, TESSERA_REL_STRIPE_BASE=stripe.base)
        workers.send("billing.stripe.sync_pending")
        assert wait_until(lambda: StripeInvoiceSync.objects.filter(state="done").count() == 2)
        assert_stripe_holds_each_invoice_once(stripe.fake, invoices)


def test_a_rating_enqueue_lost_after_rollup_is_run_by_the_beat_sweep(
    db, workers, settings, monkeypatch
):
    """Rollups commit and stamp their periods; the ``rate_due`` they ask for is lost. Beat's
    ``rate_due`` rates every stamped period."""
    world = build_world(3)
    rate_all_in_process()
    late = BillingPeriod.objects.order_by("pk").first()
    assert late is not None
    BillingPeriod.objects.filter(pk=late.pk).update(usage_changed_at=timezone.now())
    assert periods_due(now=timezone.now()) == [late.pk]

    workers.start(HOOKED)
    workers.send("billing.rate_due")
    assert wait_until(lambda: not periods_due(now=timezone.now()))
    assert_rated_as_uninterrupted(world)
    assert Decimal(0) < RatedCharge.objects.aggregate(s=Sum("amount"))["s"]
