"""Tessera's own knobs (SPEC §8)."""

from . import env

TESSERA_LATE_WINDOW_DAYS = env.LATE_WINDOW_DAYS
TESSERA_PARTITION_AHEAD_DAYS = env.PARTITION_AHEAD_DAYS
TESSERA_RETENTION_EXTRA_DAYS = env.RETENTION_EXTRA_DAYS
TESSERA_RETENTION_DIR = env.RETENTION_DIR
TESSERA_GRACE_DAYS = env.GRACE_DAYS
TESSERA_FUTURE_SKEW_SECONDS = env.FUTURE_SKEW_SECONDS
TESSERA_MAX_BATCH_EVENTS = env.MAX_BATCH_EVENTS
TESSERA_MAX_BODY_BYTES = env.MAX_BODY_BYTES
TESSERA_ROLLUP_BATCH_HOURS = env.ROLLUP_BATCH_HOURS
STRIPE_API_KEY = env.STRIPE_API_KEY
STRIPE_WEBHOOK_SECRET = env.STRIPE_WEBHOOK_SECRET
STRIPE_API_BASE = env.STRIPE_API_BASE
# Ingestion asks for a rollup (debounced) after it commits; beat runs one every interval too.
TESSERA_ROLLUP_ON_INGEST = env.ROLLUP_ON_INGEST
# Rollups that change an open period ask for a rating run (debounced); beat runs one too.
TESSERA_RATE_ON_ROLLUP = env.RATE_ON_ROLLUP
TESSERA_RATING_INTERVAL_SECONDS = env.RATING_INTERVAL_SECONDS
TESSERA_RATING_BATCH = env.RATING_BATCH
TESSERA_QUARANTINE_RETRY_SECONDS = env.QUARANTINE_RETRY_SECONDS
TESSERA_QUARANTINE_RETRY_MAX_SECONDS = env.QUARANTINE_RETRY_MAX_SECONDS
TESSERA_UNBILLED_WINDOW_DAYS = env.UNBILLED_WINDOW_DAYS
# Called with the (org id, hour) pairs of every rollup batch, inside its transaction: this is
# how billing learns that usage changed without metering importing billing.
TESSERA_ROLLUP_HOOKS = ["billing.rating.triggers.rollups_changed"]
# Called with the meters an admin edit or delete changes, inside its transaction (the same
# for a change to how usage is measured).
TESSERA_METER_HOOKS = ["billing.rating.triggers.inputs_changed"]
# A deal more than this many percent below list price needs finance's approval (decimal).
TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT = env.DEAL_APPROVAL_DISCOUNT_PERCENT
TESSERA_STRIPE_MAX_NETWORK_RETRIES = env.STRIPE_MAX_NETWORK_RETRIES
# VAT in national currency (art. 230 Directive 2006/112/EC): the ECB rate must be this recent.
TESSERA_FX_MAX_AGE_DAYS = env.FX_MAX_AGE_DAYS
# Draft review flags a product whose amount moved more than this many percent from the
# previous period (issue 15).
TESSERA_VARIANCE_FLAG_PERCENT = env.VARIANCE_FLAG_PERCENT
TESSERA_WEBHOOK_MAX_ATTEMPTS = env.WEBHOOK_MAX_ATTEMPTS
TESSERA_WEBHOOK_BACKOFF_SECONDS = env.WEBHOOK_BACKOFF_SECONDS
TESSERA_WEBHOOK_BACKOFF_CAP_SECONDS = env.WEBHOOK_BACKOFF_CAP_SECONDS
TESSERA_WEBHOOK_TIMEOUT_SECONDS = env.WEBHOOK_TIMEOUT_SECONDS
TESSERA_WEBHOOK_SECRET_OVERLAP_HOURS = env.WEBHOOK_SECRET_OVERLAP_HOURS
TESSERA_WEBHOOK_ALLOW_PRIVATE = env.WEBHOOK_ALLOW_PRIVATE
# Email: console unless an SMTP host is configured (the demo prints alert emails).
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if env.EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = env.EMAIL_HOST
EMAIL_PORT = env.EMAIL_PORT
EMAIL_HOST_USER = env.EMAIL_HOST_USER
EMAIL_HOST_PASSWORD = env.EMAIL_HOST_PASSWORD
EMAIL_USE_TLS = env.EMAIL_USE_TLS
DEFAULT_FROM_EMAIL = env.DEFAULT_FROM_EMAIL
