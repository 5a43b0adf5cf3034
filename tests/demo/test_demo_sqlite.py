"""``manage.py demo --no-serve`` on the embedded default (its own SQLite file, Celery
in-process), at tiny scale: the whole path runs and leaves invoices, PDFs and the exports."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.timeout(1500)

DEMO_TIMEOUT = 600  # seconds: about 30 alone, several times that on a loaded machine


def manage(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` as an operator runs it: no DATABASE_URL, no broker, this var/."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["TESSERA_VAR_DIR"] = str(var)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT,
    )  # fmt: skip


def run_demo(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return manage(var, "demo", "--no-serve", "--days", "1", *args)


def test_demo_runs_on_its_own_sqlite_database_and_rebuilds_it_on_a_rerun(tmp_path):
    # when the demo runs twice on the embedded default
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    exports_first = sorted((tmp_path / "demo").glob("invoices-*.json"))
    first_docs = [json.loads(p.read_text()) for p in exports_first]
    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr

    # then it used var/demo.sqlite3, rebuilt it, and billed two months of five orgs each
    assert (tmp_path / "demo.sqlite3").exists()
    assert "(rebuilt from scratch)" in second.stdout
    exports = sorted((tmp_path / "demo").glob("invoices-*.json"))
    assert [p.name for p in exports] == [p.name for p in exports_first]
    assert len(exports) == 2
    docs = [json.loads(p.read_text()) for p in exports]
    assert docs == first_docs  # same usage, same invoices, same numbers
    invoices = [doc for month in docs for doc in month]
    assert len(invoices) == 10
    assert {doc["org"] for doc in invoices} == {"acme", "globex", "initech", "umbrella", "hooli"}
    # Issued; an invoice its credits cover entirely (0.00) is paid at finalization (issue 15).
    assert all(doc["number"] for doc in invoices)
    assert {(doc["status"], doc["status"] == "paid" and doc["total"] in ("0.00", "0")) for doc
            in invoices} <= {("finalized", False), ("paid", True)}, invoices  # fmt: skip
    pdfs = sorted((tmp_path / "demo" / "invoices").glob("*.pdf"))
    assert sorted(p.stem for p in pdfs) == sorted(doc["number"] for doc in invoices)
    assert all(p.read_bytes().startswith(b"%PDF") for p in pdfs)
    # the last month has usage from the collectors: GPU-hours and tokens for every org
    last = docs[1]
    for doc in last:
        kinds = {line["kind"] for line in doc["lines"]}
        assert kinds & {"on_demand", "burst", "covered"}, doc
    assert "10 of 10 invoices pushed" in second.stdout
    # left for finance: an embeddings model the catalog has no product for (SPEC §3)
    assert (
        "Unbilled usage: 1 row(s) on /finance/unbilled/ (initech llm_uncached_input_tokens "
        "{'model': 'bge-m3'} 42000 token: no_matching_product)" in second.stdout
    )
    # acme's owner set alerts and a webhook endpoint: alerts fired, every delivery arrived
    assert re.search(r"Alerts: [1-9]\d* fired for acme", second.stdout), second.stdout
    assert re.search(r"webhooks: ([1-9]\d*) of \1 deliveries received", second.stdout)
    assert "Subject: [Tessera] Acme AI SAS: Monthly budget" in second.stdout  # console email
    received = sorted(p.name for p in (tmp_path / "demo" / "webhooks").glob("*.json"))
    assert any(name.endswith("invoice.finalized.json") for name in received)
    assert any(name.endswith("alert.triggered.json") for name in received)
    for login in ("ada", "demo-am", "fin", "ops"):
        assert f"  {login} " in second.stdout
    # the deal desk: acme's contract amended by a signed expansion, globex's deal pending
    assert "(acme): 2 × h100-eu-north from " in second.stdout
    assert "; signed, amends acme-2026" in second.stdout
    assert "(globex): 16 × h100-us-east from " in second.stdout
    assert "; pending approval" in second.stdout

    # and manage.py commands afterwards open the demo's database, not an empty default one
    assert f"Database: {tmp_path / 'demo.sqlite3'};" in second.stdout
    shell = manage(tmp_path, "shell", "--no-imports", "-c", COUNT_INVOICES)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert shell.stdout.splitlines()[-1].split() == [str(tmp_path / "demo.sqlite3"), "10"]
    assert not (tmp_path / "tessera.sqlite3").exists()


COUNT_INVOICES = (
    "from django.db import connection; from billing.invoicing.models import Invoice; "
    "print(connection.settings_dict['NAME'], Invoice.objects.count())"
)
