import stripe
from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.stripe.client import stripe_enabled
from billing.stripe.services import SyncBusy, invoice_sync, invoices_to_sync


class Command(BaseCommand):
    help = (
        "Push every finalized invoice that Stripe does not fully hold yet (customer, items, "
        "invoice, finalization, void / uncollectible). Resumable and idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--invoice", type=int, help="Only this invoice (id).")

    def handle(self, *args: object, **options: int | None) -> None:
        if not stripe_enabled():
            raise CommandError("Stripe is not configured (STRIPE_API_KEY).")
        ids = [options["invoice"]] if options["invoice"] else invoices_to_sync()
        failed = 0
        for done, invoice_id in enumerate(ids, start=1):
            try:
                sync = invoice_sync(invoice_id=invoice_id)
                self.stdout.write(
                    f"  {done}/{len(ids)} invoice {invoice_id}: {sync.stripe_invoice_id}"
                )
            except SyncBusy:
                self.stdout.write(f"  {done}/{len(ids)} invoice {invoice_id}: busy elsewhere")
            except stripe.StripeError as exc:
                failed += 1
                self.stderr.write(f"  {done}/{len(ids)} invoice {invoice_id}: {exc}")
        message = f"{len(ids) - failed} invoice(s) in sync, {failed} failed (run again)."
        if failed:
            raise CommandError(message)
        self.stdout.write(self.style.SUCCESS(message))
