"""Errors of the deal desk."""

from core.errors import DomainError, ErrorCode, ErrorKind


class DealError(DomainError):
    """A refused deal operation: ``code`` is stable, ``fields`` names what is wrong."""

    codes = {
        "permission_denied": ErrorCode(ErrorKind.FORBIDDEN, "Authenticated, but not allowed."),
        "invalid_transition": ErrorCode(
            ErrorKind.CONFLICT, "The deal's status does not allow this transition."
        ),
        "validation_error": ErrorCode(
            ErrorKind.INVALID, "The input is invalid; ``fields`` names each field."
        ),
        "contract_invalid": ErrorCode(
            ErrorKind.INVALID, "The catalog would refuse the contract this deal creates."
        ),
        "amendment_refused": ErrorCode(
            ErrorKind.CONFLICT,
            "The amendment would change an invoiced period or reach outside its contract.",
        ),
        "four_eyes": ErrorCode(
            ErrorKind.FORBIDDEN,
            "The approver created, edited or submitted the deal's terms; another decides.",
        ),
    }
