"""Errors of the invoicing rules."""


class InvoicingError(Exception):
    """A request the invoicing rules refuse; ``code`` is stable (API error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
