from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.invoicing import finalization
from billing.invoicing.drafting import chunks
from billing.invoicing.finalization import invoices_finalize_counted, invoices_to_finalize
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
        seen = finalized = 0
        for chunk in chunks(ids, finalization.CHUNK):
            result = invoices_finalize_counted(invoice_ids=chunk, as_of=as_of)
            seen += len(chunk)
            finalized += len(result.finalized_ids)
            last = Invoice.objects.values_list("number", flat=True).get(pk=chunk[-1])
            self.stdout.write(f"  {seen}/{len(ids)} looked at (last: {last})")
        # Counted under the invoice locks: a draft another run finalized first is not ours.
        others = len(ids) - finalized
        self.stdout.write(
            self.style.SUCCESS(
                f"{finalized} invoice(s) finalized"
                + (f"; {others} already finalized by another run." if others else ".")
            )
        )
