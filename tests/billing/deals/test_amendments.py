"""Deals that amend the org's running contract (SPEC §3 "Amendments", §6 steps 2-3).

acme's running contract acme-c (October and November 2026) reserves 4 H100 at 3.00 (burst
3.50) and takes 10 % off H100 on demand; list price 2.50. November has 30 days, 720 hours.
"""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group

from billing.catalog import load_catalog
from billing.deals import access
from billing.deals.economics import deal_economics
from billing.deals.models import Deal, DealEvent
from billing.deals.services import (
    DealError,
    TermInput,
    deal_approve,
    deal_create,
    deal_sign,
    deal_submit,
    deal_update,
)
from billing.deals.simulation import simulate, usage_months
from billing.invoicing.drafting import periods_close
from billing.models import (
    Amendment,
    BillingPeriod,
    Contract,
    ContractPrice,
    Issuer,
    RatedCharge,
    Reservation,
)
from billing.services import org_rate
from core.errors import ErrorKind
from tenancy.models import Org

from ...factories import staff_user
from ..conftest import gpu, ingest
from .conftest import CONTRACTS, line

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
BASE = {"product": "h100", "quantity": 4, "unit_price": "3.00", "burst_unit_price": "3.50"}


@pytest.fixture
def reserved(desk):
    """acme-c with its 4 reserved H100."""
    load_catalog({"contracts": [{**CONTRACTS[0], "reservations": [BASE]}]})
    return Contract.objects.get(key="acme-c")


def expansion(am, contract, **overrides):
    """+2 H100 from 2026-11-11 at 2.80, for a month: co-termed with acme-c (ends Dec 1)."""
    values = {"quantity": 2, "start": date(2026, 11, 11), "term_months": 1,
              "unit_price": D("2.80"), "ramp": []}  # fmt: skip
    terms = overrides.pop("terms", [])
    return deal_create(
        actor=am,
        org=Org.objects.get(slug="acme"),
        currency="USD",
        rate_card_key="list-usd",
        issuer=Issuer.objects.get(key="tessera-fr"),
        lines=[line(**{**values, **overrides})],
        terms=terms,
        amends=contract,
        title="+2 H100 from the 11th",
    )


def rate_november():
    org_rate(org=Org.objects.get(slug="acme"), as_of=DEC)
    return BillingPeriod.objects.get(org__slug="acme", start=NOV)


def test_an_expansion_signs_as_an_amendment_and_bills_both_reservations(am, finance, reserved):
    ingest([gpu(hour, "18000", day0=NOV) for hour in range(720)], now=DEC)  # 5 GPUs each hour
    deal = expansion(am, reserved)
    assert deal.lines.get().end == date(2026, 12, 1)  # co-termed with acme-c

    deal = deal_submit(actor=am, deal_id=deal.pk)
    deal = deal_sign(actor=finance, deal_id=deal.pk)

    amendment = Amendment.objects.get()
    assert deal.amendment == amendment
    assert deal.contract is None
    assert (amendment.contract, amendment.effective, amendment.signed_by) == (
        reserved,
        date(2026, 11, 11),
        finance,
    )
    assert amendment.summary == (
        f"Deal {deal.pk}: +2 × H100 GPU-hour 2026-11-11 to 2026-11-30 at 2.80 per GPU-hour"
    )
    added = Reservation.objects.get(amendment=amendment)
    assert (added.contract, added.quantity, added.start, added.end) == (
        reserved, D(2), date(2026, 11, 11), date(2026, 12, 1),
    )  # fmt: skip
    assert reserved.end == date(2026, 12, 1)  # the contract itself is unchanged

    period = rate_november()
    drafted = periods_close(as_of=datetime(2026, 12, 3, tzinfo=UTC)).drafted
    (invoice,) = [i for i in drafted if i.period_start == NOV]

    # 4 × 720 h × 3.00; 2 × 480 h × 2.80; burst 1 × 240 h × 3.50 (until the 11th)
    assert [(line.kind, line.description, line.amount) for line in invoice.lines.all()] == [
        ("reservation", "H100 GPU-hour: reservation (4 reserved 2026-11-01 to 2026-11-30)",
         D("8640.00")),
        ("reservation",
         "H100 GPU-hour: reservation (2 reserved 2026-11-11 to 2026-11-30 (amendment))",
         D("2688.00")),
        ("covered", "H100 GPU-hour: covered by reservation", D(0)),
        ("burst", "H100 GPU-hour: burst above reservation", D("840.00")),
    ]  # fmt: skip
    assert period.subtotal == D("12168.00")


def test_the_amendment_description_names_the_days_of_the_period(am, finance, reserved):
    ingest([gpu(0, "3600", day0=NOV)], now=DEC)
    deal = deal_submit(actor=am, deal_id=expansion(am, reserved).pk)
    deal_sign(actor=am, deal_id=deal.pk)

    period = rate_november()

    base, added = RatedCharge.objects.filter(period=period, kind="reservation").order_by("line")
    # the base reservation's own term began in October: the line names November's days
    assert base.description == "4 reserved 2026-11-01 to 2026-11-30"
    assert added.description == "2 reserved 2026-11-11 to 2026-11-30 (amendment)"


def test_an_amendment_cannot_start_in_an_invoiced_period(am, reserved):
    ingest([gpu(0, "3600")], now=NOV)
    org_rate(org=Org.objects.get(slug="acme"), as_of=NOV)
    periods_close(as_of=datetime(2026, 11, 3, tzinfo=UTC))  # October is invoiced

    with pytest.raises(DealError) as refused:
        expansion(am, reserved, start=date(2026, 10, 20))

    assert refused.value.fields == {
        "lines.0.start": [
            "H100 GPU-hour from 2026-10-20: acme-c is invoiced through 2026-10-31: an "
            "amendment cannot change billed days; start on or after 2026-11-01."
        ]
    }
    assert not Deal.objects.exists()


def test_a_period_invoiced_after_approval_stops_the_signature(am, finance, settings, reserved):
    settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT = "0"
    deal = expansion(am, reserved, start=date(2026, 10, 20), unit_price=D("2.00"))
    deal = deal_submit(actor=am, deal_id=deal.pk)
    deal_approve(actor=finance, deal_id=deal.pk)
    ingest([gpu(0, "3600")], now=NOV)
    org_rate(org=Org.objects.get(slug="acme"), as_of=NOV)
    periods_close(as_of=datetime(2026, 11, 3, tzinfo=UTC))

    with pytest.raises(DealError) as refused:
        deal_sign(actor=am, deal_id=deal.pk)

    assert "acme-c is invoiced through 2026-10-31" in refused.value.message
    deal.refresh_from_db()
    assert deal.status == Deal.Status.APPROVED
    assert not Amendment.objects.exists()
    assert Reservation.objects.filter(contract=reserved).count() == 1


def test_a_customer_without_an_end_date_on_demand_only_gets_a_deal(am, finance):
    # given acme on an open-ended, on-demand-only contract from December
    load_catalog({"contracts": [{"key": "acme-od", "org": "acme", "issuer": "tessera-fr",
                                 "rate_card": "list-usd", "start": "2026-12-01"}]})  # fmt: skip
    contract = Contract.objects.get(key="acme-od")

    # a new contract over it is refused, naming it
    with pytest.raises(DealError) as refused:
        expansion(am, None, start=date(2027, 1, 1), term_months=12)
    assert refused.value.fields["amends"][-1] == (
        "Acme AI SAS already has contract acme-od (from 2026-12-01, no end date) over these "
        "dates: choose it under “Amends” to add these lines to it."
    )

    # an amendment of it goes through: 8 H100 for 12 months from January
    deal = expansion(am, contract, quantity=8, start=date(2027, 1, 1), term_months=12)
    deal = deal_submit(actor=am, deal_id=deal.pk)
    if deal.status == Deal.Status.PENDING_APPROVAL:
        deal_approve(actor=finance, deal_id=deal.pk)
    deal = deal_sign(actor=am, deal_id=deal.pk)

    contract.refresh_from_db()
    assert contract.end is None
    assert list(contract.reservations.values_list("quantity", "start", "end")) == [
        (D(8), date(2027, 1, 1), date(2028, 1, 1))
    ]
    assert contract.amendments.get().deal == deal


def test_a_discount_from_a_date_supersedes_the_contracts_own(am, finance, desk):
    # acme-c: 10 % off H100 on demand. The deal: 2 H100 from the 16th, and 20 % off H100
    # from the 16th, which also prices the burst above them. 3 GPUs used every hour.
    ingest([gpu(hour, "10800", day0=NOV) for hour in range(720)], now=DEC)
    contract = Contract.objects.get(key="acme-c")
    deal = expansion(
        am,
        contract,
        start=date(2026, 11, 16),
        terms=[TermInput(product=line().product, valid_from=date(2026, 11, 16),
                         discount_percent=D(20))],
    )  # fmt: skip
    deal = deal_submit(actor=am, deal_id=deal.pk)
    assert deal.approval_reasons == ["on-demand terms: 20% off H100 GPU-hour from 2026-11-16"]
    deal_approve(actor=finance, deal_id=deal.pk)
    deal_sign(actor=am, deal_id=deal.pk)

    period = rate_november()

    assert ContractPrice.objects.filter(contract=contract).count() == 2  # nothing rewritten
    # Nov 1-15 on demand: 3 × 360 h = 1,080 at 2.25 = 2,430.00. From the 16th: 2 × 360 h
    # reserved at 2.80 = 2,016.00, 1 × 360 h burst at 2.50 − 20 % = 2.00 → 720.00.
    assert [
        (c.kind, c.quantity, c.unit_price, c.amount, c.description)
        for c in RatedCharge.objects.filter(period=period).order_by("kind", "line")
    ] == [
        ("burst", D(360), D("2.00"), D("720.00"), ""),
        ("covered", D(720), D(0), D(0), ""),
        ("on_demand", D(1080), D("2.25"), D("2430.00"), "10% off list, 2026-11-01 to 2026-11-15"),
        ("reservation", D(720), D("2.80"), D("2016.00"),
         "2 reserved 2026-11-16 to 2026-11-30 (amendment)"),
    ]  # fmt: skip


def test_economics_compare_the_contract_with_and_without_the_amendment(am, reserved):
    economics = deal_economics(deal=expansion(am, reserved))

    # November: acme-c commits 4 × 720 × 3.00 = 8,640.00; the amendment 2 × 480 × 2.80
    assert economics.amends == "acme-c"
    ((november),) = economics.monthly
    assert (november.current, november.amount, november.with_deal) == (
        D("8640.00"), D("2688.00"), D("11328.00"),
    )  # fmt: skip
    assert economics.total_contract_value == D("2688.00")
    assert economics.value_with_deal == D("11328.00")


def test_the_simulation_rates_the_contract_with_and_without_the_amendment(am, finance, reserved):
    ingest([gpu(hour, "18000", day0=NOV) for hour in range(720)], now=DEC)
    deal = expansion(am, reserved)
    as_of = datetime(2026, 12, 10, tzinfo=UTC)

    result = simulate(deal=deal, as_of=as_of)

    assert usage_months(deal=deal, as_of=as_of) == 1  # November is the only month with usage
    (november,) = result.months
    # current: 8,640.00 + burst 1 × 720 h × 3.50 = 11,160.00; with the amendment: 12,168.00
    assert (november.current, november.deal, november.difference, november.basis) == (
        D("11160.00"), D("12168.00"), D("1008.00"), "acme-c",
    )  # fmt: skip
    assert (november.reserved, november.covered, november.burst, november.burst_hours) == (
        D(3840), D(3360), D(240), 240,
    )  # fmt: skip
    assert november.current_burst_hours == 720
    assert not Amendment.objects.exists()  # rolled back
    assert Reservation.objects.filter(contract=reserved).count() == 1

    # once signed, "current" is still the contract without it
    deal = deal_submit(actor=am, deal_id=deal.pk)
    deal = deal_sign(actor=am, deal_id=deal.pk)
    (signed,) = simulate(deal=deal, as_of=as_of).months
    assert (signed.current, signed.deal) == (D("11160.00"), D("12168.00"))
    assert Reservation.objects.filter(contract=reserved).count() == 2


def _both_roles(username):
    user = staff_user(username, "account_manager")
    user.groups.add(Group.objects.get_or_create(name="finance")[0])
    return user


def test_four_eyes_the_approver_wrote_none_of_the_terms(am, finance, reserved, settings):
    # alice drafts; carol (account manager and finance) takes over acme, edits the price down
    # and submits; dave (both roles too) only submits another of alice's deals
    settings.TESSERA_DEAL_APPROVAL_DISCOUNT_PERCENT = "0"
    carol = _both_roles("carol")
    deal = expansion(am, reserved)
    Org.objects.filter(slug="acme").update(account_manager=carol)
    deal = deal_update(
        actor=carol, deal_id=deal.pk, currency="USD", rate_card_key="list-usd",
        issuer=deal.issuer, amends=reserved,
        lines=[line(quantity=2, start=date(2026, 11, 11), term_months=1,
                    unit_price=D("0.01"), ramp=[])],
    )  # fmt: skip
    deal = deal_submit(actor=carol, deal_id=deal.pk)

    with pytest.raises(DealError) as refused:
        deal_approve(actor=carol, deal_id=deal.pk)

    assert (refused.value.code, refused.value.kind) == ("four_eyes", ErrorKind.FORBIDDEN)
    assert refused.value.message == (
        "You created, edited or submitted this deal's terms, so you cannot approve it: "
        "another finance user decides (four eyes)."
    )
    deal.refresh_from_db()
    assert deal.status == Deal.Status.PENDING_APPROVAL
    assert not DealEvent.objects.filter(deal=deal, action="approved").exists()
    assert not access.may_decide(carol, deal)
    assert access.may_decide(finance, deal)

    dave = _both_roles("dave")
    Org.objects.filter(slug="acme").update(account_manager=am)
    other = expansion(am, reserved, start=date(2026, 11, 12), unit_price=D("2.00"))
    Org.objects.filter(slug="acme").update(account_manager=dave)
    other = deal_submit(actor=dave, deal_id=other.pk)  # dave only submits alice's terms
    with pytest.raises(DealError) as submitter:
        deal_approve(actor=dave, deal_id=other.pk)
    assert submitter.value.code == "four_eyes"

    assert deal_approve(actor=finance, deal_id=deal.pk).status == Deal.Status.APPROVED


def test_an_amendments_term_on_the_day_of_the_contracts_own_supersedes_it(am, finance, desk):
    # acme-c: 10 % off H100 from 2026-10-01. The deal, from 2026-11-01: 2 H100 and 20 % off
    # H100. Simulated over October-November it moves one month back, onto 2026-10-01, the
    # day acme-c's own discount starts: the later term holds, nothing collides.
    ingest([gpu(hour, "10800") for hour in range(48)], now=NOV)  # Oct 1-2: 3 GPUs an hour
    contract = Contract.objects.get(key="acme-c")
    h100 = line().product
    deal = expansion(
        am, contract, start=date(2026, 11, 1),
        terms=[TermInput(product=h100, valid_from=date(2026, 11, 1), discount_percent=D(20))],
    )  # fmt: skip

    (october, _) = simulate(deal=deal, months=2, as_of=datetime(2026, 12, 10, tzinfo=UTC)).months

    # current: 144 GPU-hours at 2.25 = 324.00; with it: 2 × 744 h × 2.80 = 4,166.40 and
    # 1 × 48 h of burst at 2.50 − 20 % = 2.00 → 96.00
    assert (october.current, october.deal) == (D("324.00"), D("4262.40"))
    assert not Amendment.objects.exists()
