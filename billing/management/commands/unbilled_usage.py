import csv
import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.rating.unbilled import default_window, unbilled_usage
from metering.apis import format_quantity
from tenancy.models import Org

from .rate import parse_as_of

COLUMNS = ["org", "meter", "unit", "dimensions", "reason", "quantity", "events", "start", "end"]


class Command(BaseCommand):
    help = (
        "List accepted usage that no invoice line bills (SPEC §3 'Unbilled usage'): one row per "
        "org, meter, dimension values and reason (no_matching_product, no_contract, no_price), "
        "with the quantity in the meter's unit and the number of events. Default window: "
        "TESSERA_UNBILLED_WINDOW_DAYS back from now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", help="ISO date or datetime with timezone (inclusive).")
        parser.add_argument("--end", help="ISO date or datetime with timezone (exclusive).")
        parser.add_argument("--org", help="Only this org (slug).")
        parser.add_argument("--format", choices=["json", "csv"], default="json")

    def handle(self, *args: object, **options: str | None) -> None:
        start, end = default_window()
        if options["start"]:
            start = parse_as_of(options["start"], "--start")
        if options["end"]:
            end = parse_as_of(options["end"], "--end")
        if end <= start:
            raise CommandError("--end must be after --start.")
        orgs = Org.objects.all()  # finance's report: every org, explicitly
        if options["org"]:
            orgs = orgs.filter(slug=options["org"])
            if not orgs.exists():
                raise CommandError(f"No org {options['org']!r}.")
        rows = [
            {
                **asdict(row),
                "quantity": format_quantity(row.quantity),
                "start": row.start.isoformat().replace("+00:00", "Z"),
                "end": row.end.isoformat().replace("+00:00", "Z"),
            }
            for row in unbilled_usage(orgs=orgs, start=start, end=end)
        ]
        if options["format"] == "csv":
            writer = csv.writer(_Lines(self))
            writer.writerow(COLUMNS)
            for row in rows:
                row["dimensions"] = json.dumps(row["dimensions"], sort_keys=True)
                writer.writerow([row[name] for name in COLUMNS])
        else:
            self.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False))
        self.stderr.write(
            f"{len(rows)} unbilled row(s) from {start.isoformat()} to {end.isoformat()}."
        )


class _Lines:
    """The command's stdout for ``csv.writer`` (which ends its own lines)."""

    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def write(self, text: str) -> int:
        self.command.stdout.write(text, ending="")
        return len(text)
