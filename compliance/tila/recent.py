"""The disclosures of recent terms, kept: a credit request's lenders often offer the very same terms (the same amount,
term and start, and a rate on the same basis-point grid), and a disclosure is a pure function of its terms, so the
same terms are disclosed once (the payments, the cash flows, the APR solved, the canonical JSON and termsHash).

A kept disclosure is given again only for terms EXACTLY like those it was made from: every field of the plain type
``LoanTerms`` gives it, decimals by their digits and exponent (``1500.00`` is not ``1500.0``), the start an aware
datetime in ``datetime.UTC`` (its payments fall on its UTC date). Terms of any other shape (a start in another time
zone, a subclass, a plan's enum given as a plain string) are disclosed afresh and not kept. A ``Disclosure`` is frozen,
so one object serves every offer of the same terms."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from compliance.tila.disclosure import Disclosure, Frequency, InstallmentPlan, LoanTerms, SecurityInterest, disclose
from compliance.tila.schedule import DayCount

#: terms kept at most; the whole memo is dropped when full (a request's terms are disclosed within milliseconds)
CAPACITY = 512


def _decimal(value: Any) -> tuple[Any, ...] | None:
    return value.as_tuple() if type(value) is Decimal else None


def terms_key(terms: LoanTerms) -> tuple[Any, ...] | None:
    """What ``disclose(terms)`` depends on, as a key equal for two terms only when their disclosures are the same
    (field for field, and so their canonical JSON and termsHash); None for terms not of the plain shape.
    ``mapr_charges`` are not disclosed (they count in the MAPR only) and are not part of the key."""
    start, plan = terms.start, terms.installments
    principal, fee = _decimal(terms.principal), _decimal(terms.origination_fee)
    if (
        principal is None
        or fee is None
        or type(start) is not datetime
        or start.tzinfo is not UTC
        or type(terms.asset) is not str
        or type(terms.asset_decimals) is not int
        or type(terms.rate_bps) is not int
        or type(terms.term_days) is not int
    ):
        return None
    plan_key: tuple[Any, ...] | None = None
    if plan is not None:
        balloon = _decimal(plan.balloon)
        if (
            type(plan) is not InstallmentPlan
            or type(plan.count) is not int
            or type(plan.frequency) is not Frequency
            or type(plan.day_count) is not DayCount
            or not (plan.first_payment is None or type(plan.first_payment) is date)
            or balloon is None
        ):
            return None
        plan_key = (plan.count, plan.frequency, plan.day_count, plan.first_payment, balloon)
    held = terms.security_interest
    held_key: tuple[Any, ...] | None = None
    if held is not None:
        amount = _decimal(held.amount)
        if type(held) is not SecurityInterest or type(held.asset) is not str or amount is None:
            return None
        held_key = (held.asset, amount)
    return (
        principal,
        terms.asset,
        terms.asset_decimals,
        terms.rate_bps,
        terms.term_days,
        fee,
        start,
        start.fold,
        plan_key,
        held_key,
    )


class RecentDisclosures:
    """``disclose`` with the disclosures of the last ``capacity`` distinct terms kept (see the module)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._kept: dict[tuple[Any, ...], Disclosure] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def disclose(self, terms: LoanTerms) -> Disclosure:
        """``compliance.tila.disclosure.disclose(terms)``: the same disclosure, made once for the same terms.

        Raises:
            ComplianceInputError: as ``disclose`` does (nothing is kept then).
        """
        key = terms_key(terms)
        if key is None:
            return disclose(terms)
        found = self._kept.get(key)
        if found is None:
            found = disclose(terms)
            if len(self._kept) >= self._capacity:
                self._kept.clear()
            self._kept[key] = found
        return found
