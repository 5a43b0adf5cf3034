"""Tessera's Celery app and ``manage.py``, with test-only fault hooks read from the environment.

The fault-injection tests start real workers (``celery -A tests.reliability.hooked worker``) and
real management commands (``python -m tests.reliability.hooked COMMAND``) through this module, so
that production code carries no test hooks:

- ``TESSERA_REL_PAUSE=module:function:N``: the N-th call of that function returns, then the
  process touches ``TESSERA_REL_SIGNAL`` and sleeps, still inside whatever transaction the caller
  holds. The test waits for the file and SIGKILLs the process: the kill lands at a named point.
- ``TESSERA_REL_SET=module:NAME:INT``: set a module constant (a smaller batch size).
- ``TESSERA_REL_STRIPE_BASE=http://host:port``: the Stripe SDK talks to that address (a
  ``FakeStripe`` the test serves over HTTP, whose state outlives the killed worker), without
  retries.
"""

import functools
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from config.celery import app  # noqa: E402

# A paused process is killed by its test; this only bounds how long one outlives a dead test.
HOLD_SECONDS = 600


def _pause(spec: str) -> None:
    module_name, name, nth = spec.rsplit(":", 2)
    module = importlib.import_module(module_name)
    original = getattr(module, name)
    calls = 0

    @functools.wraps(original)
    def paused(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = original(*args, **kwargs)
        calls += 1
        if calls == int(nth):
            Path(os.environ["TESSERA_REL_SIGNAL"]).touch()
            time.sleep(HOLD_SECONDS)  # holding the transaction open until the test kills us
        return result

    setattr(module, name, paused)


def _set(spec: str) -> None:
    module_name, name, value = spec.rsplit(":", 2)
    setattr(importlib.import_module(module_name), name, int(value))


def _stripe(base: str) -> None:
    import stripe

    from billing.stripe import services

    def client() -> stripe.StripeClient:
        return stripe.StripeClient(
            "sk_test_tessera_rel", base_addresses={"api": base}, max_network_retries=0
        )

    services.stripe_client = client


for item in filter(None, os.environ.get("TESSERA_REL_SET", "").split(",")):
    _set(item)
if os.environ.get("TESSERA_REL_PAUSE"):
    _pause(os.environ["TESSERA_REL_PAUSE"])
if os.environ.get("TESSERA_REL_STRIPE_BASE"):
    _stripe(os.environ["TESSERA_REL_STRIPE_BASE"])

__all__ = ["app"]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])
