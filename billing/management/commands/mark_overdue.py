from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.invoicing.receivables import invoices_mark_overdue
from core.timeparse import parse_instant


class Command(BaseCommand):
    help = (
        "Move every open invoice whose due date has passed to overdue (receivables, SPEC §5); "
        "each move is audited and emits invoice.overdue once. Idempotent; beat runs it hourly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO date or datetime (UTC); default now.")

    def handle(self, *args: object, **options: Any) -> None:
        try:
            as_of = (
                parse_instant(options["as_of"], assume_utc=True)
                if options["as_of"]
                else timezone.now()
            )
        except ValueError as exc:
            raise CommandError(f"--as-of: {exc}") from None
        moved = invoices_mark_overdue(as_of=as_of)
        self.stdout.write(self.style.SUCCESS(f"{len(moved)} invoice(s) now overdue."))
