"""Errors of the invoicing rules."""

from core.errors import DomainError, ErrorCode, ErrorKind

INVALID, CONFLICT = ErrorKind.INVALID, ErrorKind.CONFLICT


class InvoicingError(DomainError):
    """A request the invoicing rules refuse (SPEC §3, §6)."""

    codes = {
        "reason_required": ErrorCode(INVALID, "Voids, write-offs and credit notes need a reason."),
        "invoice_draft": ErrorCode(CONFLICT, "The invoice is still a draft."),
        "invoice_void": ErrorCode(CONFLICT, "The invoice is void: it is no longer payable."),
        "invoice_status": ErrorCode(CONFLICT, "The invoice's status does not allow this."),
        "already_credited": ErrorCode(
            CONFLICT, "The invoice is partly credited: credit its remaining lines."
        ),
        "credit_exceeds_invoice": ErrorCode(
            INVALID, "Credit notes would total more than the invoice."
        ),
        "credit_exceeds_line": ErrorCode(INVALID, "More than what is left of the line."),
        "unknown_line": ErrorCode(INVALID, "The line is not one of the invoice's (or repeated)."),
        "invalid_amount": ErrorCode(INVALID, "An amount that is not a usable decimal number."),
        "amount_precision": ErrorCode(INVALID, "An amount finer than the currency's minor unit."),
        "no_lines": ErrorCode(INVALID, "A partial credit note names no line."),
        "fx_rate_missing": ErrorCode(
            CONFLICT, "No ECB reference rate to state the VAT in national currency: load_fx_rates."
        ),
        # Receivables, void and reissue, draft review (issue 15).
        "reference_required": ErrorCode(INVALID, "A payment needs its bank or Stripe reference."),
        "invalid_method": ErrorCode(INVALID, "Not a payment method: bank_transfer, stripe, other."),
        "invalid_date": ErrorCode(INVALID, "Not a date (YYYY-MM-DD)."),
        "overpayment": ErrorCode(INVALID, "More than what is outstanding on the invoice."),
        "balance_used": ErrorCode(
            CONFLICT, "The balance the invoice carried is already used: credit it instead."
        ),
        "reissue_failed": ErrorCode(CONFLICT, "The voided period cannot be drafted again yet."),
        "rerate_failed": ErrorCode(CONFLICT, "The period cannot be drafted after re-rating."),
    }
