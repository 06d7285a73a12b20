"""How a simulated lender with an amortizing product (``InstallmentProduct``) shapes its offer: the number of
installments that fit the requested term, an odd first period, a balloon, and the payments it computes itself
(the Truth in Lending schedule of ``compliance.tila``, the method creditmesh discloses by)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from compliance.errors import ComplianceInputError
from compliance.tila.disclosure import Frequency, InstallmentPlan
from compliance.tila.schedule import DayCount, amortize
from providers.sim.fleet import InstallmentProduct

#: roughly how many days one period covers, to fit whole periods into the requested term
PERIOD_DAYS = {"monthly": 30, "semimonthly": 15, "biweekly": 14, "weekly": 7, "quarterly": 91}


def _balloon(principal: int, decimals: int, balloon_bps: int) -> int:
    """``balloon_bps`` of the principal, rounded down to whole cents (the schedule's quantum)."""
    cent: int = 10 ** max(decimals - 2, 0)
    return principal * balloon_bps // 10_000 // cent * cent


def installment_fields(
    product: InstallmentProduct,
    principal: int,
    decimals: int,
    term_days: int,
    rate_bps: int,
    start: date,
) -> dict[str, Any] | None:
    """The offer's ``repayment``, ``installments`` and ``schedule`` (Provider Quote Protocol), or None when the term
    holds fewer than ``product.min_installments`` periods or they cannot be scheduled by creditmesh's rounding policy
    (docs/compliance.md: no equal installment on the cent repays the loan without a last one above twice it, a
    balloon payment) — checked whether the lender sends its payments or not; the lender then offers a single
    payment. The periods are counted after an odd first period: the last due date falls within the term (give or
    take the calendar's longer months: ``aggregator.offer_terms.TERM_ALLOWANCE_DAYS``), else creditmesh drops the
    offer as one for another term."""
    period = PERIOD_DAYS[product.frequency]
    first_days = period if product.first_due_days is None else product.first_due_days
    count = 1 + (term_days - first_days) // period if term_days >= first_days else 0
    if count < product.min_installments:
        return None
    first_due = None if product.first_due_days is None else start + timedelta(days=product.first_due_days)
    balloon = _balloon(principal, decimals, product.balloon_bps)
    schedule: dict[str, Any] = {
        "frequency": product.frequency,
        "day_count": product.day_count,
        "first_due": None if first_due is None else first_due.isoformat(),
        "balloon": balloon,
    }
    unit = Decimal(1).scaleb(-decimals)
    plan = InstallmentPlan(count, Frequency(product.frequency), DayCount(product.day_count), first_due, balloon * unit)
    quantum = Decimal(1).scaleb(-min(2, decimals))
    try:
        payments = amortize(
            principal * unit, rate_bps, start, plan.due_dates(start), plan.day_count, quantum, balloon=plan.balloon
        )
    except ComplianceInputError:
        return None  # terms creditmesh would refuse: a principal off the cent, or a last installment that is a balloon
    if product.send_payments:
        schedule["payments"] = [
            {"number": p.number, "due": p.due.isoformat(), "amount": int(p.payment.scaleb(decimals))} for p in payments
        ]
    return {"repayment": "installments", "installments": count, "schedule": schedule}
