from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy.models import ApiKey, Org
from tenancy.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key and print it once. Org key: create_api_key ORG --scope ingest|read. "
        "Platform collector key (reports for any org): create_api_key --collector NAME."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("org", nargs="?", help="The org's slug (for an org key).")
        parser.add_argument("--scope", choices=["ingest", "read"], default="ingest")
        parser.add_argument("--collector", metavar="NAME", help="Create a collector key.")
        parser.add_argument("--name", help="A label for the key (default: derived).")
        parser.add_argument(
            "--quiet", action="store_true", help="Print only the key (for scripts)."
        )

    def handle(self, *args: object, **options: str) -> None:
        if bool(options["org"]) == bool(options["collector"]):
            raise CommandError("Give either ORG (an org key) or --collector NAME, not both.")
        if options["collector"]:
            issued = api_key_create(name=options["collector"])
        else:
            org = Org.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"No org {options['org']!r}.")
            issued = api_key_create(
                name=options["name"] or f"{org.slug}-{options['scope']}",
                org=org,
                scope=options["scope"],
            )
        if options["quiet"]:
            self.stdout.write(issued.raw_key)
            return
        key: ApiKey = issued.api_key
        self.stdout.write(f"Created {key.get_kind_display().lower()} {key.name!r} ({key.scope}).")
        self.stdout.write("The key is shown once; store it now:")
        self.stdout.write(issued.raw_key)
