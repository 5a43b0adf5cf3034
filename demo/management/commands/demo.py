import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.settings import env
from demo import pipeline, scenario
from demo.services import (
    allocations_write,
    customer_login_ensure,
    deals_ensure,
    notifications_ensure,
    staff_logins_ensure,
)
from demo.sink import Sink
from metering.models import UsageEvent
from tenancy.models import Org
from testing.stripe_server import StripeServer

DEMO_DB = "demo.sqlite3"


class Command(BaseCommand):
    help = (
        "Run the whole job on a demo cloud: migrate, load examples/demo-catalog.yaml (dates "
        "moved onto the last two complete months), create demo logins, schedule a simulated "
        "fleet, run the real GPU and token collectors through the real ingestion API, then "
        "roll up, rate, close, finalize, render PDFs, export JSON, sync to the Stripe fake, "
        "and serve the portals. Without DATABASE_URL it uses var/demo.sqlite3, rebuilt from "
        "scratch on every run; with DATABASE_URL it uses that database and deletes nothing "
        "(every step is idempotent, so a re-run adds nothing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="portal port (8000)")
        parser.add_argument(
            "--no-serve", action="store_true", help="stop after billing (tests, CI)"
        )
        parser.add_argument(
            "--days",
            type=int,
            help="simulate only the last N days of the two months (both are still billed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not os.environ.get("DATABASE_URL"):
            self._run_on_demo_database(options)  # does not return
        self.stripe_fake_serve()
        started = time.monotonic()
        now = datetime.now(UTC)
        span = scenario.span_for(now, options["days"])
        workdir = env.VAR_DIR / "demo"
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.total_steps = 7
        self.step_no = 0

        self.step("Database, logins, catalog")
        pipeline.quiet("migrate", log=workdir / "logs" / "commands.log", interactive=False)
        logins = staff_logins_ensure()
        catalog = workdir / "catalog.yaml"
        catalog.write_text(
            "# examples/demo-catalog.yaml with its dates moved by "
            f"{span.shift_months} month(s) (manage.py demo)\n"
            + yaml.safe_dump(scenario.shifted_catalog(span), sort_keys=False),
            encoding="utf-8",
        )
        pipeline.quiet("load_catalog", str(catalog), log=workdir / "logs" / "commands.log")
        acme = Org.objects.get(slug="acme")
        logins.insert(0, customer_login_ensure(org=acme))
        # acme's owner sets alerts and a webhook endpoint; its receiver runs in this process.
        sink = Sink(workdir / "webhooks", [])
        sink.secrets.extend(notifications_ensure(org=acme, url=sink.url))
        self.say(
            f"  {Org.objects.count()} orgs; billing {span.first_month:%B %Y} and "
            f"{span.last_month:%B %Y}; simulating {pipeline.iso(span.start)} .. "
            f"{pipeline.iso(span.end)}"
        )

        self.step("Fleet, allocation schedule, gateway logs, recorded vLLM metrics")
        inputs = pipeline.inputs_write(span=span, workdir=workdir)
        holds = scenario.schedule(span)
        new = allocations_write(holds=holds)
        self.say(
            f"  {len(scenario.devices())} GPUs and MIG instances on 2 nodes, {len(holds)} "
            f"allocations ({new} new), {inputs.gateway_records:,} gateway requests, "
            f"{inputs.vllm_scrapes:,} vLLM scrapes"
        )

        self.step("Collectors -> ingestion API")
        before = UsageEvent.objects.count()
        with pipeline.ingestion_server(span=span, workdir=workdir, now=now) as url:
            self.say(f"  ingestion API (gunicorn) on {url}")
            commands = pipeline.collector_commands(
                span=span, inputs=inputs, workdir=workdir, api_url=url
            )
            took = pipeline.collectors_run(
                collectors=commands,
                key=pipeline.collector_key(),
                workdir=workdir,
                expected=inputs.expected_events,
                progress=self.progress,
            )
        stored = UsageEvent.objects.count() - before
        self.end_progress()
        self.say(
            f"  {stored:,} events accepted and stored (others were duplicates); "
            + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in took.items())
        )

        self.step("Roll up, rate, close, finalize (month by month)")
        exports = pipeline.bill(span=span, workdir=workdir, progress=self.progress)
        self.end_progress()

        self.step("Deal desk: an expansion signed, a deal awaiting approval")
        for made in deals_ensure(today=now.date()):
            lines = ", ".join(
                f"{line.quantity} × {line.product.key} from {line.start}"
                for line in made.deal.lines.all()
            )
            self.say(f"  deal {made.deal.pk} ({made.deal.org.slug}): {lines}; {made.words}")
        pipeline.quiet("rate", log=workdir / "logs" / "commands.log")

        self.step("PDFs, JSON export, Stripe")
        pdfs = pipeline.pdfs_render(span=span, workdir=workdir)
        self.say(f"  {len(pdfs)} PDFs in {pdfs[0].parent if pdfs else workdir}")
        for path in exports:
            self.say(f"  export: {path}")
        self.say("  " + pipeline.stripe_sync(span=span, workdir=workdir))

        self.step("Summary")
        self.summary(pipeline.summary_rows(exports), stored, time.monotonic() - started)
        self.say(pipeline.unbilled_line())
        self.say("  " + pipeline.notifications_summary(org=acme, sink=sink))
        if settings.DATABASES["default"]["NAME"] == str(env.VAR_DIR / DEMO_DB):
            self.say(
                f"Database: {env.VAR_DIR / DEMO_DB}; manage.py commands without DATABASE_URL "
                "open it too, as long as there is no var/tessera.sqlite3."
            )
        self.say("Logins (local demo passwords):")
        for login in logins:
            self.say(f"  {login.username:8} {login.password:14} {login.who}, {login.home}")
        if options["no_serve"]:
            return
        self.say(
            self.style.SUCCESS(
                f"Serving the portals on http://127.0.0.1:{options['port']}/ (Ctrl-C to stop)"
            )
        )
        call_command(
            "runserver", f"127.0.0.1:{options['port']}", use_reloader=False, skip_checks=True
        )

    def stripe_fake_serve(self) -> None:
        """Invoices go to a Stripe fake, never to a real Stripe account: the endpoint
        ``STRIPE_API_BASE`` names (a fake the caller serves) or, without one, a fake served here
        on 127.0.0.1 for this process and every process it starts (the ingestion API, workers
        started with its environment)."""
        if settings.STRIPE_API_BASE:
            return
        if settings.STRIPE_API_KEY:
            raise CommandError(
                "STRIPE_API_KEY is set: the demo never pushes invoices to a real Stripe "
                "account. Unset it (the demo then serves its own Stripe fake)."
            )
        server = StripeServer().__enter__()  # a daemon thread: it ends with the demo
        values = {
            "STRIPE_API_KEY": "sk_test_tessera_demo",
            "STRIPE_API_BASE": server.base,
            "STRIPE_WEBHOOK_SECRET": server.fake.webhook_secret,
        }
        for name, value in values.items():
            setattr(settings, name, value)
            os.environ[name] = value

    # The demo's own database: rebuilt from scratch, then this command again in its env.
    def _run_on_demo_database(self, options: dict[str, Any]) -> None:
        var = env.VAR_DIR
        for name in (DEMO_DB, f"{DEMO_DB}-wal", f"{DEMO_DB}-shm"):
            (var / name).unlink(missing_ok=True)
        shutil.rmtree(var / "demo", ignore_errors=True)
        demo_env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{var / DEMO_DB}",
            "STRIPE_API_KEY": "",
            "STRIPE_API_BASE": "",
            "STRIPE_WEBHOOK_SECRET": "",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        }
        demo_env.pop("CELERY_BROKER_URL", None)  # Celery in-process: the embedded default
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "demo"]
        argv += ["--port", str(options["port"])]
        if options["no_serve"]:
            argv.append("--no-serve")
        if options["days"]:
            argv += ["--days", str(options["days"])]
        self.say(f"Demo database: {var / DEMO_DB} (rebuilt from scratch)")
        sys.stdout.flush()
        os.execve(sys.executable, argv, demo_env)

    # Output.
    def say(self, text: str) -> None:
        self.stdout.write(text)

    def step(self, title: str) -> None:
        self.step_no += 1
        self.step_started = time.monotonic()
        self.progress_at = 0.0
        self.say(self.style.MIGRATE_HEADING(f"[{self.step_no}/{self.total_steps}] {title}"))

    def progress(self, text: str) -> None:
        """One line, rewritten in place on a terminal; elsewhere (CI, logs) every 5 s."""
        line = f"  {text}  ({time.monotonic() - self.step_started:.0f}s)"
        if self.stdout.isatty():
            self.stdout.write(f"\r{line:<100}", ending="")
            self.stdout.flush()
        elif time.monotonic() - self.progress_at >= 5:
            self.say(line)
            self.progress_at = time.monotonic()

    def end_progress(self) -> None:
        if self.stdout.isatty():
            self.stdout.write("")

    def summary(self, rows: list[dict[str, str]], events: int, seconds: float) -> None:
        self.say(f"  {events:,} events accepted; {len(rows)} invoices finalized; {seconds:.0f}s")
        head = f"  {'invoice':16} {'org':9} {'period':7} {'cur':3} {'subtotal':>11} "
        head += f"{'credits':>9} {'tax':>9} {'total':>11}  tax reason"
        self.say(head)
        for r in rows:
            self.say(
                f"  {r['number']:16} {r['org']:9} {r['period']:7} {r['currency']:3} "
                f"{r['subtotal']:>11} {r['credits']:>9} {r['tax']:>9} {r['total']:>11}  "
                f"{r['tax_reason']}"
            )
