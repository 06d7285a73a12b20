"""A provider's offer as the terms that are disclosed and signed: a single payment at the requested term, or the
lender's installment schedule (frequency, day count, odd first period, balloon), whose last due date sets the term.

Pure: the offer, the asset and the quote's start in; ``LoanTerms`` (or a ``ComplianceInputError`` naming why the
terms cannot be disclosed) out. ``schedule_mismatch`` compares the payments a lender computed itself with the
disclosed ones: a disclosure must show what the lender will collect, so an offer whose payments differ is dropped,
never disclosed with numbers of our own. ``schedule_past_maximum`` holds an amortizing offer to the longest
schedule a consumer lender writes (``MAX_SCHEDULE_YEARS``), and ``schedule_past_term`` to the term the borrower asked
for (``TERM_ALLOWANCE_DAYS`` past it at most): a longer one is dropped before it is disclosed."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from aggregator.assets import Asset
from compliance import Disclosure, Frequency, InstallmentPlan, LoanTerms, SecurityInterest, installment_term_days
from compliance.tila.apr import add_months
from compliance.tila.schedule import DayCount
from providers.models import InstallmentSchedule, ProviderOffer, RepaymentShape, ScheduledPayment


def installment_plan(offer: ProviderOffer, asset: Asset) -> InstallmentPlan | None:
    """The Appendix J plan of an amortizing offer, None for a single payment."""
    if offer.repayment is not RepaymentShape.INSTALLMENTS:
        return None
    schedule = offer.schedule or InstallmentSchedule()
    return InstallmentPlan(
        count=offer.installments,
        frequency=Frequency(schedule.frequency),
        day_count=DayCount(schedule.day_count),
        first_payment=schedule.first_due,
        balloon=asset.from_base_units(schedule.balloon),
    )


#: The longest repayment schedule an offer may have: 40 years, 480 monthly installments. It is the longest term a US
#: consumer lender writes on the longest-lived consumer loan there is, a home loan: Fannie Mae's and Freddie Mac's
#: Flex Modification and FHA's 40-year loan modification (HUD Mortgagee Letter 2023-06) extend a mortgage to 480
#: months and no further, and Regulation Z's qualified mortgage stops at 30 years (12 CFR 1026.43(e)(2)(ii)). An
#: installment loan for credit secured by a crypto asset has no reason to run longer; a schedule of 600 quarterly
#: installments (150 years) is a lender's error, and disclosing it would promise the borrower payments for life.
MAX_SCHEDULE_YEARS = 40


def offer_terms(
    offer: ProviderOffer, asset: Asset, start: datetime, collateral: SecurityInterest | None = None
) -> tuple[ProviderOffer, LoanTerms]:
    """The offer (its ``term_days`` set to its schedule's for an amortizing one) and its terms from ``start``,
    secured by ``collateral`` (the request's).

    Raises:
        ComplianceInputError: terms that cannot be disclosed exactly (a rate finer than a basis point, a schedule
            whose first payment is not after the start, a balloon not below the principal, ...).
    """
    plan = installment_plan(offer, asset)
    if plan is not None:
        offer = replace(offer, term_days=installment_term_days(start, plan))
    terms = LoanTerms(
        principal=asset.from_base_units(offer.principal),
        asset=asset.symbol,
        asset_decimals=asset.decimals,
        rate_bps=offer.rate_bps,
        term_days=offer.term_days,
        origination_fee=asset.from_base_units(offer.origination_fee),
        start=start,
        installments=plan,
        security_interest=collateral,
    )
    return offer, terms


def schedule_past_maximum(offer: ProviderOffer, start: datetime) -> str | None:
    """Why an amortizing offer's schedule is longer than ``MAX_SCHEDULE_YEARS``, or None (a single payment, or a
    schedule within it). The regular schedule is measured — its installments at their frequency from the start — so an
    odd first period (at most two periods: ``compliance``) does not push 480 monthly installments over; counted from
    the dates alone, before the schedule is disclosed (a schedule that long may not even be disclosable)."""
    if offer.repayment is not RepaymentShape.INSTALLMENTS:
        return None
    schedule = offer.schedule or InstallmentSchedule()
    regular = InstallmentPlan(count=offer.installments, frequency=Frequency(schedule.frequency))
    first = start.date()
    limit = add_months(first, 12 * MAX_SCHEDULE_YEARS)
    last: date = regular.due_dates(first)[-1]
    if last <= limit:
        return None
    years = (last - first).days / 365.25
    return (
        f"the schedule of {offer.installments} {schedule.frequency} installments runs {years:.1f} years (to {last}), "
        f"longer than the maximum of {MAX_SCHEDULE_YEARS} years ({12 * MAX_SCHEDULE_YEARS} monthly installments)"
    )


#: How many days past the term asked an amortizing offer's last due date may fall: a week, the calendar's rounding of
#: whole periods. A lender fits whole periods into the term counting a month as 30 days, half a month as 15 and a
#: quarter as 91 (``providers.sim.installments``), and the calendar's run longer: twelve monthly installments for 365
#: days end 366 days on (from 1 March 2023), eleven for 330 days 337 days on (from 29 February 2024, a month-end
#: series: to 31 January), 23 semimonthly ones for 345 days 352 days on (from 14 February 2024). Seven days holds every
#: such schedule from any start (``tests/unit/test_offer_schedule_term.py``). More is another term: a monthly,
#: semimonthly, biweekly or quarterly schedule one installment longer than the term holds ends past it (only a weekly
#: one, a week longer, is within it).
TERM_ALLOWANCE_DAYS = 7


def schedule_past_term(offer: ProviderOffer, start: datetime, asked_days: int) -> str | None:
    """Why an amortizing offer's schedule from ``start`` runs past the term the borrower asked for (``asked_days``,
    ``TERM_ALLOWANCE_DAYS`` allowed), or None (a single payment, whose term is the one asked, or a schedule within it).

    The schedule's last due date becomes the offer's term (``offer_terms``): the term disclosed, signed on-chain and
    repaid. A lender answering a 30-day request with 36 monthly installments had its loan signed for 1,096 days — past
    the platform's longest term (``aggregator.quote_pipeline.MAX_TERM_DAYS``, 365 days), on a term risk never scored
    (it scores the term asked) and that Regulation B counts as a counteroffer (12 CFR 1002.2(c)(1)(i)), which nothing
    recorded. Such an offer is dropped before it is disclosed. Every term asked is within ``MAX_TERM_DAYS``, so no
    schedule kept ends more than the allowance past it. The schedule is measured as it is signed: its due dates from
    the start, an odd first period included.

    Raises:
        ComplianceInputError: a schedule that cannot be dated (a first payment not after the start, or more than two
            periods after it), as ``offer_terms`` would raise.
    """
    if offer.repayment is not RepaymentShape.INSTALLMENTS:
        return None
    schedule = offer.schedule or InstallmentSchedule()
    plan = InstallmentPlan(
        count=offer.installments, frequency=Frequency(schedule.frequency), first_payment=schedule.first_due
    )
    days = installment_term_days(start, plan)
    if days <= asked_days + TERM_ALLOWANCE_DAYS:
        return None
    last = start.date() + timedelta(days=days)
    return (
        f"the schedule of {offer.installments} {schedule.frequency} installments runs {days:,} days (to {last}), "
        f"longer than the {asked_days}-day term asked ({TERM_ALLOWANCE_DAYS} days allowed past it for the calendar)"
    )


def schedule_mismatch(offer: ProviderOffer, disclosure: Disclosure, asset: Asset) -> str | None:
    """Why the payments the lender sent are not the disclosed ones, or None when it sent none or they agree."""
    sent = () if offer.schedule is None else offer.schedule.payments
    if not sent:
        return None
    disclosed = disclosure.payments
    if len(sent) != len(disclosed):
        return f"the lender's schedule has {len(sent)} payments, its terms give {len(disclosed)}"
    for theirs, ours in zip(sorted(sent, key=lambda p: p.number), disclosed, strict=True):
        amount = asset.to_base_units(ours.amount, "payment")
        if (theirs.number, theirs.due, theirs.amount) != (ours.number, ours.due, amount):
            return (
                f"the lender's installment {theirs.number} ({theirs.due}, {asset.format(theirs.amount)}) differs from "
                f"the disclosed one ({ours.due}, {asset.format(amount)}) by the stated method (docs/compliance.md)"
            )
    return None


def lender_schedule(offer: ProviderOffer, disclosure: Disclosure, asset: Asset) -> dict[str, Any] | None:
    """What the quote keeps for the lender's reservation: the schedule with the DISCLOSED payments in base units
    (exactly what the borrower was shown and what ``termsHash`` covers); None for a single payment."""
    if offer.repayment is not RepaymentShape.INSTALLMENTS:
        return None
    schedule = offer.schedule or InstallmentSchedule()
    disclosed = tuple(
        ScheduledPayment(p.number, p.due, asset.to_base_units(p.amount, "payment")) for p in disclosure.payments
    )
    return replace(schedule, payments=disclosed).as_document()
