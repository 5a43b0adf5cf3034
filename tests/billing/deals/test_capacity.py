"""Pool H100 eu-north: 100 GPUs. globex reserves 88 from 2026-12-01 to 2027-03-01."""

from datetime import date
from decimal import Decimal

from billing.deals.capacity import capacity_overview, deal_fit
from billing.deals.models import Deal
from billing.models import CapacityPool

from .conftest import draft, line


def fit_rows(deal):
    fit = deal_fit(deal=deal, lines=list(deal.lines.select_related("product")))
    return fit, [
        (m.month, m.installed, m.reserved, m.deal, m.available, m.short)
        for pool in fit.pools
        for m in pool.months
    ]


def test_the_ramp_makes_february_short(am):
    # January: 88 + 8 = 96 ≤ 100. February: the ramp to 16 → 88 + 16 = 104: short by 4.
    # March: globex's reservation has ended → 16 ≤ 100.
    fit, rows = fit_rows(draft(am))

    assert rows == [
        (date(2027, 1, 1), 100, 88, 8, 12, 0),
        (date(2027, 2, 1), 100, 88, 16, 12, 4),
        (date(2027, 3, 1), 100, 0, 16, 100, 0),
    ]
    assert [str(s) for s in fit.shortfalls] == ["short by 4 GPUs in 2027-02 (H100 eu-north)"]
    assert not fit.fits


def test_it_fits_once_the_pool_grows(am):
    CapacityPool.objects.create(
        gpu_model="H100", region="eu-north", gpus=104, valid_from=date(2027, 2, 1)
    )

    fit, rows = fit_rows(draft(am))

    assert [r[5] for r in rows] == [0, 0, 0]
    assert fit.fits


def test_a_pool_shrinking_mid_month_counts_on_its_worst_day(am):
    CapacityPool.objects.create(
        gpu_model="H100", region="eu-north", gpus=90, valid_from=date(2027, 1, 20)
    )

    _, rows = fit_rows(draft(am, line(ramp=[])))

    # From Jan 20th: 88 + 8 − 90 = 6 short; installed is the month's smallest size.
    assert rows[0] == (date(2027, 1, 1), 90, 88, 8, 2, 6)


def test_overview_shows_who_holds_each_month(am, finance):
    approved = draft(am, line(ramp=[]))
    Deal.objects.filter(pk=approved.pk).update(status=Deal.Status.APPROVED)

    pools = capacity_overview(start=date(2026, 12, 1), months=4)

    (pool,) = pools
    assert pool.name == "H100 eu-north"
    assert [(m.month, m.installed, m.reserved, m.available, m.pipeline) for m in pool.months] == [
        (date(2026, 12, 1), 100, 88, 12, 0),
        (date(2027, 1, 1), 100, 88, 12, 8),
        (date(2027, 2, 1), 100, 88, 12, 8),
        (date(2027, 3, 1), 100, 0, 100, 8),
    ]
    assert [(h.kind, h.label, h.org, h.quantity) for h in pool.months[1].holders] == [
        ("contract", "globex-c", "globex", Decimal(88)),
        ("deal", f"deal {approved.pk}", "acme", Decimal(8)),
    ]


def test_an_account_manager_does_not_see_other_orgs_names(am):
    acme_only = {am.managed_orgs.get().pk}

    (pool,) = capacity_overview(start=date(2027, 1, 1), months=1, visible_org_ids=acme_only)

    assert [(h.id, h.label, h.org) for h in pool.months[0].holders] == [(0, "another org", "")]
