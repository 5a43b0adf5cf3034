from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from metering.partitions import PartitionError, is_partitioned, retention_run


class Command(BaseCommand):
    help = (
        "Export every event partition older than the retention (late window + "
        "TESSERA_RETENTION_EXTRA_DAYS) to zstd Parquet under --dir (default "
        "TESSERA_RETENTION_DIR) with a manifest.json of rows and sha256, then drop it. "
        "Rollups, charges and invoices are kept. A partition whose export or drop fails is "
        "kept for the next run, and the command exits non-zero. PostgreSQL only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", help="Archive directory.")

    def handle(self, *args: object, **options: str | None) -> None:
        if options["dir"] is not None and not options["dir"].strip():
            raise CommandError("--dir needs a directory (leave it out for TESSERA_RETENTION_DIR)")
        if not is_partitioned():
            self.stdout.write("The event table is not partitioned (SQLite): nothing to do.")
            return
        directory = Path(options["dir"] or settings.TESSERA_RETENTION_DIR)
        try:
            report = retention_run(directory=directory)
        except PartitionError as exc:
            flag = "--dir " if exc.code == "archive_unusable" else ""
            raise CommandError(f"{flag}{exc.message}") from None
        for entry in report.exported:
            self.stdout.write(f"  {entry['partition']}: {entry['rows']} rows → {entry['file']}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(report.dropped)} partition(s) exported to {directory} and dropped "
                f"(cutoff {report.cutoff.isoformat()})."
            )
        )
        if report.failed:
            for name, error in report.failed.items():
                self.stderr.write(f"  {name}: kept, {error}")
            raise CommandError(
                f"{len(report.failed)} partition(s) could not be exported or dropped and are "
                f"kept for the next run: {', '.join(report.failed)}"
            )
