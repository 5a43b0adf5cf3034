from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.invoicing import finalization
from billing.invoicing.drafting import chunks
from billing.invoicing.finalization import invoices_finalize, invoices_to_finalize
from billing.invoicing.models import Invoice
from core.timeparse import month_of, parse_instant
from tenancy.models import Org


class Command(BaseCommand):
    help = (
        "Finalize draft invoices: gapless number per issuer and year, legal snapshot, issue "
        "and due dates. Idempotent (finalized invoices are left as they are)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Only this org (slug).")
        parser.add_argument("--period", help="Only invoices of periods starting in YYYY-MM.")
        parser.add_argument("--as-of", help="Issue date (ISO date or datetime, UTC); default now.")

    def handle(self, *args: object, **options: str | None) -> None:
        org = None
        if options["org"]:
            org = Org.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"No org {options['org']!r}.")
        try:
            period = month_of(options["period"]) if options["period"] else None
            as_of = parse_instant(options["as_of"], assume_utc=True) if options["as_of"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        ids = invoices_to_finalize(org=org, period=period)
        done = 0
        for chunk in chunks(ids, finalization.CHUNK):
            invoices_finalize(invoice_ids=chunk, as_of=as_of)
            last = Invoice.objects.values_list("number", flat=True).get(pk=chunk[-1])
            done += len(chunk)
            self.stdout.write(f"  {done}/{len(ids)} (last: {last})")
        self.stdout.write(self.style.SUCCESS(f"{len(ids)} invoice(s) finalized."))
