from django.core.management.base import BaseCommand

from metering.rollups import rollup_pending


class Command(BaseCommand):
    help = "Roll up every hour that received events since the last rollup (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        hours = rollup_pending()
        self.stdout.write(self.style.SUCCESS(f"Rolled up {hours} (org, event type, hour) marks."))
