import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy.models import StaffRole
from tenancy.services import staff_user_create


class Command(BaseCommand):
    help = (
        "Create a staff user (or give an existing one a role): finance, account_manager, operator."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=StaffRole.values)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password",
            help="Password (default: $TESSERA_STAFF_PASSWORD; none set: login disabled until set).",
        )

    def handle(self, *args: object, **options: str) -> None:
        password = options["password"] or os.environ.get("TESSERA_STAFF_PASSWORD")
        try:
            user = staff_user_create(
                username=options["username"],
                role=options["role"],
                email=options["email"],
                password=password,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{user} has the role {options['role']}."))
