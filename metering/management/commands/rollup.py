from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from metering.models import QuarantinedWork
from metering.rollups import rollup_pending


class Command(BaseCommand):
    help = (
        "Roll up every hour that received events since the last rollup (idempotent). An hour "
        "that fails is quarantined and retried with backoff; every other hour is rolled up, "
        "and the command exits non-zero."
    )

    def handle(self, *args: object, **options: object) -> None:
        started = timezone.now()
        hours = rollup_pending()
        failed = QuarantinedWork.objects.filter(
            kind=QuarantinedWork.Kind.ROLLUP, resolved_at__isnull=True, last_failed_at__gte=started
        ).select_related("org")
        for entry in failed:
            self.stderr.write(
                f"  {entry.org.slug} {entry.unit}: {entry.error} (attempt {entry.attempts}, "
                f"next {entry.next_attempt_at:%Y-%m-%dT%H:%M}Z)"
            )
        self.stdout.write(f"Rolled up {hours} (org, event type, hour) marks.")
        if failed:
            raise CommandError(
                f"{len(failed)} hour(s) quarantined; every other hour was rolled up."
            )
