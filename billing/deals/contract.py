"""A deal's contract: the entry of the catalog's ``contracts`` section a signed deal becomes
(SPEC §5 shape), so it passes exactly the checks of a reviewed catalog file."""

from typing import Any

from django.db import transaction

from ..catalog import CatalogError, load_catalog
from .economics import line_end
from .models import Deal, DealLine, DealTerm
from .terms import number_text


class _DryRun(Exception):
    pass


def contract_entry(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> dict[str, Any]:
    """The deal as an entry of the catalog's ``contracts`` section (SPEC §5 shape): its lines
    as reservations, its on-demand terms as dated discounts and custom prices."""

    def dated(term: DealTerm) -> dict[str, str]:
        return {
            "from": term.valid_from.isoformat(),
            **({"until": term.valid_until.isoformat()} if term.valid_until else {}),
        }

    return {
        "key": deal.contract_key,
        "org": deal.org.slug,
        "issuer": deal.issuer.key,
        "rate_card": deal.rate_card_key,
        "currency": deal.currency,
        "start": min(line.start for line in lines).isoformat(),
        "end": max(line_end(line) for line in lines).isoformat(),
        "reservations": [
            {
                "product": line.product.key,
                "quantity": line.quantity,
                "unit_price": number_text(line.unit_price),
                "start": line.start.isoformat(),
                "end": line_end(line).isoformat(),
                **(
                    {"burst_unit_price": number_text(line.burst_unit_price)}
                    if line.burst_unit_price is not None
                    else {}
                ),
                "ramp": [{"from": s["from"], "quantity": s["quantity"]} for s in line.ramp],
            }
            for line in lines
        ],
        "discounts": [
            {
                **({"product": t.product.key} if t.product else {}),
                "percent": number_text(t.discount_percent),
                **dated(t),
            }
            for t in terms
            if t.unit_price is None
        ],
        "prices": [
            {"product": t.product.key, "unit_price": number_text(t.unit_price), **dated(t)}
            for t in terms
            if t.unit_price is not None and t.product is not None
        ],
    }


def contract_errors(deal: Deal, lines: list[DealLine], terms: list[DealTerm]) -> list[str]:
    """What the catalog would refuse in the deal's new contract; nothing is written."""
    try:
        with transaction.atomic():
            load_catalog({"contracts": [contract_entry(deal, lines, terms)]})
            raise _DryRun
    except CatalogError as exc:
        return exc.errors
    except _DryRun:
        return []
