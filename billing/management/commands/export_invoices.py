from pathlib import Path
from typing import IO, Any, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from billing.invoicing.export import documents, write_csv, write_einvoices, write_json
from billing.invoicing.models import CreditNote, Invoice
from billing.invoicing.selectors import credit_notes_for, invoices_for
from billing.models import Issuer
from core.timeparse import month_of
from metering.models import QuarantinedWork
from metering.quarantine import describe, logger, work_quarantine
from tenancy.models import Org


class _Raw:
    """The command's stdout without the newline Django's wrapper adds to each write."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> int:
        self.wrapper.write(text, ending="")
        return len(text)


class Command(BaseCommand):
    help = (
        "Export the invoices (or credit notes) of a month as JSON or CSV, or as EN 16931 "
        "e-invoices: --format facturx writes <number>.pdf (PDF/A-3 with factur-x.xml) and "
        "--format xrechnung <number>.xml (CII) into the --output directory (SPEC §5). Invoices "
        "are those whose period starts in --period; drafts only with --status draft, void "
        "ones only with --status void (as json or csv: neither has an e-invoice). A "
        "document that cannot be exported is left out, quarantined and reported; the others "
        "are written and the command exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, help="YYYY-MM")
        parser.add_argument(
            "--format", choices=["json", "csv", "facturx", "xrechnung"], default="json"
        )
        parser.add_argument(
            "--output",
            help="File to write (json, csv; default standard output) or directory (facturx, "
            "xrechnung; required).",
        )
        parser.add_argument("--issuer", help="Only this issuer (key).")
        parser.add_argument(
            "--status",
            action="append",
            choices=Invoice.Status.values,
            help="Only these statuses (repeatable); default every finalized one but void.",
        )
        parser.add_argument(
            "--credit-notes", action="store_true", help="Export credit notes issued that month."
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            period = month_of(str(options["period"]))
        except ValueError:
            raise CommandError("--period must be YYYY-MM") from None
        orgs = Org.objects.all()  # finance's command: every org, explicitly
        issuer = options["issuer"] if isinstance(options["issuer"], str) else None
        statuses = options["status"] if isinstance(options["status"], list) else None
        fmt = str(options["format"])
        einvoice = fmt in ("facturx", "xrechnung")
        if issuer is not None and not Issuer.objects.filter(key=issuer).exists():
            known = ", ".join(Issuer.objects.order_by("key").values_list("key", flat=True))
            raise CommandError(f"--issuer: no issuer {issuer!r} (known: {known or 'none'})")
        unissuable = sorted(set(statuses or ()) & {"draft", "void"})
        if einvoice and unissuable and not options["credit_notes"]:
            # A usage error, refused before anything is written or quarantined.
            raise CommandError(
                f"--format {fmt} --status {' '.join(unissuable)}: a draft has no number yet "
                "and a void invoice is no longer payable, so neither has an e-invoice; export "
                "them as json or csv"
            )
        query: QuerySet[Invoice] | QuerySet[CreditNote]
        if options["credit_notes"]:
            query = credit_notes_for(orgs=orgs, period=period, issuer=issuer)
        else:
            query = invoices_for(
                orgs=orgs, period=period, issuer=issuer, status=statuses,
                include_drafts=bool(statuses and "draft" in statuses),
                include_void=bool(statuses and "void" in statuses),
            )  # fmt: skip
        output = options["output"]
        if einvoice and not output:
            raise CommandError(f"--format {fmt} needs --output DIRECTORY")
        if einvoice:
            try:
                Path(str(output)).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CommandError(
                    f"--output {output}: cannot use it as a directory ({exc.strerror})"
                ) from None
        failed: list[str] = []
        failed_units: set[str] = set()
        prefix = "credit_note" if options["credit_notes"] else "invoice"

        def set_aside(document: Invoice | CreditNote, exc: Exception) -> None:
            name = document.number or f"draft {document.pk}"
            error = describe(exc)
            logger.exception("export of %s (org %s) quarantined: %s", name, document.org_id, error)
            unit = f"{prefix}:{document.pk}"
            work_quarantine(
                kind=QuarantinedWork.Kind.EXPORT, org_id=document.org_id, unit=unit, error=error
            )
            failed.append(name)
            failed_units.add(unit)
            self.stderr.write(f"  {name}: {error}")

        if einvoice:
            written = write_einvoices(
                query, Path(str(output)), str(options["format"]), on_error=set_aside
            )
            self._finish(query, prefix, failed, failed_units, len(written), output)
            return
        out: IO[str] = cast(IO[str], _Raw(self.stdout))
        if output:
            try:
                out = open(str(output), "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise CommandError(f"--output {output}: cannot write it ({exc.strerror})") from None
        try:
            rows = documents(query, on_error=set_aside)
            if options["format"] == "json":
                count = write_json(rows, out)
            else:
                count = write_csv(rows, out, credit_notes=bool(options["credit_notes"]))
        finally:
            if output:
                out.close()
        self._finish(query, prefix, failed, failed_units, count, output)

    def _finish(
        self,
        query: QuerySet[Invoice] | QuerySet[CreditNote],
        prefix: str,
        failed: list[str],
        failed_units: set[str],
        count: int,
        output: object,
    ) -> None:
        """Report, resolve what this run exported, and fail if anything was set aside."""
        if output:
            self.stderr.write(f"{count} document(s) written to {output}.")
        _resolve_exported(query, prefix=prefix, failed_units=failed_units)
        if failed:
            raise CommandError(
                f"{len(failed)} document(s) could not be exported and are quarantined: "
                f"{', '.join(failed)}. The {count} other(s) were written."
            )


def _resolve_exported(
    query: QuerySet[Invoice] | QuerySet[CreditNote], *, prefix: str, failed_units: set[str]
) -> None:
    """Resolve the quarantined exports of documents that this run exported."""
    held = QuarantinedWork.objects.filter(
        kind=QuarantinedWork.Kind.EXPORT, resolved_at__isnull=True, unit__startswith=f"{prefix}:"
    ).exclude(unit__in=failed_units)
    ids = {int(unit.split(":", 1)[1]) for unit in held.values_list("unit", flat=True)}
    if ids:
        exported = {
            f"{prefix}:{pk}" for pk in query.filter(pk__in=ids).values_list("pk", flat=True)
        }
        held.filter(unit__in=exported).update(resolved_at=timezone.now())
