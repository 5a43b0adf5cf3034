from django.core.management.base import BaseCommand, CommandError, CommandParser

from metering.partitions import (
    MAX_AHEAD_DAYS,
    PartitionError,
    is_partitioned,
    partitions_ensure,
    partitions_list,
)


class Command(BaseCommand):
    help = (
        "Create the daily event partitions from the start of the late window through "
        "--ahead days from now (default TESSERA_PARTITION_AHEAD_DAYS), and move stray rows out "
        "of the default partition. Idempotent. PostgreSQL only; on SQLite it says so and stops."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ahead", type=int, help=f"Days ahead of today to create (0 to {MAX_AHEAD_DAYS})."
        )

    def handle(self, *args: object, **options: int | None) -> None:
        ahead = options["ahead"]
        if ahead is not None and not 0 <= ahead <= MAX_AHEAD_DAYS:
            raise CommandError(f"--ahead must be between 0 and {MAX_AHEAD_DAYS} (days)")
        if not is_partitioned():
            self.stdout.write("The event table is not partitioned (SQLite): nothing to do.")
            return
        try:
            created = partitions_ensure(ahead_days=ahead)
        except PartitionError as exc:
            raise CommandError(exc.message) from None
        for name in created:
            self.stdout.write(f"  created {name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(created)} partition(s) created; {len(partitions_list())} in all."
            )
        )
