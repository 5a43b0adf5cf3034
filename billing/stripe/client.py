"""The one place that builds a ``stripe.StripeClient`` (SPEC §8)."""

import stripe
from django.conf import settings


def stripe_enabled() -> bool:
    """Whether finalized invoices are pushed to Stripe (an API key, or the fake)."""
    return bool(settings.STRIPE_API_KEY) or bool(settings.TESSERA_STRIPE_FAKE)


def stripe_client() -> stripe.StripeClient:
    """A client on the real API, or on the in-process fake when ``TESSERA_STRIPE_FAKE``."""
    retries = settings.TESSERA_STRIPE_MAX_NETWORK_RETRIES
    if settings.TESSERA_STRIPE_FAKE:
        from .testing import shared_fake

        return shared_fake().client(
            settings.STRIPE_API_KEY or "sk_test_tessera_fake", max_network_retries=retries
        )
    return stripe.StripeClient(settings.STRIPE_API_KEY, max_network_retries=retries)


def webhook_secret() -> str:
    if settings.TESSERA_STRIPE_FAKE and not settings.STRIPE_WEBHOOK_SECRET:
        from .testing import shared_fake

        return shared_fake().webhook_secret
    return str(settings.STRIPE_WEBHOOK_SECRET)
