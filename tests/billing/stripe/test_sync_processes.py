"""The Stripe sync across real processes (issue 15): gunicorn finalizes, a Celery worker
syncs, a second worker resumes what the first left, and gunicorn applies Stripe's webhook.
Every process talks to one fake Stripe over HTTP (``STRIPE_API_BASE``), whose state is kept
in Redis: another ``FakeStripe`` on the same store (another process, a restarted server)
sees the same customers and invoices."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from billing.invoicing.drafting import periods_close
from billing.invoicing.models import Invoice, StripeInvoiceSync
from tenancy.services import staff_user_create
from testing.stripe_fake import FakeStripe, RedisStore
from testing.stripe_server import StripeServer

from ...reliability.servers import free_port
from ...support.waiting import wait_until
from ...support.workers import ROOT, Workers, worker_database_url
from ..invoicing.conftest import AFTER_GRACE, rated_period, worked_charges, world  # noqa: F401

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def _gunicorn(
    tmp_path: Path, stripe_env: dict[str, str], workers: Workers
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ, **stripe_env, **workers.broker.env(),
        "DATABASE_URL": worker_database_url(),
        # DEBUG: cookies that are not Secure-only, for plain HTTP on loopback.
        "TESSERA_VAR_DIR": str(tmp_path), "DEBUG": "true",
        "SECRET_KEY": "sync-" + "k" * 50, "ALLOWED_HOSTS": "127.0.0.1",
        "TESSERA_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", "2", "-b",
               f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(up), "gunicorn did not come up"
    return proc, url


def _login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
    token = _csrf(client, "/accounts/login/")
    client.post("/accounts/login/", data={"username": "fin", "password": "fin-pass-1234",
                                          "csrfmiddlewaretoken": token})  # fmt: skip
    return client


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def test_finalize_under_gunicorn_sync_by_two_workers_then_the_webhook(
    settings,
    tmp_path,
    world,  # noqa: F811
):
    rated_period(world, charges=worked_charges(world))
    draft = periods_close(as_of=AFTER_GRACE).drafted[0]
    staff_user_create(username="fin", role="finance", password="fin-pass-1234")
    workers = Workers()  # clears this run's broker keys: the fake's store is one of them
    store = RedisStore(workers.broker.url, f"{workers.broker.prefix}stripe-fake")
    server = StripeServer(FakeStripe(store=store)).__enter__()
    fake = server.fake
    stripe_env = {"STRIPE_API_KEY": "sk_test_tessera_sync", "STRIPE_API_BASE": server.base,
                  "STRIPE_WEBHOOK_SECRET": fake.webhook_secret}  # fmt: skip
    fake.inject("500", path=r"^/v1/invoiceitems$", times=100)  # the first worker fails there
    web, url = _gunicorn(tmp_path, stripe_env, workers)
    workers.env.update(stripe_env)  # every worker started below talks to this Stripe fake
    try:
        first = workers.start()
        client = _login(url)
        token = _csrf(client, "/finance/invoices/?status=draft")
        form = {"invoice": str(draft.pk), "csrfmiddlewaretoken": token}
        response = client.post("/finance/invoices/finalize/", data=form)
        assert "Finalized 1: TFR-2026-000001" in response.text

        # The first worker creates the customer and the invoice, then fails on the items.
        def failed() -> bool:
            return StripeInvoiceSync.objects.filter(state="failed").exclude(
                stripe_invoice_id="").exists()  # fmt: skip

        assert wait_until(failed)
        first.kill()
        first.wait(timeout=30)
        stripe_id = StripeInvoiceSync.objects.get().stripe_invoice_id
        fake.clear_faults()

        # Another worker process resumes: it finds the invoice the first one created.
        workers.start()
        workers.send("billing.stripe.sync_pending")
        assert wait_until(lambda: StripeInvoiceSync.objects.filter(state="done").exists())
        fake = FakeStripe(store=store).refresh()  # what is kept in Redis
        assert list(fake.invoices) == [stripe_id]
        assert len(fake.customers) == 1
        invoice = Invoice.objects.get(pk=draft.pk)
        assert fake.invoices[stripe_id]["status"] == "open"
        assert fake.invoices[stripe_id]["amount_due"] == int(invoice.total * 100)

        # Stripe says it is paid; gunicorn applies the signed webhook.
        fake.client().v1.invoices.pay(stripe_id, params={"paid_out_of_band": True})
        payload, header = fake.signed_webhook(fake.last_event("invoice.paid"))
        hook = httpx.post(url + "/api/v1/stripe/webhook", content=payload, timeout=30,
                          headers={"Stripe-Signature": header,
                                   "Content-Type": "application/json"})  # fmt: skip
        assert hook.status_code == 200, hook.text
        assert Invoice.objects.get(pk=draft.pk).status == "paid"
    finally:
        web.terminate()
        web.wait(timeout=30)
        workers.stop()
        server.__exit__()
