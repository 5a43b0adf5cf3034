from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.alerts.services import alerts_evaluate_all

from .rate import parse_as_of


class Command(BaseCommand):
    help = (
        "Evaluate every org's active alerts against its current billing period (what beat "
        "runs as a backstop to the evaluation after each rating). An alert fires once per "
        "threshold and period, so running this again sends nothing new."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO date or datetime with timezone; default now.")

    def handle(self, *args: Any, **options: Any) -> None:
        raw = options.get("as_of")
        fired, failed = alerts_evaluate_all(now=parse_as_of(raw) if raw else timezone.now())
        self.stdout.write(f"{fired} alert(s) fired")
        if failed:
            raise CommandError(f"{failed} org(s) could not be evaluated; see the log")
