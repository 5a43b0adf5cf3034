"""The demo's whole path at small scale on PostgreSQL with a real Celery worker over Redis:
``manage.py demo --no-serve --days 2`` (collectors → ingestion API → rollup → rating →
invoices → Stripe fake), then every exported invoice checked against totals computed here,
by hand, from the usage the demo generated (its fleet files, the allocations it recorded, the
gateway log, the recorded vLLM scrapes) and the prices written in examples/demo-catalog.yaml.
"""

import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml

from billing.invoicing.models import Invoice, StripeInvoiceSync
from metering.models import Allocation
from testing.stripe_server import StripeServer
from tests.support.einvoice import fatal, schematron_failures, xsd_errors

from ..support.broker import DEMO_BROKER, Broker
from ..support.waiting import wait_until
from ..support.workers import Workers

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(900),
]

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 600  # seconds: about 60 alone, several times that on a loaded machine
CENT = Decimal("0.01")
HOUR = timedelta(hours=1)
M = Decimal(1_000_000)

# examples/demo-catalog.yaml, by hand: list prices per billing unit.
VOLUME_A100 = {"USD": [(500, "1.60"), (None, "1.40")], "EUR": [(500, "1.45"), (None, "1.30")]}
GRADUATED_70B_IN = {
    "USD": [(1000, "0.90"), (None, "0.70")],
    "EUR": [(1000, "0.82"), (None, "0.64")],
}
PACKAGE_70B_OUT = {"USD": (10, "9.00"), "EUR": (10, "8.20")}
PER_UNIT = {
    "USD": {"h100-eu-north": "2.50", "h100-us-east": "2.40", "h200-eu-north": "3.20",
            "h200-us-east": "3.10", "b200-eu-north": "5.50", "b200-us-east": "5.30",
            "llama-8b-input": "0.10", "llama-70b-cached-input": "0.09",
            "llama-8b-cached-input": "0.01", "llama-8b-output": "0.20"},
    "EUR": {"h100-eu-north": "2.30", "h200-eu-north": "2.95", "b200-eu-north": "5.05",
            "llama-8b-input": "0.09", "llama-70b-cached-input": "0.08",
            "llama-8b-cached-input": "0.009", "llama-8b-output": "0.18"},
}  # fmt: skip
CURRENCY = {"acme": "USD", "globex": "USD", "umbrella": "USD", "initech": "EUR", "hooli": "EUR"}
DISCOUNT: dict[str, dict[str | None, str]] = {
    "acme": {"h100-eu-north": "10"},
    "umbrella": {None: "5"},
}
VAT = {"acme": Decimal(20), "initech": Decimal(20)}  # FR issuer, FR customers; others 0
MINIMUM = {"initech": Decimal("5000.00")}
CREDITS = {"acme": [Decimal("500")], "umbrella": [Decimal("300"), Decimal("2000")]}


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def list_amount(product: str, quantity: Decimal, currency: str) -> Decimal:
    """Unrounded list amount of a period's quantity (tiers reset every period)."""
    if product == "a100-eu-north":  # volume: the whole quantity at the tier it reaches
        for up_to, price in VOLUME_A100[currency]:
            if up_to is None or quantity <= up_to:
                return quantity * Decimal(price)
    if product == "llama-70b-input":  # graduated: each tier at its own price
        total, below = Decimal(0), Decimal(0)
        for up_to, price in GRADUATED_70B_IN[currency]:
            top = quantity if up_to is None else min(quantity, Decimal(up_to))
            if top > below:
                total += (top - below) * Decimal(price)
            below = top if up_to is None else Decimal(up_to)
        return total
    if product == "llama-70b-output":  # package: a started block is billed whole
        size, price = PACKAGE_70B_OUT[currency]
        return math.ceil(quantity / size) * Decimal(price)
    return quantity * Decimal(PER_UNIT[currency][product])


def discounted(org: str, product: str, amount: Decimal) -> Decimal:
    rules = DISCOUNT.get(org, {})
    percent = Decimal(rules.get(product, rules.get(None, "0")))
    return amount * (100 - percent) / 100


def month_of(moment: datetime) -> date:
    return moment.date().replace(day=1)


class Usage:
    """What the demo generated, read back from its files and the allocations it recorded."""

    def __init__(self, workdir: Path) -> None:
        # (org, product, hour) -> GPU-seconds, and (org, month, product) -> billing units
        self.gpu: dict[tuple[str, str, datetime], Decimal] = defaultdict(Decimal)
        self.tokens: dict[tuple[str, date, str], Decimal] = defaultdict(Decimal)
        self._gpu(workdir)
        self._gateway(workdir / "gateway" / "usage.jsonl")
        self._vllm(workdir / "vllm-replay" / "acme-llama-70b")

    def _gpu(self, workdir: Path) -> None:
        devices, unbillable = {}, set()
        for path in workdir.glob("fleet-*.yaml"):
            fleet = yaml.safe_load(path.read_text())
            for gpu in fleet["gpus"]:
                model = gpu["model"].split("-")[0].lower()
                product = f"{model}-{fleet['region']}"
                for instance in gpu.get("mig") or [{"uuid": gpu["uuid"], "profile": "7g"}]:
                    share = Decimal(int(instance["profile"][0])) / 7
                    devices[(fleet["node"], instance["uuid"])] = (product, share, gpu["uuid"])
            for fault in fleet.get("faults", []):
                # Samples every 15 minutes: the window of the first sample at or after the
                # fault is not billed for that GPU.
                at = datetime.fromisoformat(fault["at"].replace("Z", "+00:00"))
                sample = datetime.fromtimestamp(math.ceil(at.timestamp() / 900) * 900, UTC)
                unbillable.add((fault["gpu"], sample.replace(minute=0)))
        for allocation in Allocation.objects.select_related("org", "device"):
            product, share, physical = devices[(allocation.device.node, allocation.device.uuid)]
            hour = allocation.start
            assert allocation.end is not None
            assert hour.minute == 0
            while hour < allocation.end:
                if (physical, hour) not in unbillable:
                    seconds = (Decimal(3600) * share).quantize(
                        Decimal("0.000001"), rounding=ROUND_HALF_EVEN
                    )
                    self.gpu[(allocation.org.slug, product, hour)] += seconds
                hour += HOUR

    def _gateway(self, path: Path) -> None:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            when = month_of(datetime.fromtimestamp(record["created"], UTC))
            org, usage = record["org"], record["usage"]
            if record["model"] not in ("llama-3.1-70b", "llama-3.1-8b"):
                continue  # any other model has no product: unbilled usage, on no invoice
            cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
            model = "llama-70b" if record["model"] == "llama-3.1-70b" else "llama-8b"
            # input products bill the uncached part; cached input is a product of its own
            self.tokens[(org, when, f"{model}-input")] += (usage["prompt_tokens"] - cached) / M
            if cached:
                self.tokens[(org, when, f"{model}-cached-input")] += cached / M
            self.tokens[(org, when, f"{model}-output")] += usage["completion_tokens"] / M

    def _vllm(self, directory: Path) -> None:
        """Counter deltas per scrape; a counter that went down restarted: its value counts."""
        last: dict[tuple[str, str], int] = {}
        for path in sorted(directory.glob("*.prom")):
            date_part, _, clock = path.stem.partition("T")
            when = month_of(datetime.fromisoformat(f"{date_part}T{clock.replace('-', ':')}"))
            for metric, engine, value in re.findall(
                r'^vllm:(prompt|generation)_tokens_total\{engine="(\d)".*\} ([\d.]+)$',
                path.read_text(),
                re.MULTILINE,
            ):
                now = int(float(value))
                before = last.get((metric, engine), 0)
                delta = now - before if now >= before else now
                last[(metric, engine)] = now
                product = "llama-70b-input" if metric == "prompt" else "llama-70b-output"
                self.tokens[("acme", when, product)] += delta / M


def expected_invoice(usage: Usage, org: str, month: date, credits_left: list[Decimal], ramp: date):
    """(lines {(kind, product): (quantity, amount)}, subtotal, credits, tax, total)."""
    currency = CURRENCY[org]
    start = datetime.combine(month, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(
        (month + timedelta(days=32)).replace(day=1), datetime.min.time(), tzinfo=UTC
    )
    hours = int((end - start) / HOUR)
    lines: dict[tuple[str, str | None], tuple[Decimal, Decimal]] = {}
    per_product: dict[str, Decimal] = defaultdict(Decimal)
    for (who, product, hour), seconds in usage.gpu.items():
        if who == org and start <= hour < end:
            per_product[product] += seconds / 3600
    for (who, when, product), quantity in usage.tokens.items():
        if who == org and when == month:
            per_product[product] += quantity
    reservation = {"acme": "h100-eu-north", "hooli": "h200-eu-north"}.get(org)
    if reservation:
        reserved_total = covered = burst = Decimal(0)
        for h in range(hours):
            hour = start + h * HOUR
            reserved = Decimal(4 if org == "acme" else 2)
            if org == "acme" and ramp_after(hour, ramp):
                reserved = Decimal(6)
            used = usage.gpu.get((org, reservation, hour), Decimal(0)) / 3600
            reserved_total += reserved
            covered += min(used, reserved)
            burst += max(Decimal(0), used - reserved)
        price, burst_price = ("2.10", "2.40") if org == "acme" else ("2.70", "2.95")
        lines[("reservation", reservation)] = (
            reserved_total,
            cents(reserved_total * Decimal(price)),
        )
        lines[("covered", reservation)] = (covered, Decimal("0.00"))
        if burst:
            lines[("burst", reservation)] = (burst, cents(burst * Decimal(burst_price)))
        per_product.pop(reservation, None)
    for product, quantity in per_product.items():
        if quantity:
            amount = discounted(org, product, list_amount(product, quantity, currency))
            if product == "llama-70b-output":  # the line counts the packages billed
                quantity = Decimal(math.ceil(quantity / PACKAGE_70B_OUT[currency][0]))
            lines[("on_demand", product)] = (quantity, cents(amount))
    subtotal = sum((amount for _, amount in lines.values()), Decimal("0.00"))
    if org in MINIMUM and subtotal < MINIMUM[org]:
        lines[("minimum_true_up", None)] = (Decimal(1), MINIMUM[org] - subtotal)
        subtotal = MINIMUM[org]
    credits = Decimal("0.00")
    for index, balance in enumerate(credits_left):
        draw = min(balance, subtotal - credits)
        credits_left[index] -= draw
        credits += draw
    tax = cents((subtotal - credits) * VAT.get(org, Decimal(0)) / 100)
    return lines, subtotal, credits, tax, subtotal - credits + tax


def ramp_after(hour: datetime, ramp: date) -> bool:
    return hour.date() >= ramp


@pytest.fixture
def worker(tmp_path):
    workers = Workers(Broker(DEMO_BROKER))
    with StripeServer() as stripe:  # one Stripe fake for the demo and the worker
        workers.env.update(
            {
                "TESSERA_ROLLUP_ON_INGEST": "1",  # the demo's rollups go to the worker
                "STRIPE_API_KEY": "sk_test_tessera_demo",
                "STRIPE_API_BASE": stripe.base,
                "STRIPE_WEBHOOK_SECRET": stripe.fake.webhook_secret,
                "TESSERA_VAR_DIR": str(tmp_path),
            }
        )
        log = open(tmp_path / "worker.log", "wb")
        workers.start(log=log)
        yield workers.env
        workers.stop()
        log.close()


def test_demo_on_postgres_with_a_worker_bills_exactly_what_was_generated(worker, tmp_path):
    # when the demo runs against this database, its tasks going to the real worker
    run = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve", "--days", "2"],
        cwd=ROOT, env=worker, capture_output=True, text=True, timeout=DEMO_TIMEOUT,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    workdir = tmp_path / "demo"

    # then the worker did its share: rollups after ingestion, Stripe pushes after finalization
    invoices = list(Invoice.objects.exclude(status=Invoice.Status.DRAFT))
    assert len(invoices) == 10
    assert wait_until(
        lambda: StripeInvoiceSync.objects.filter(state=StripeInvoiceSync.State.DONE).count() == 10
    )
    worker_log = (tmp_path / "worker.log").read_text()
    assert re.search(r"Task metering\.rollup\[.*\] succeeded", worker_log), worker_log[-3000:]

    # and every exported invoice is what the generated usage and the catalog make it
    usage = Usage(workdir)
    assert usage.gpu
    assert usage.tokens
    credits = {org: list(grants) for org, grants in CREDITS.items()}
    exports = sorted(workdir.glob("invoices-*.json"))
    assert len(exports) == 2
    # acme's ramp (4 -> 6 GPUs): the catalog's 16 October, moved onto the last month billed
    ramp = date.fromisoformat(exports[-1].stem[-7:] + "-16")
    checked = 0
    for path in exports:
        for doc in json.loads(path.read_text()):
            month = date.fromisoformat(doc["period_start"])
            lines, subtotal, applied, tax, total = expected_invoice(
                usage, doc["org"], month, credits.setdefault(doc["org"], []), ramp
            )
            actual = {
                (line["kind"], line["product"]): (
                    Decimal(line["quantity"]),
                    Decimal(line["amount"]),
                )
                for line in doc["lines"]
            }
            assert {k: a for k, (_, a) in actual.items()} == {
                k: a for k, (_, a) in lines.items()
            }, (doc["org"], month)
            for key, (quantity, _) in lines.items():
                assert abs(actual[key][0] - quantity) < Decimal("0.000001"), (doc["org"], key)
            assert (
                Decimal(doc["subtotal"]), Decimal(doc["credits"]),
                Decimal(doc["tax_total"]), Decimal(doc["total"]),
            ) == (subtotal, applied, tax, total), (doc["org"], month)  # fmt: skip
            checked += 1
    assert checked == 10

    # and every line of every demo invoice reads right (issue 14): quantity × unit price is
    # its amount, rounded once at the currency's minor unit (a minimum true-up is quantity 1;
    # a discount is stated beside the discounted unit price, not hidden in a smaller quantity)
    from billing.money import round_amount

    lines_checked = discounted = 0
    for invoice in invoices:
        for line in invoice.lines.all():
            product = line.quantity * line.unit_price
            expected = round_amount(product, invoice.currency, invoice.issuer.rounding)
            assert expected == line.amount, (invoice.number, line.description)
            if line.kind == "minimum_true_up":
                assert line.quantity == 1, (invoice.number, line.description)
            if line.list_unit_price is not None:  # the discount kept as data, net below list
                assert line.list_unit_price > line.unit_price, (invoice.number, line.description)
                discounted += 1
            lines_checked += 1
    assert lines_checked > 10 * 3
    assert discounted > 0  # acme's 10% off H100 bursts, the dated contract-wide terms

    # and every invoice is a valid EN 16931 e-invoice as the demo wrote it (Factur-X PDF/A-3
    # and XRechnung), and so is a credit note of each: XSD, EN 16931 schematron, and the
    # French CTC rules for the French issuer's business customers
    from io import BytesIO

    from pypdf import PdfReader

    from billing.invoicing.credit_notes import credit_note_issue
    from billing.invoicing.einvoice import cii_xml, document_of

    def check(xml: bytes, invoice: Invoice, discounted: int) -> None:
        # BT-148 and BT-147: one gross price with its discount per discounted line
        assert xml.count(b"<ram:GrossPriceProductTradePrice>") == discounted, invoice.number
        assert xsd_errors(xml) == [], invoice.number
        assert fatal(schematron_failures(xml)) == [], invoice.number
        if invoice.issuer_country == "FR" and invoice.taxes.get().reason != "oss":
            assert fatal(schematron_failures(xml, "fr-ctc")) == [], invoice.number

    facturx = workdir / "einvoices" / "facturx"
    assert sorted(p.stem for p in facturx.iterdir()) == sorted(i.number for i in invoices)
    assert len(list((workdir / "einvoices" / "xrechnung").iterdir())) == 10
    notes = 0
    for invoice in invoices:
        pdf = PdfReader(BytesIO((facturx / f"{invoice.number}.pdf").read_bytes()))
        listed = invoice.lines.filter(list_unit_price__isnull=False)
        check(pdf.attachments["factur-x.xml"][0], invoice, listed.count())
        if invoice.total > 0:
            note = credit_note_issue(invoice_id=invoice.pk, reason="demo check")
            check(cii_xml(document_of(note)), invoice, listed.exclude(amount=0).count())
            notes += 1
    assert notes == sum(1 for invoice in invoices if invoice.total > 0) >= 5
