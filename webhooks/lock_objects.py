"""Row locks of the webhooks app, by pk (STYLE: locks live here)."""

from .models import WebhookEndpoint


def lock_endpoint(*, endpoint_id: int) -> WebhookEndpoint | None:
    """Lock one endpoint's row: rotations of its secrets run one at a time."""
    return WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
