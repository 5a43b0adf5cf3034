from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.models import Contract
from billing.rating.engine import RatingError
from billing.services import org_rate
from core.timeparse import parse_instant
from tenancy.models import Org


def parse_as_of(raw: str) -> datetime:
    try:
        return parse_instant(raw)
    except ValueError as exc:
        raise CommandError(f"--as-of {exc}") from None


class Command(BaseCommand):
    help = (
        "Rate every open or closing billing period that has begun (creating missing periods), "
        "for one org or all. Idempotent: each period's charges are replaced atomically. "
        "--as-of rates as if it were then (e.g. the day after a past month to bill it)."
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
        failed = 0
        for index, org in enumerate(orgs.iterator(), start=1):
            try:
                rated += len(org_rate(org=org, as_of=as_of))
            except RatingError as exc:
                failed += 1
                self.stderr.write(f"  {org.slug}: {exc}")
            if index % 100 == 0 or index == total:
                self.stdout.write(f"  {index}/{total} orgs")
        self.stdout.write(
            self.style.SUCCESS(
                f"Rated {rated} period(s) of {total} org(s) as of {as_of:%Y-%m-%dT%H:%M}Z."
            )
        )
        if failed:
            raise CommandError(f"{failed} org(s) could not be rated; see above.")
