from collections.abc import Sequence
from datetime import datetime
from functools import partial

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.invoicing import finalization
from billing.invoicing.drafting import chunks
from billing.invoicing.finalization import (
    invoices_finalize,
    invoices_finalize_counted,
    invoices_to_finalize,
)
from billing.invoicing.models import Invoice
from core.timeparse import month_of, parse_instant
from metering.models import QuarantinedWork
from metering.quarantine import attempt
from tenancy.models import Org


class Command(BaseCommand):
    help = (
        "Finalize draft invoices: gapless number per issuer and year, legal snapshot, issue "
        "and due dates. Idempotent (finalized invoices are left as they are). When a batch "
        "fails, its invoices are finalized org by org: an org that fails keeps its drafts, is "
        "quarantined and reported, every other org is finalized, and the command exits non-zero."
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
        done = finalized = 0
        failed: dict[str, str] = {}
        for chunk in chunks(ids, finalization.CHUNK):
            try:
                # Counted under the invoice locks: a draft another run finalized is not ours.
                numbered = invoices_finalize_counted(invoice_ids=chunk, as_of=as_of).finalized_ids
            except Exception:
                numbered = self._org_by_org(chunk, as_of, failed)
            done += len(chunk)
            finalized += len(numbered)
            last = Invoice.objects.values_list("number", flat=True).get(pk=chunk[-1]) or "none"
            self.stdout.write(f"  {done}/{len(ids)} (last: {last})")
        self.stdout.write(f"{finalized} invoice(s) finalized; {len(failed)} org(s) failed.")
        if failed:
            raise CommandError(
                f"{len(failed)} org(s) could not be finalized and are quarantined (their drafts "
                f"are kept): {', '.join(failed)}. Every other org's invoices were finalized."
            )
        self.stdout.write(self.style.SUCCESS(f"{finalized} invoice(s) finalized."))

    def _org_by_org(
        self, chunk: Sequence[int], as_of: datetime | None, failed: dict[str, str]
    ) -> list[int]:
        """The chunk again, one transaction per org, in the chunk's (numbering) order;
        returns the ids finalized."""
        owner = dict(Invoice.objects.filter(pk__in=chunk).values_list("pk", "org_id"))
        by_org: dict[int, list[int]] = {}
        for pk in chunk:  # dicts keep insertion order: orgs and invoices in chunk order
            if pk in owner:
                by_org.setdefault(owner[pk], []).append(pk)
        orgs = Org.objects.in_bulk(list(by_org))
        numbered: list[int] = []
        for org_id, mine in by_org.items():
            outcome = attempt(
                partial(invoices_finalize, invoice_ids=mine, as_of=as_of),
                kind=QuarantinedWork.Kind.FINALIZE,
                org=orgs[org_id],
            )
            if outcome.ok:
                numbered += outcome.value or []
            else:
                failed[orgs[org_id].slug] = outcome.error
                self.stderr.write(f"  {orgs[org_id].slug}: {outcome.error}")
        return numbered
