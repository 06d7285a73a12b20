"""A provider's offer as the terms that are disclosed and signed: a single payment at the requested term, or the
lender's installment schedule (frequency, day count, odd first period, balloon), whose last due date sets the term.

Pure: the offer, the asset and the quote's start in; ``LoanTerms`` (or a ``ComplianceInputError`` naming why the
terms cannot be disclosed) out. ``schedule_mismatch`` compares the payments a lender computed itself with the
disclosed ones: a disclosure must show what the lender will collect, so an offer whose payments differ is dropped,
never disclosed with numbers of our own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from aggregator.assets import Asset
from compliance import Disclosure, Frequency, InstallmentPlan, LoanTerms, SecurityInterest, installment_term_days
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
