"""Row locks of the deal desk: the only place ``select_for_update`` appears for deals."""

from .models import Deal


def lock_deal(*, deal_id: int) -> Deal:
    """The deal's row (with its org and issuer), locked: transitions of one deal run one at a
    time. Raises ``Deal.DoesNotExist``."""
    return Deal.objects.select_for_update().select_related("org", "issuer").get(pk=deal_id)
