from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from metering.partitions import is_partitioned, retention_run


class Command(BaseCommand):
    help = (
        "Export every event partition older than the retention (late window + "
        "TESSERA_RETENTION_EXTRA_DAYS) to zstd Parquet under --dir (default "
        "TESSERA_RETENTION_DIR) with a manifest.json of rows and sha256, then drop it. "
        "Rollups, charges and invoices are kept. PostgreSQL only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", help="Archive directory.")

    def handle(self, *args: object, **options: str | None) -> None:
        if not is_partitioned():
            self.stdout.write("The event table is not partitioned (SQLite): nothing to do.")
            return
        directory = Path(options["dir"] or settings.TESSERA_RETENTION_DIR)
        report = retention_run(directory=directory)
        for entry in report.exported:
            self.stdout.write(f"  {entry['partition']}: {entry['rows']} rows → {entry['file']}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(report.dropped)} partition(s) exported to {directory} and dropped "
                f"(cutoff {report.cutoff.isoformat()})."
            )
        )
