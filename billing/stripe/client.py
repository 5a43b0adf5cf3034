"""The one place that builds a ``stripe.StripeClient`` (SPEC §8)."""

import stripe
from django.conf import settings


def stripe_enabled() -> bool:
    """Whether finalized invoices are pushed to Stripe (an API key is set)."""
    return bool(settings.STRIPE_API_KEY)


def stripe_client() -> stripe.StripeClient:
    """A client on Stripe's API, or on the Stripe-compatible endpoint ``STRIPE_API_BASE``
    names (stripe-mock, a proxy, the demo's local fake)."""
    key, retries = settings.STRIPE_API_KEY, settings.TESSERA_STRIPE_MAX_NETWORK_RETRIES
    if settings.STRIPE_API_BASE:
        return stripe.StripeClient(
            key, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=retries
        )
    return stripe.StripeClient(key, max_network_retries=retries)


def webhook_secret() -> str:
    return str(settings.STRIPE_WEBHOOK_SECRET)
