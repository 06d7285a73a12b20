"""An amortizing provider offer becomes terms disclosed with its installments (Appendix J), its term set by the last
due date, its termsHash covering the payments; a lender's own payments are checked against the disclosure; and
servicing reads what is due by a date from the stored disclosure."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from aggregator.assets import Asset
from aggregator.installments import (
    days_past_due,
    due_by,
    first_unpaid,
    schedule_from_disclosure,
    total_of_payments,
)
from aggregator.offer_terms import (
    MAX_SCHEDULE_YEARS,
    lender_schedule,
    offer_terms,
    schedule_mismatch,
    schedule_past_maximum,
)
from compliance import ComplianceInputError, disclose
from compliance.tila.apr import CashFlow, UnitPeriod, actuarial_apr, round_apr, unit_periods_between
from providers.models import InstallmentSchedule, ProviderKind, ProviderOffer, RepaymentShape, ScheduledPayment

pytestmark = pytest.mark.unit

USDC = Asset("USDC", 6, Decimal(1))
START = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
OFFER = ProviderOffer(
    provider_id="sim-fintech",
    kind=ProviderKind.TRADITIONAL,
    asset="USDC",
    principal=1_200 * 10**6,
    rate_bps=1_200,
    origination_fee=12 * 10**6,
    term_days=180,
    repayment=RepaymentShape.INSTALLMENTS,
    installments=6,
    expires_at=datetime(2026, 1, 15, 11, tzinfo=UTC),
    provider_ref="sim-fintech-1",
)


def test_a_single_payment_offer_keeps_the_requested_term_and_one_payment() -> None:
    offer, terms = offer_terms(replace(OFFER, repayment=RepaymentShape.SINGLE, installments=1), USDC, START)
    disclosure = disclose(terms)
    assert offer.term_days == terms.term_days == 180
    assert len(disclosure.payments) == 1
    assert disclosure.repayment == "single-payment"
    assert lender_schedule(offer, disclosure, USDC) is None


def test_an_amortizing_offer_is_disclosed_with_its_installments_and_takes_their_term() -> None:
    offer, terms = offer_terms(OFFER, USDC, START)
    disclosure = disclose(terms)
    assert offer.term_days == (date(2026, 7, 15) - date(2026, 1, 15)).days == 181, "the last due date sets the term"
    assert [p.due for p in disclosure.payments] == [date(2026, m, 15) for m in range(2, 8)]
    assert disclosure.repayment == "equal-installments/monthly"
    assert sum(p.principal for p in disclosure.payments) == Decimal(1_200)
    # Appendix J: the APR solves amount financed = Σ payment_k / (1 + i)^k over monthly unit periods
    flows = [
        CashFlow(p.amount, *unit_periods_between(START.date(), p.due, UnitPeriod.MONTH)) for p in disclosure.payments
    ]
    assert disclosure.apr_percent == round_apr(actuarial_apr([CashFlow(Decimal(1_188), 0)], flows, 12))
    single = disclose(offer_terms(replace(OFFER, repayment=RepaymentShape.SINGLE), USDC, START)[1])
    assert disclosure.terms_hash() != single.terms_hash(), "the installments are what is hashed"
    hashed = json.loads(disclosure.to_canonical_json())
    assert [p["amount"] for p in hashed["payments"]] == [f"{p.amount:.6f}" for p in disclosure.payments]


def test_every_shape_the_protocol_names_reaches_the_disclosure() -> None:
    schedule = InstallmentSchedule(
        frequency="quarterly", day_count="actual/365", first_due=date(2026, 5, 1), balloon=300 * 10**6
    )
    offer, terms = offer_terms(replace(OFFER, installments=4, schedule=schedule), USDC, START)
    disclosure = disclose(terms)
    assert [p.due for p in disclosure.payments] == [
        date(2026, 5, 1),
        date(2026, 8, 1),
        date(2026, 11, 1),
        date(2027, 2, 1),
    ]
    assert disclosure.repayment == "installments-with-balloon/quarterly"
    assert disclosure.day_count == "actual/365"
    assert disclosure.payments[-1].amount - disclosure.payments[0].amount > Decimal(299), "the balloon is paid last"
    assert offer.term_days == (date(2027, 2, 1) - START.date()).days


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"rate_bps": Decimal("948.22")}, "finer than a basis point"),
        ({"schedule": InstallmentSchedule(first_due=date(2026, 1, 10))}, "must fall after the start"),
        ({"schedule": InstallmentSchedule(balloon=1_200 * 10**6)}, "balloon"),
    ],
    ids=["sub-basis-point", "first-due-before-start", "balloon-not-below-principal"],
)
def test_terms_that_cannot_be_disclosed_exactly_are_refused_with_the_reason(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(ComplianceInputError, match=reason):
        offer_terms(replace(OFFER, **changes), USDC, START)  # type: ignore[arg-type]


def test_a_lenders_payments_are_checked_against_the_disclosure() -> None:
    offer, terms = offer_terms(OFFER, USDC, START)
    disclosure = disclose(terms)
    kept = lender_schedule(offer, disclosure, USDC)
    assert kept is not None
    own = InstallmentSchedule.from_document(kept)
    assert schedule_mismatch(replace(offer, schedule=own), disclosure, USDC) is None
    off_by_a_cent = (replace(own.payments[0], amount=own.payments[0].amount + 10000), *own.payments[1:])
    reason = schedule_mismatch(replace(offer, schedule=replace(own, payments=off_by_a_cent)), disclosure, USDC)
    assert reason is not None
    assert "installment 1" in reason
    assert "differs" in reason
    short = replace(own, payments=own.payments[:5])
    assert "5 payments" in (schedule_mismatch(replace(offer, schedule=short), disclosure, USDC) or "")
    wrong_day = (replace(own.payments[0], due=date(2026, 2, 16)), *own.payments[1:])
    assert schedule_mismatch(replace(offer, schedule=replace(own, payments=wrong_day)), disclosure, USDC) is not None


def test_servicing_reads_what_is_due_by_a_date_from_the_stored_disclosure() -> None:
    disclosure = disclose(offer_terms(OFFER, USDC, START)[1])
    schedule = schedule_from_disclosure(json.loads(disclosure.to_canonical_json()))
    assert [i.number for i in schedule] == [1, 2, 3, 4, 5, 6]
    first = schedule[0]
    assert first.amount == first.principal + first.interest == int(disclosure.payments[0].amount * 10**6)
    assert due_by(schedule, date(2026, 2, 14)) == 0
    assert due_by(schedule, date(2026, 3, 15)) == schedule[0].amount + schedule[1].amount
    assert sum(i.principal for i in schedule) == 1_200 * 10**6
    assert total_of_payments(schedule) == int(disclosure.total_of_payments * 10**6)
    assert first_unpaid(schedule, 0) == first
    assert first_unpaid(schedule, first.amount - 1) == first, "an installment is paid only in full"
    assert first_unpaid(schedule, 1_200 * 10**6) is not None, "the principal alone does not pay the interest"
    assert first_unpaid(schedule, total_of_payments(schedule)) is None
    assert days_past_due(schedule, 0, date(2026, 2, 15)) == 0, "due today is not past due"
    assert days_past_due(schedule, 0, date(2026, 3, 1)) == 14
    assert days_past_due(schedule, first.amount, date(2026, 3, 20)) == 5, "the second installment is the oldest"


def test_a_single_payment_loan_is_one_installment_at_maturity() -> None:
    disclosure = disclose(offer_terms(replace(OFFER, repayment=RepaymentShape.SINGLE), USDC, START)[1])
    (only,) = schedule_from_disclosure(json.loads(disclosure.to_canonical_json()))
    assert only.due == date(2026, 7, 14)
    assert only.principal == 1_200 * 10**6
    assert days_past_due((only,), 0, date(2026, 7, 24)) == 10


def test_the_stored_schedule_reads_back() -> None:
    schedule = InstallmentSchedule("weekly", payments=(ScheduledPayment(1, date(2026, 1, 22), 5),))
    assert InstallmentSchedule.from_document(json.loads(json.dumps(schedule.as_document()))) == schedule


def test_a_schedule_of_forty_years_is_kept_and_one_installment_more_is_past_the_maximum() -> None:
    """480 monthly installments (or 160 quarterly) are the longest schedule an offer may have; an odd first period
    does not count against it."""
    monthly = replace(OFFER, installments=480, schedule=InstallmentSchedule())
    assert schedule_past_maximum(monthly, START) is None
    quarterly = replace(OFFER, installments=160, schedule=InstallmentSchedule("quarterly"))
    assert schedule_past_maximum(quarterly, START) is None
    odd_first = InstallmentSchedule(first_due=date(2026, 3, 20))
    assert schedule_past_maximum(replace(monthly, schedule=odd_first), START) is None
    assert schedule_past_maximum(replace(OFFER, repayment=RepaymentShape.SINGLE, installments=1), START) is None

    longer = schedule_past_maximum(replace(monthly, installments=481), START)
    assert longer == (
        "the schedule of 481 monthly installments runs 40.1 years (to 2066-02-15), longer than the maximum of "
        f"{MAX_SCHEDULE_YEARS} years (480 monthly installments)"
    )
    wild = schedule_past_maximum(replace(quarterly, installments=600), START)
    assert wild is not None
    assert "600 quarterly installments runs 150.0 years (to 2176-01-15)" in wild
