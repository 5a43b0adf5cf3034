from typing import Any

from django.core.management.base import BaseCommand

from webhooks.delivery import deliveries_due, webhook_delivery_attempt


class Command(BaseCommand):
    help = (
        "Attempt every webhook delivery that is due now, in this process (what beat's "
        "webhooks.deliver_due enqueues); retries wait for their backoff and a later run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        ids = deliveries_due()
        outcomes: dict[str, int] = {}
        for number, pk in enumerate(ids, 1):
            delivery = webhook_delivery_attempt(delivery_id=pk)
            status = delivery.status if delivery else "skipped"
            outcomes[status] = outcomes.get(status, 0) + 1
            if number % 100 == 0:
                self.stdout.write(f"  {number}/{len(ids)}")
        summary = ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())) or "nothing due"
        self.stdout.write(f"{len(ids)} deliveries due: {summary}")
