from django.core.management.base import BaseCommand, CommandParser

from metering.partitions import is_partitioned, partitions_ensure, partitions_list


class Command(BaseCommand):
    help = (
        "Create the daily event partitions from the start of the late window through "
        "--ahead days from now (default TESSERA_PARTITION_AHEAD_DAYS), and move stray rows out "
        "of the default partition. Idempotent. PostgreSQL only; on SQLite it says so and stops."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ahead", type=int, help="Days ahead of today to create.")

    def handle(self, *args: object, **options: int | None) -> None:
        if not is_partitioned():
            self.stdout.write("The event table is not partitioned (SQLite): nothing to do.")
            return
        created = partitions_ensure(ahead_days=options["ahead"])
        for name in created:
            self.stdout.write(f"  created {name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(created)} partition(s) created; {len(partitions_list())} in all."
            )
        )
