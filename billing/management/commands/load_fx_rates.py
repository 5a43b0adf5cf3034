from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.fx.ecb import EcbFileError
from billing.fx.services import fx_rates_load_file


class Command(BaseCommand):
    help = (
        "Load the ECB euro reference rates from a file as the ECB publishes it (eurofxref.csv, "
        "eurofxref-hist.csv, or their zip). The whole file is checked first: on any error "
        "nothing is written. Loading the same file twice changes nothing. Invoices whose "
        "currency is not their issuer's national currency state their VAT at these rates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to the ECB CSV (or zip).")

    def handle(self, *args: object, **options: str) -> None:
        try:
            report = fx_rates_load_file(path=options["file"])
        except FileNotFoundError:
            raise CommandError(f"No such file: {options['file']}") from None
        except IsADirectoryError:
            raise CommandError(
                f"{options['file']} is a directory; give the ECB CSV (or zip) file in it."
            ) from None
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from None
        except EcbFileError as exc:
            for error in exc.errors[:50]:
                self.stderr.write(f"  {error}")
            raise CommandError(
                f"{len(exc.errors)} error(s) in {options['file']}; nothing was written."
            ) from None
        self.stdout.write(
            f"{report.currencies} currencies from {report.first} to {report.last}: "
            f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged"
        )
        self.stdout.write(self.style.SUCCESS("Reference rates loaded."))
