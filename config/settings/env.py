"""Every environment variable Tessera reads, in one place, each with its embedded default.

The defaults run the whole job on one machine: SQLite under ``var/`` and Celery in-process.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("TESSERA_VAR_DIR", BASE_DIR / "var"))


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    return [part.strip() for part in raw.split(",") if part.strip()] if raw else default


DEBUG = _bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-insecure-secret-key-change-me"
ALLOWED_HOSTS = _list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])


def _embedded_database() -> Path:
    """``var/tessera.sqlite3``; but after ``bin/demo`` (which builds ``var/demo.sqlite3``) and
    while ``var/tessera.sqlite3`` does not exist, the demo's database: someone who just ran
    the demo and types ``manage.py shell`` or ``createsuperuser`` means the demo's data."""
    own, demo = VAR_DIR / "tessera.sqlite3", VAR_DIR / "demo.sqlite3"
    return demo if demo.exists() and not own.exists() else own


DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{_embedded_database()}"
# Unset: Celery tasks run in-process (eager), which is the embedded default.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
# Prepended to every key Celery writes in Redis: deployments (or concurrent test runs) that
# share one Redis database keep separate queues. Empty: keys as Celery names them.
BROKER_KEY_PREFIX = os.environ.get("TESSERA_BROKER_KEY_PREFIX", "")
# Used for the cache (debounce of rollup triggers); unset: per-process memory cache.
REDIS_URL = os.environ.get("REDIS_URL", "")
LATE_WINDOW_DAYS = _int("TESSERA_LATE_WINDOW_DAYS", 35)
# Event partitions (PostgreSQL): days created ahead; raw events kept this long past the late
# window, then exported to Parquet under RETENTION_DIR and dropped.
PARTITION_AHEAD_DAYS = _int("TESSERA_PARTITION_AHEAD_DAYS", 7)
RETENTION_EXTRA_DAYS = _int("TESSERA_RETENTION_EXTRA_DAYS", 60)
RETENTION_DIR = Path(os.environ.get("TESSERA_RETENTION_DIR", VAR_DIR / "event-archive"))
GRACE_DAYS = _int("TESSERA_GRACE_DAYS", 2)
FUTURE_SKEW_SECONDS = _int("TESSERA_FUTURE_SKEW_SECONDS", 300)
MAX_BATCH_EVENTS = _int("TESSERA_MAX_BATCH_EVENTS", 10_000)
MAX_BODY_BYTES = _int("TESSERA_MAX_BODY_BYTES", 10 * 1024 * 1024)
ROLLUP_BATCH_HOURS = _int("TESSERA_ROLLUP_BATCH_HOURS", 500)
ROLLUP_INTERVAL_SECONDS = _int("TESSERA_ROLLUP_INTERVAL_SECONDS", 30)
ROLLUP_ON_INGEST = _bool("TESSERA_ROLLUP_ON_INGEST", True)
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
# Where the Stripe SDK sends API requests; empty: api.stripe.com. A Stripe-compatible endpoint
# (stripe-mock, a proxy, or the Stripe fake the demo serves on 127.0.0.1).
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
SSL_REDIRECT = _bool("TESSERA_SSL_REDIRECT", True)
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS", [])
# Behind a reverse proxy that sets X-Real-IP to the client's address (deploy/nginx.conf):
# login throttling keys on that address instead of the proxy's, which every client shares.
BEHIND_PROXY = _bool("TESSERA_BEHIND_PROXY", False)
LOGIN_FAILURE_LIMIT = _int("TESSERA_LOGIN_FAILURE_LIMIT", 5)
# Requests per API key (DRF rate syntax); over it: 429 with Retry-After.
INGEST_RATE = os.environ.get("TESSERA_INGEST_RATE", "1200/min")
READ_RATE = os.environ.get("TESSERA_READ_RATE", "600/min")
# Rating: beat re-rates stale periods every interval; a rollup also asks for a run (debounced).
RATING_INTERVAL_SECONDS = _int("TESSERA_RATING_INTERVAL_SECONDS", 60)
RATE_ON_ROLLUP = _bool("TESSERA_RATE_ON_ROLLUP", True)
# Periods per billing.rate_periods task (an org's periods stay together): what they share is
# read once per batch.
RATING_BATCH = _int("TESSERA_RATING_BATCH", 50)
# Quarantined batch work (a failing rollup hour or org) is retried after this many seconds,
# doubling per failed attempt up to the maximum.
QUARANTINE_RETRY_SECONDS = _int("TESSERA_QUARANTINE_RETRY_SECONDS", 60)
QUARANTINE_RETRY_MAX_SECONDS = _int("TESSERA_QUARANTINE_RETRY_MAX_SECONDS", 6 * 3600)
# Unbilled usage: the default window (days back from now) of the report, metric and alert.
UNBILLED_WINDOW_DAYS = _int("TESSERA_UNBILLED_WINDOW_DAYS", 62)
# Deal desk: a deal whose effective discount off list exceeds this (percent) needs finance.
DEAL_APPROVAL_DISCOUNT_PERCENT = os.environ.get("TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT", "15")
# Invoicing (billing.invoicing) and Stripe (billing.stripe).
STRIPE_MAX_NETWORK_RETRIES = _int("TESSERA_STRIPE_MAX_NETWORK_RETRIES", 2)
# The oldest ECB reference rate (days before the issue date) an invoice may state its VAT at.
FX_MAX_AGE_DAYS = _int("TESSERA_FX_MAX_AGE_DAYS", 7)
# Receivables and draft review (issue 15).
VARIANCE_FLAG_PERCENT = os.environ.get("TESSERA_VARIANCE_FLAG_PERCENT", "25")
# Outbound webhooks (SPEC §5): attempts per delivery, exponential backoff (base, cap), the
# per-attempt timeout, how long a rotated secret keeps signing, and whether http and
# private/loopback addresses are allowed (the embedded default and tests; never in production).
WEBHOOK_MAX_ATTEMPTS = _int("TESSERA_WEBHOOK_MAX_ATTEMPTS", 8)
WEBHOOK_BACKOFF_SECONDS = _float("TESSERA_WEBHOOK_BACKOFF_SECONDS", 60.0)
WEBHOOK_BACKOFF_CAP_SECONDS = _float("TESSERA_WEBHOOK_BACKOFF_CAP_SECONDS", 6 * 3600.0)
WEBHOOK_TIMEOUT_SECONDS = _float("TESSERA_WEBHOOK_TIMEOUT_SECONDS", 10.0)
WEBHOOK_SECRET_OVERLAP_HOURS = _int("TESSERA_WEBHOOK_SECRET_OVERLAP_HOURS", 24)
WEBHOOK_ALLOW_PRIVATE = _bool("TESSERA_WEBHOOK_ALLOW_PRIVATE", DEBUG)
# Alert emails (Django's email backend): console by default, SMTP when EMAIL_HOST is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = _int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Tessera <billing@tessera.localhost>")
# Alerts are evaluated after every rating; beat evaluates every org's as a backstop too.
ALERT_INTERVAL_SECONDS = _int("TESSERA_ALERT_INTERVAL_SECONDS", 600)
