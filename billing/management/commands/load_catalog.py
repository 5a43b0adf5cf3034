from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.catalog import CatalogError, load_catalog_file


class Command(BaseCommand):
    help = (
        "Load the catalog (issuers, meters, products, orgs, capacity pools, ...) from a YAML or "
        "JSON file. The whole file is validated first: on any error nothing is written. "
        "Entries are upserted by key, so loading the same file twice changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to a .yaml/.yml or .json catalog file.")

    def handle(self, *args: object, **options: str) -> None:
        try:
            report = load_catalog_file(options["file"])
        except FileNotFoundError:
            raise CommandError(f"No such file: {options['file']}") from None
        except CatalogError as exc:
            for error in exc.errors:
                self.stderr.write(f"  {error}")
            raise CommandError(
                f"{len(exc.errors)} error(s) in {options['file']}; nothing was written."
            ) from None
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"  warning: {warning}"))
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("Catalog loaded."))
