from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.invoicing.drafting import periods_close
from core.timeparse import parse_instant
from tenancy.models import Org


class Command(BaseCommand):
    help = (
        "Draft the invoice of every billing period whose grace window (TESSERA_GRACE_DAYS) has "
        "ended by --as-of. Idempotent: each period gets exactly one invoice, even when two runs "
        "race. Periods whose charges are not rated through their end are listed and left."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO date or datetime (UTC); default now.")
        parser.add_argument("--org", help="Only this org (slug).")

    def handle(self, *args: object, **options: str | None) -> None:
        try:
            as_of = (
                parse_instant(options["as_of"], assume_utc=True)
                if options["as_of"]
                else timezone.now()
            )
        except ValueError as exc:
            raise CommandError(f"--as-of: {exc}") from None
        org = None
        if options["org"]:
            org = Org.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"No org {options['org']!r}.")
        report = periods_close(as_of=as_of, org=org)
        for period, reason in report.skipped:
            self.stdout.write(f"  skipped {period}: {reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(report.drafted_ids)} draft invoice(s) created, {report.already} period(s) "
                f"already invoiced, {len(report.skipped)} skipped (as of {as_of.isoformat()})."
            )
        )
