from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.invoicing.drafting import periods_close, periods_to_close
from billing.models import BillingPeriod
from core.timeparse import parse_instant
from metering.models import QuarantinedWork
from metering.quarantine import quarantined_open
from tenancy.models import Org


class Command(BaseCommand):
    help = (
        "Draft the invoice of every billing period whose grace window (TESSERA_GRACE_DAYS) has "
        "ended by --as-of. Idempotent: each period gets exactly one invoice, even when two runs "
        "race. Periods whose charges are not rated through their end are listed and left; "
        "an org whose close fails, or whose rating is quarantined, is reported and the command "
        "exits non-zero after closing every other org. Late usage after a contract's last "
        "invoiced period is drafted on a final adjustment invoice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="ISO date or datetime (UTC); default now.")
        parser.add_argument("--org", help="Only this org (slug).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Also draft periods whose end plus grace is still in the future (tests, demos).",
        )

    def handle(self, *args: object, **options: Any) -> None:
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
        now = timezone.now()
        if as_of > now and not options["force"]:
            early = [pk for pk in periods_to_close(as_of=as_of, org=org)
                     if pk not in set(periods_to_close(as_of=now, org=org))]  # fmt: skip
            if early:
                first = BillingPeriod.objects.select_related("org").get(pk=early[0])
                raise CommandError(
                    f"Refused: --as-of {as_of.isoformat()} is in the future, and {len(early)} "
                    f"period(s) would be invoiced before their end plus the "
                    f"{settings.TESSERA_GRACE_DAYS}-day grace window has passed (first: "
                    f"{first.org.slug} {first.start:%Y-%m-%d} → {first.end:%Y-%m-%d}). Nothing "
                    "was drafted. Use --force to draft them anyway (tests and demos only)."
                )
        report = periods_close(as_of=as_of, org=org)
        held = {
            entry.org_id: entry.error
            for entry in quarantined_open(orgs=Org.objects.all()).filter(
                kind=QuarantinedWork.Kind.RATING
            )
        }
        blocked = sorted({org_slug for org_slug, _ in report.failed})
        for org_slug, error in report.failed:
            self.stderr.write(f"  {org_slug}: close failed and is quarantined: {error}")
        for period, reason in report.skipped:
            if period.org_id in held:
                reason = f"{reason}; rating quarantined: {held[period.org_id]}"
                blocked.append(period.org.slug)
            self.stdout.write(f"  skipped {period.org.slug} {period}: {reason}")
        message = (
            f"{len(report.drafted_ids)} draft invoice(s) created ({report.final_adjustments} "
            f"final adjustment), {report.already} period(s) already invoiced, "
            f"{len(report.skipped)} skipped (as of {as_of.isoformat()})."
        )
        if blocked:
            self.stdout.write(message)
            names = sorted(set(blocked))
            raise CommandError(
                f"{len(names)} org(s) not closed because their close or rating failed and is "
                f"quarantined: {', '.join(names)}. Every other org was closed."
            )
        self.stdout.write(self.style.SUCCESS(message))
