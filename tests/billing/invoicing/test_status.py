"""The status graph is stated once (``billing.invoicing.status.TRANSITIONS``): the services
and the database trigger generated from it allow exactly the same moves."""

import pytest
from django.db import IntegrityError, connection, transaction

from billing.invoicing.drafting import periods_close
from billing.invoicing.models import Invoice
from billing.invoicing.status import TRANSITIONS, can_move, status_moves_sql

from .conftest import AFTER_GRACE, rated_period, worked_charges

STATUSES = Invoice.Status.values


class _Undo(Exception):
    pass


def _path_to(status: str) -> list[str]:
    """The statuses from draft to ``status`` along the graph (breadth first)."""
    paths = {"draft": ["draft"]}
    queue = ["draft"]
    while queue:
        current = queue.pop(0)
        for target in sorted(TRANSITIONS[current]):
            if target not in paths:
                paths[target] = [*paths[current], target]
                queue.append(target)
    return paths[status]


def _set_status(invoice_id: int, status: str, *, from_draft: bool) -> None:
    """A raw UPDATE of the status (leaving draft also numbers it, as a check constraint
    requires), so only the database judges the move."""
    numbered = ", number = 'TFR-T-1', issue_date = '2026-11-04', due_date = '2026-12-04'"
    extra = numbered if from_draft and status != "draft" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE billing_invoice SET status = %s{extra} WHERE id = %s", [status, invoice_id]
        )


def _database_accepts(invoice_id: int, status: str, *, from_draft: bool) -> bool:
    try:
        with transaction.atomic():
            _set_status(invoice_id, status, from_draft=from_draft)
            raise _Undo
    except _Undo:
        return True
    except IntegrityError:
        return False


def test_every_status_is_reachable_from_draft_and_terminal_ones_have_no_way_out():
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(_path_to(status)[-1] == status for status in STATUSES)
    assert TRANSITIONS["paid"] == TRANSITIONS["void"] == frozenset()


@pytest.mark.parametrize("old", STATUSES)
def test_the_database_allows_exactly_the_moves_of_the_graph(world, old):
    # given an invoice brought to ``old`` along the graph
    rated_period(world, charges=worked_charges(world))
    invoice = periods_close(as_of=AFTER_GRACE).drafted[0]
    path = _path_to(old)
    for before, status in zip(path, path[1:], strict=False):
        _set_status(invoice.pk, status, from_draft=before == "draft")

    # when each status is tried, then the trigger accepts exactly what can_move says
    accepted = {
        new: _database_accepts(invoice.pk, new, from_draft=old == "draft") for new in STATUSES
    }
    assert accepted == {new: can_move(old, new) for new in STATUSES}
    assert Invoice.objects.get(pk=invoice.pk).status == old


def test_the_trigger_condition_is_generated_from_the_graph():
    assert status_moves_sql("o", "n") == (
        "n = o OR (o = 'draft' AND n IN ('finalized'))"
        " OR (o = 'finalized' AND n IN ('overdue', 'paid', 'uncollectible', 'void'))"
        " OR (o = 'overdue' AND n IN ('paid', 'uncollectible', 'void'))"
        " OR (o = 'uncollectible' AND n IN ('paid', 'void'))"
    )
