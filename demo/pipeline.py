"""The demo's steps, each one the existing command, service or collector doing its own job:
the collectors are run as the processes they are, against the real ingestion API served by
gunicorn; billing runs the management commands finance would run, month by month."""

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from django.conf import settings
from django.core.management import call_command

from billing.invoicing.models import Invoice, StripeInvoiceSync
from billing.invoicing.pdf import render_invoice_pdf
from billing.stripe.client import stripe_enabled
from metering.models import UsageEvent
from tenancy.models import Org
from tenancy.services import api_key_create

from . import scenario
from .scenario import Span, midnight

ROOT = Path(__file__).resolve().parent.parent
Say = Callable[[str], None]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Inputs:
    fleets: dict[str, Path]
    gateway_log: Path
    gateway_records: int
    vllm_dir: Path
    vllm_scrapes: int
    expected_events: int  # roughly: what the collectors will send


def inputs_write(*, span: Span, workdir: Path) -> Inputs:
    """The files a real cloud would have: fleet descriptions for the simulated NVML, the
    gateway's usage log, the vLLM server's recorded metrics. Same content on every run."""
    fleet_paths = {}
    for node, fleet in scenario.fleets(span).items():
        path = workdir / f"fleet-{node}.yaml"
        path.write_text(yaml.safe_dump(fleet, sort_keys=False), encoding="utf-8")
        fleet_paths[node] = path
    log = workdir / "gateway" / "usage.jsonl"
    records = scenario.write_gateway_log(span, log)
    replay = workdir / "vllm-replay"
    scrapes = scenario.write_vllm_recording(span, replay)
    gpu_windows = sum(
        int((hold.end - hold.start) / timedelta(hours=1)) for hold in scenario.schedule(span)
    )
    return Inputs(
        fleets=fleet_paths,
        gateway_log=log,
        gateway_records=records,
        vllm_dir=replay,
        vllm_scrapes=scrapes,
        expected_events=gpu_windows + records + scrapes // 4,
    )


@contextmanager
def ingestion_server(*, span: Span, workdir: Path, now: datetime) -> Iterator[str]:
    """The real ingestion API (gunicorn, 2 workers) on a free localhost port. Its late window
    is raised to reach back to the span's start: the API refuses older events otherwise."""
    port = free_port()
    env = {
        **os.environ,
        "TESSERA_LATE_WINDOW_DAYS": str((now - span.start).days + 2),
        # Without a broker, a rollup after each batch would run inside the request and
        # hold SQLite's write lock; the demo rolls up as a step of its own instead.
        "TESSERA_ROLLUP_ON_INGEST": os.environ.get(
            "TESSERA_ROLLUP_ON_INGEST", "1" if os.environ.get("CELERY_BROKER_URL") else "0"
        ),
    }
    log = open(workdir / "logs" / "ingestion-api.log", "ab")
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "120"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the ingestion API exited; see {log.name}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingestion API did not start; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Collectors:
    commands: dict[str, list[str]] = field(default_factory=dict)


def collector_commands(*, span: Span, inputs: Inputs, workdir: Path, api_url: str) -> Collectors:
    """The real collectors, as an operator would start them: one GPU collector per node on
    the simulated NVML (a simulated clock over the span, hourly windows), the token collector
    on the gateway log and on the recorded vLLM metrics."""
    py = sys.executable
    spools = workdir / "spools"
    found = Collectors()
    for node, fleet in inputs.fleets.items():
        found.commands[f"gpu {node}"] = [
            py, "-m", "metering.collectors.gpu", "--simulate", str(fleet),
            "--simulate-from", iso(span.start), "--simulate-to", iso(span.end),
            "--window-seconds", "3600", "--sample-seconds", "900",
            "--api-url", api_url, "--spool", str(spools / f"gpu-{node}.sqlite3"),
            "--log-level", "WARNING",
        ]  # fmt: skip
    gateway = workdir / "tokens-gateway.yaml"
    gateway.write_text(
        yaml.safe_dump(
            {
                "api_url": api_url,
                "spool": str(spools / "tokens-gateway.sqlite3"),
                "logs": [{"path": str(inputs.gateway_log), "source": "tessera-gateway-demo"}],
                "log_level": "WARNING",
            }
        ),
        encoding="utf-8",
    )
    found.commands["tokens gateway"] = [
        py, "-m", "metering.collectors.tokens", "--config", str(gateway), "--once",
    ]  # fmt: skip
    vllm = workdir / "tokens-vllm.yaml"
    vllm.write_text(
        yaml.safe_dump(
            {
                "api_url": api_url,
                "spool": str(spools / "tokens-vllm.sqlite3"),
                "window_seconds": 3600,
                "endpoints": [
                    {
                        "name": scenario.VLLM_ENDPOINT,
                        "org": "acme",
                        "url": f"file://{inputs.vllm_dir / scenario.VLLM_ENDPOINT}/latest.prom",
                    }
                ],
                "log_level": "WARNING",
            }
        ),
        encoding="utf-8",
    )
    found.commands["tokens vllm"] = [
        py, "-m", "metering.collectors.tokens", "--config", str(vllm),
        "--replay", str(inputs.vllm_dir),
    ]  # fmt: skip
    return found


def collectors_run(
    *, collectors: Collectors, key: str, workdir: Path, expected: int, progress: Say
) -> dict[str, float]:
    """Run every collector at once; report events stored as they arrive; fail on any exit
    other than 0 (each one exits 0 only once its spool is empty: everything delivered)."""
    (workdir / "spools").mkdir(exist_ok=True)
    env = {**os.environ, "TESSERA_COLLECTOR_KEY": key}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # collectors know nothing of Django
    before = UsageEvent.objects.count()
    started = time.monotonic()
    procs = {}
    for name, command in collectors.commands.items():
        log = open(workdir / "logs" / f"{name.replace(' ', '-')}.log", "ab")
        procs[name] = (subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log), log)
    took: dict[str, float] = {}
    while len(took) < len(procs):
        for name, (proc, _) in procs.items():
            if name not in took and proc.poll() is not None:
                took[name] = time.monotonic() - started
        stored = UsageEvent.objects.count() - before
        progress(
            f"events stored {stored:>7,} of ~{expected:,}   "
            f"collectors done {len(took)}/{len(procs)}"
        )
        time.sleep(0.5)
    failed = []
    for name, (proc, log) in procs.items():
        log.close()
        if proc.returncode != 0:
            failed.append(f"{name} (exit {proc.returncode}, see {log.name})")
    if failed:
        raise RuntimeError("collector(s) failed: " + ", ".join(failed))
    return took


def quiet(name: str, *args: Any, log: Path, **options: Any) -> str:
    """Run a management command, its output kept in the demo's log, not on the screen."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err, **options)
    finally:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"$ manage.py {name} {' '.join(map(str, args))} {options}\n")
            handle.write(out.getvalue() + err.getvalue())
    return out.getvalue()


def bill(*, span: Span, workdir: Path, progress: Say) -> list[Path]:
    """Roll up, then month by month as finance would, each at the end of its grace window:
    rate, close (draft invoices), finalize (numbers, dates; pushes to Stripe when enabled).
    Then rate once more as of now, so the portal's current period is up to date."""
    log = workdir / "logs" / "commands.log"
    progress("rolling up")
    quiet("rollup", log=log)
    grace = timedelta(days=settings.TESSERA_GRACE_DAYS)
    for month in span.months:
        closing = midnight(scenario.add_months(month, 1)) + grace
        label = f"{month:%Y-%m}"
        progress(f"{label}: rating as of {closing:%Y-%m-%d}")
        quiet("rate", as_of=iso(closing), log=log)
        progress(f"{label}: closing the period")
        quiet("close_periods", as_of=iso(closing), force=True, log=log)
        progress(f"{label}: finalizing the invoices")
        quiet("finalize_invoices", period=label, as_of=iso(closing), log=log)
    quiet("rate", log=log)
    exports = []
    for month in span.months:
        path = workdir / f"invoices-{month:%Y-%m}.json"
        quiet("export_invoices", period=f"{month:%Y-%m}", format="json", output=str(path), log=log)
        exports.append(path)
    # Receivables: the earliest invoices are past their due date by now (finance's overdue list).
    quiet("mark_overdue", log=log)
    return exports


def pdfs_render(*, span: Span, workdir: Path) -> list[Path]:
    target = workdir / "invoices"
    target.mkdir(exist_ok=True)
    written = []
    for invoice in invoices_of(span):
        path = target / f"{invoice.number}.pdf"
        path.write_bytes(render_invoice_pdf(invoice))
        written.append(path)
    return written


def stripe_sync(*, span: Span, workdir: Path) -> str:
    """Push what finalization did not (finalizing already asks for each invoice's sync)."""
    if not stripe_enabled():
        return "Stripe: not configured (STRIPE_API_KEY); skipped"
    quiet("sync_stripe", log=workdir / "logs" / "commands.log")
    invoices = invoices_of(span)
    done = StripeInvoiceSync.objects.filter(
        invoice__in=invoices, state=StripeInvoiceSync.State.DONE
    ).count()
    return f"Stripe (fake): {done} of {len(invoices)} invoices pushed and finalized there"


def invoices_of(span: Span) -> list[Invoice]:
    return list(
        Invoice.objects.filter(
            period_start__gte=midnight(span.first_month),
            period_start__lt=midnight(scenario.add_months(span.last_month, 1)),
        )
        .exclude(status=Invoice.Status.DRAFT)
        .select_related("org")
        .prefetch_related("taxes")
        .order_by("period_start", "org__slug")
    )


def summary_rows(exports: list[Path]) -> list[dict[str, str]]:
    """One row per exported invoice, from the export itself (what finance would send)."""
    rows = []
    for path in exports:
        for doc in json.loads(path.read_text(encoding="utf-8")):
            taxes = doc["taxes"]
            rows.append(
                {
                    "number": doc["number"],
                    "org": doc["org"],
                    "period": doc["period_start"][:7],
                    "currency": doc["currency"],
                    "subtotal": doc["subtotal"],
                    "credits": doc["credits"],
                    "tax": doc["tax_total"],
                    "tax_reason": ", ".join(
                        f"{t['reason']} {Decimal(t['rate']).normalize():f}%" for t in taxes
                    ),
                    "total": doc["total"],
                    "lines": str(len(doc["lines"])),
                }
            )
    return rows


def collector_key() -> str:
    return api_key_create(name=f"demo-collector-{datetime.now(UTC):%Y%m%d-%H%M%S}").raw_key


def notifications_summary(*, org: Org, sink: Any) -> str:
    """What acme's alerts and webhook endpoint did while the months were billed."""
    from billing.alerts.models import AlertFiring
    from webhooks.models import WebhookDelivery

    fired = AlertFiring.objects.filter(org=org).count()
    deliveries = WebhookDelivery.objects.filter(endpoint__org=org)
    done = deliveries.filter(status=WebhookDelivery.Status.SUCCEEDED).count()
    return (
        f"Alerts: {fired} fired for {org.slug} (emails printed above; /portal/alerts); "
        f"webhooks: {done} of {deliveries.count()} deliveries received, signatures verified, "
        f"by {sink.url} (kept in {sink.directory})"
    )


def unbilled_line() -> str:
    """What the demo leaves for finance to act on (SPEC §3 "Unbilled usage")."""
    from billing.rating.unbilled import default_window, unbilled_usage
    from tenancy.models import Org

    start, end = default_window()
    rows = unbilled_usage(orgs=Org.objects.all(), start=start, end=end)
    listed = "; ".join(
        f"{r.org} {r.meter} {r.dimensions} {r.quantity.normalize():f} {r.unit}: {r.reason}"
        for r in rows
    )
    return f"  Unbilled usage: {len(rows)} row(s) on /finance/unbilled/" + (
        f" ({listed})" if rows else ""
    )
