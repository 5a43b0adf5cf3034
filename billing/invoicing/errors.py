"""Errors of the invoicing rules."""

from core.errors import DomainError, ErrorCode, ErrorKind

INVALID, CONFLICT = ErrorKind.INVALID, ErrorKind.CONFLICT


class InvoicingError(DomainError):
    """A request the invoicing rules refuse (SPEC §3, §6)."""

    codes = {
        "reason_required": ErrorCode(INVALID, "Voids, write-offs and credit notes need a reason."),
        "invoice_draft": ErrorCode(CONFLICT, "The invoice is still a draft."),
        "invoice_status": ErrorCode(CONFLICT, "The invoice's status does not allow this."),
        "already_credited": ErrorCode(
            CONFLICT, "The invoice is partly credited: credit its remaining lines."
        ),
        "credit_exceeds_invoice": ErrorCode(
            INVALID, "Credit notes would total more than the invoice."
        ),
        "credit_exceeds_line": ErrorCode(INVALID, "More than what is left of the line."),
        "unknown_line": ErrorCode(INVALID, "The line is not one of the invoice's (or repeated)."),
        "invalid_amount": ErrorCode(INVALID, "A credit amount that is not a decimal number."),
        "amount_precision": ErrorCode(INVALID, "An amount finer than the currency's minor unit."),
        "no_lines": ErrorCode(INVALID, "A partial credit note names no line."),
    }
