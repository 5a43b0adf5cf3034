"""An invoice's or credit note's totals (SPEC §6 steps 6-8), as pure functions of values.

Step 6: subtotal = Σ rounded line amounts. Step 7: credits applied ≤ subtotal. Step 8: tax
once per rate on subtotal − credits, rounded once (SPEC §7); total = subtotal − credits + tax.
Nothing here reads or writes the database or changes a document: drafting, finalization and
credit notes copy the result onto their rows.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ..money import round_amount
from .tax import TaxRule

ZERO = Decimal(0)


@dataclass(frozen=True)
class TaxLine:
    """One rate's tax: ``amount`` = ``basis`` × ``rate`` / 100, rounded once."""

    rate: Decimal  # percent
    basis: Decimal
    amount: Decimal
    reason: str  # TaxReason
    mention: str


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    credits: Decimal
    taxes: tuple[TaxLine, ...]
    # SPEC §3: what a negative subtotal leaves to the org's balance (≥ 0; 0 for most documents).
    carried: Decimal = ZERO

    @property
    def tax_total(self) -> Decimal:
        return sum((tax.amount for tax in self.taxes), ZERO)

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.credits + self.carried + self.tax_total


def tax_amount(*, basis: Decimal, rate: Decimal, currency: str, rounding: str) -> Decimal:
    """The tax at ``rate`` percent on ``basis``, rounded once to ``currency``'s minor unit with
    the issuer's ``rounding`` mode (SPEC §6 step 8, §7)."""
    return round_amount(basis * rate / Decimal(100), currency, rounding)


def document_totals(
    *,
    subtotal: Decimal,
    credits: Decimal,
    rules: Iterable[TaxRule],
    currency: str,
    rounding: str,
) -> Totals:
    """Totals of a document whose rounded lines add up to ``subtotal``, given the ``credits``
    drawn (capped to [0, subtotal]) and one tax line per rule in ``rules``.

    A negative ``subtotal`` (a downward adjustment larger than the period's charges) gives a
    zero document: ``carried`` = −subtotal goes to the org's balance (SPEC §3), the taxable
    basis is 0, and the balance is drawn as a pre-tax credit by the next invoice, which lowers
    that invoice's tax by what this one would have refunded."""
    credits = min(max(credits, ZERO), max(subtotal, ZERO))
    carried = max(ZERO, -(subtotal - credits))
    basis = subtotal - credits + carried
    taxes = tuple(
        TaxLine(
            rate=rule.rate,
            basis=basis,
            amount=tax_amount(basis=basis, rate=rule.rate, currency=currency, rounding=rounding),
            reason=rule.reason,
            mention=rule.mention,
        )
        for rule in rules
    )
    return Totals(subtotal=subtotal, credits=credits, taxes=taxes, carried=carried)
