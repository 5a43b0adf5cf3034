from datetime import datetime
from functools import partial

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.models import Contract
from billing.services import org_rate
from core.timeparse import parse_instant
from metering.models import QuarantinedWork
from metering.quarantine import attempt
from tenancy.models import Org


def parse_as_of(raw: str, option: str = "--as-of") -> datetime:
    try:
        return parse_instant(raw)
    except ValueError as exc:
        raise CommandError(f"{option} {exc}") from None
    except OverflowError:
        raise CommandError(f"{option} {raw!r} is out of range") from None


class Command(BaseCommand):
    help = (
        "Rate every open or closing billing period that has begun (creating missing periods), "
        "for one org or all. Idempotent: each period's charges are replaced atomically. "
        "--as-of rates as if it were then (e.g. the day after a past month to bill it). "
        "An org that fails is rolled back, quarantined and reported; every other org is rated; "
        "the command then exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Only this org (slug).")
        parser.add_argument("--as-of", help="ISO date or datetime with timezone; default now.")

    def handle(self, *args: object, **options: str | None) -> None:
        raw = options.get("as_of")
        as_of = parse_as_of(raw) if raw else timezone.now()
        orgs = Org.objects.filter(pk__in=Contract.objects.values("org_id")).order_by("slug")
        if options.get("org"):
            orgs = orgs.filter(slug=options["org"])
            if not orgs.exists():
                raise CommandError(f"No org {options['org']!r} with a contract.")
        total = orgs.count()
        rated = 0
        failed: list[tuple[str, str]] = []
        for index, org in enumerate(orgs.iterator(), start=1):
            outcome = attempt(
                partial(org_rate, org=org, as_of=as_of),
                kind=QuarantinedWork.Kind.RATING,
                org=org,
                savepoint=False,  # each period is rated in its own transaction
            )
            if outcome.ok:
                rated += len(outcome.value or [])
            else:
                failed.append((org.slug, outcome.error))
                self.stderr.write(f"  {org.slug}: {outcome.error}")
            if index % 100 == 0 or index == total:
                self.stdout.write(f"  {index}/{total} orgs")
        self.stdout.write(
            f"Rated {rated} period(s) of {total - len(failed)} org(s) as of "
            f"{as_of:%Y-%m-%dT%H:%M}Z; {len(failed)} org(s) failed."
        )
        if failed:
            raise CommandError(
                f"{len(failed)} org(s) could not be rated and are quarantined: "
                + ", ".join(slug for slug, _ in failed)
                + ". Every other org was rated."
            )
        self.stdout.write(self.style.SUCCESS("Every org rated."))
