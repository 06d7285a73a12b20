"""The Truth in Lending disclosure of one offer, in the loan model of DESIGN.md.

A loan is fixed-rate and fixed-term. The origination fee is deducted from the proceeds, so it is a prepaid finance
charge: amount financed = principal - fee, finance charge = interest + fee, total of payments = amount financed +
finance charge = principal + interest.

* Single payment (on-chain pools): simple interest per second on the principal, exactly as the contract accrues
  it: ``interest = ceil(principal_base_units * rate_bps * term_seconds / (10_000 * 365 * 86_400))`` base units,
  rounded up (in the lender's favour, as on-chain). Repaid in one payment at maturity.
* Equal installments (traditional lenders): ``compliance.tila.schedule.amortize`` under the plan's day count, to the
  cent, the last installment absorbing rounding (refused where that would make it a balloon payment).

The APR is Appendix J's actuarial APR on the amount financed (advanced at the start) against the payments: in the
plan's unit-period for installments, in the term itself for one payment (a single payment, or one installment).
``Disclosure.terms_hash()`` (keccak256 of the RFC 8785 JSON) is the offer's on-chain ``termsHash``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from compliance.canonical import canonical_json, keccak256
from compliance.errors import ComplianceInputError
from compliance.tila.apr import (
    UNIT_PERIODS_PER_YEAR,
    CashFlow,
    UnitPeriod,
    actuarial_apr,
    add_months,
    round_apr,
    single_payment_periods,
    unit_periods_between,
)
from compliance.tila.schedule import DayCount, amortize

DISCLOSURE_SCHEMA = "creditmesh.tila-disclosure/2"  # /2 added prepayment, latePayment, securityInterest (18(k)-(m))
#: 12 CFR 1026.18(p): where the rest of the obligation's terms are
CONTRACT_REFERENCE = (
    "See your loan contract (the CreditAggregator loan this disclosure's termsHash is recorded with, and the "
    "lender's terms) for nonpayment, default, the right to accelerate the maturity, and prepayment."
)
SECONDS_PER_DAY = 86_400
SECONDS_PER_YEAR = 365 * SECONDS_PER_DAY
ROUNDING_SINGLE_PAYMENT = "interest-ceil-base-unit/1"
ROUNDING_INSTALLMENTS = "installment-half-up-quantum;interest-half-up-quantum;last-absorbs/1"


class Frequency(StrEnum):
    MONTHLY = "monthly"
    SEMIMONTHLY = "semimonthly"  # twice a month, half a month apart (the 1st and 16th, the 15th and month end)
    BIWEEKLY = "biweekly"
    WEEKLY = "weekly"
    QUARTERLY = "quarterly"


_UNIT_OF = {
    Frequency.MONTHLY: UnitPeriod.MONTH,
    Frequency.SEMIMONTHLY: UnitPeriod.SEMIMONTH,
    Frequency.BIWEEKLY: UnitPeriod.TWO_WEEKS,
    Frequency.WEEKLY: UnitPeriod.WEEK,
    Frequency.QUARTERLY: UnitPeriod.QUARTER,
}
_MONTHS_APART = {Frequency.MONTHLY: 1, Frequency.QUARTERLY: 3}
_DAYS_APART = {Frequency.BIWEEKLY: 14, Frequency.WEEKLY: 7}


class MaprChargeKind(StrEnum):
    """Charges the Military Lending Act's MAPR counts beyond the Regulation Z finance charge (32 CFR 232.4(c)(1))."""

    CREDIT_INSURANCE = "credit-insurance"
    DEBT_CANCELLATION = "debt-cancellation"
    DEBT_SUSPENSION = "debt-suspension"
    ANCILLARY_PRODUCT = "ancillary-product"
    APPLICATION_FEE = "application-fee"
    PARTICIPATION_FEE = "participation-fee"


@dataclass(frozen=True)
class MaprCharge:
    kind: MaprChargeKind
    amount: Decimal  # asset units, paid from the proceeds


def _semimonthly(first: date, count: int) -> list[date]:
    """Two days of each month, half a month apart: day ``d`` and ``d + 15`` (the later one at most the month's last
    day), or the 15th and the last day when ``first`` is a month end; from ``first`` on."""
    month_end = first.day == calendar.monthrange(first.year, first.month)[1]
    early = 15 if month_end else first.day if first.day <= 15 else first.day - 15
    dates: list[date] = []
    cursor = date(first.year, first.month, 1)
    while len(dates) < count:
        last = calendar.monthrange(cursor.year, cursor.month)[1]
        for day in (early, last if month_end else min(early + 15, last)):
            candidate = cursor.replace(day=day)
            if candidate >= first and len(dates) < count:
                dates.append(candidate)
        cursor = add_months(cursor, 1)
    return dates


def _one_period_after(start: date, frequency: Frequency) -> date:
    if frequency in _MONTHS_APART:
        return add_months(start, _MONTHS_APART[frequency])
    if frequency is Frequency.SEMIMONTHLY:
        return start + timedelta(days=15)
    return start + timedelta(days=_DAYS_APART[frequency])


@dataclass(frozen=True)
class InstallmentPlan:
    """``count`` installments at ``frequency``. The first falls one period after the start unless ``first_payment``
    says otherwise (an odd first period, shorter or longer); ``balloon`` is principal left to be repaid with the last
    installment on top of the regular amount (a balloon payment), in asset units."""

    count: int
    frequency: Frequency = Frequency.MONTHLY
    day_count: DayCount = DayCount.THIRTY_360
    first_payment: date | None = None
    balloon: Decimal = Decimal(0)

    def due_dates(self, start: date) -> list[date]:
        if self.count < 1:
            raise ComplianceInputError("an installment plan needs at least one installment")
        first = self.first_payment or _one_period_after(start, self.frequency)
        if first <= start:
            raise ComplianceInputError(f"the first payment ({first}) must fall after the start ({start})")
        if (first - start).days > 2 * (_one_period_after(start, self.frequency) - start).days:
            raise ComplianceInputError(f"the first payment ({first}) is more than two periods after the start")
        if self.frequency in _MONTHS_APART:
            # A series on the same day of the month as its anchor, or on each month's last day when the anchor is
            # a month end (Appendix J (b)(3)(iv)); the anchor is the start, or the first payment when one is given.
            step = _MONTHS_APART[self.frequency]
            anchor, offset = (start, 1) if self.first_payment is None else (self.first_payment, 0)
            month_end = anchor.day == calendar.monthrange(anchor.year, anchor.month)[1]
            return [add_months(anchor, step * (k + offset), month_end=month_end) for k in range(self.count)]
        if self.frequency is Frequency.SEMIMONTHLY:
            return _semimonthly(first, self.count)
        return [first + timedelta(days=_DAYS_APART[self.frequency] * k) for k in range(self.count)]


def installment_term_days(start: datetime, plan: InstallmentPlan) -> int:
    """The term in days that a loan repaid by ``plan`` from ``start`` has (its last due date)."""
    return (plan.due_dates(start.date())[-1] - start.date()).days


def whole_basis_points(rate_bps: object) -> int:
    """The annual rate as the uint32 basis points an offer carries on-chain. A rate with more precision (9.4822% is
    948.22 bps) cannot be represented there: refused, never rounded.

    Raises:
        ComplianceInputError: not a whole number of basis points in 0..2**32-1.
    """
    if isinstance(rate_bps, bool) or not isinstance(rate_bps, int | Decimal):
        raise ComplianceInputError(f"rate_bps must be an integer number of basis points, not {rate_bps!r}")
    if isinstance(rate_bps, Decimal):
        if not rate_bps.is_finite() or rate_bps != rate_bps.to_integral_value():
            raise ComplianceInputError(
                f"the rate {rate_bps} bps ({rate_bps / 100}%) is finer than a basis point: offers carry the annual "
                "rate as whole basis points (uint32) on-chain, so it cannot be disclosed and signed exactly; send the "
                "rate in whole basis points"
            )
        rate_bps = int(rate_bps)
    if not 0 <= rate_bps < 2**32:
        raise ComplianceInputError(f"rate_bps {rate_bps} must be a uint32")
    return rate_bps


@dataclass(frozen=True)
class SecurityInterest:
    """The property a security interest is taken in (12 CFR 1026.18(m)): the collateral the loan locks, by type
    (the asset's symbol) and amount (in its units)."""

    asset: str
    amount: Decimal

    def __post_init__(self) -> None:
        if not self.amount.is_finite() or self.amount <= 0:
            raise ComplianceInputError(f"the collateral amount {self.amount} must be positive")

    def to_dict(self) -> dict[str, str]:
        return {"asset": self.asset, "amount": format(self.amount.normalize(), "f")}


@dataclass(frozen=True)
class LoanTerms:
    """One offer's terms. ``principal`` and ``origination_fee`` are in asset units (``Decimal("1500.00")``) and must
    be whole base units of an asset with ``asset_decimals``; ``start`` is an aware UTC datetime (interest accrues
    from it); ``installments=None`` is a single payment at ``start + term_days``; ``security_interest`` is the
    collateral the loan locks (None: unsecured, or not known to the caller)."""

    principal: Decimal
    asset: str
    asset_decimals: int
    rate_bps: int
    term_days: int
    origination_fee: Decimal
    start: datetime
    installments: InstallmentPlan | None = None
    mapr_charges: tuple[MaprCharge, ...] = ()
    security_interest: SecurityInterest | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.asset_decimals <= 36:
            raise ComplianceInputError(f"asset_decimals {self.asset_decimals} is out of range 0..36")
        object.__setattr__(self, "rate_bps", whole_basis_points(self.rate_bps))
        if self.term_days < 1:
            raise ComplianceInputError("term_days must be at least 1")
        if self.start.tzinfo is None:
            raise ComplianceInputError("start must be an aware UTC datetime")
        for name, amount in (("principal", self.principal), ("origination_fee", self.origination_fee)):
            self._base_units(name, amount)
        if self.principal <= 0:
            raise ComplianceInputError("principal must be positive")
        if not 0 <= self.origination_fee < self.principal:
            raise ComplianceInputError("origination_fee must be at least 0 and less than the principal")
        if self.installments is not None:
            balloon = self.installments.balloon
            if not balloon.is_finite() or not 0 <= balloon < self.principal:
                raise ComplianceInputError(f"the balloon {balloon} must be at least 0 and less than the principal")
            self._base_units("balloon", balloon)
            expected = installment_term_days(self.start, self.installments)
            if expected != self.term_days:
                raise ComplianceInputError(
                    f"term_days {self.term_days} does not match the installment plan, whose last payment falls "
                    f"{expected} days after the start; use installment_term_days()"
                )
        for charge in self.mapr_charges:
            self._base_units(f"mapr charge {charge.kind}", charge.amount)

    @property
    def unit(self) -> Decimal:
        return Decimal(1).scaleb(-self.asset_decimals)

    def _base_units(self, name: str, amount: Decimal) -> int:
        scaled = amount.scaleb(self.asset_decimals)
        if not amount.is_finite() or scaled != scaled.to_integral_value() or amount < 0:
            raise ComplianceInputError(f"{name} {amount} is not a whole number of base units of {self.asset}")
        return int(scaled)

    def to_base_units(self, amount: Decimal) -> int:
        return self._base_units("amount", amount)

    def from_base_units(self, base_units: int) -> Decimal:
        return Decimal(base_units).scaleb(-self.asset_decimals)

    @property
    def maturity(self) -> datetime:
        return self.start + timedelta(days=self.term_days)


def single_payment_interest(principal_base_units: int, rate_bps: int, term_seconds: int) -> int:
    """Interest in base units exactly as the contract accrues it: simple, per second, 365-day year, rounded up."""
    numerator = principal_base_units * rate_bps * term_seconds
    return -(-numerator // (10_000 * SECONDS_PER_YEAR))


@dataclass(frozen=True)
class ScheduledPayment:
    number: int
    due: date
    amount: Decimal
    principal: Decimal
    interest: Decimal


@dataclass(frozen=True)
class Disclosure:
    """The Regulation Z disclosure of one offer (amounts in asset units)."""

    asset: str
    asset_decimals: int
    principal: Decimal
    origination_fee: Decimal
    amount_financed: Decimal
    finance_charge: Decimal
    total_of_payments: Decimal
    apr_percent: Decimal  # two decimals, half up
    rate_bps: int
    term_days: int
    start: datetime
    maturity: datetime
    repayment: str
    day_count: str | None
    rounding_policy: str
    payments: tuple[ScheduledPayment, ...]
    security_interest: SecurityInterest | None = None
    schema: str = field(default=DISCLOSURE_SCHEMA)
    # The APR before rounding, kept so that the MAPR of terms without MLA charges is not solved again; not disclosed.
    apr_unrounded: Decimal | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The canonical content: money as fixed-point strings with the asset's decimals, times in UTC.

        Beside the amounts and the schedule, the statements 12 CFR 1026.18 requires of every closed-end loan here:
        (k) no penalty for prepaying (interest is simple interest on the unpaid principal, and the contract takes
        any part at any time) and no refund of the prepaid finance charge (the origination fee); (l) no late
        charge (interest goes on accruing on what is unpaid); (m) the security interest in the collateral; (p)
        where the rest of the terms are."""
        places = Decimal(1).scaleb(-self.asset_decimals)

        def money(value: Decimal) -> str:
            return format(value.quantize(places), "f")

        return {
            "schema": self.schema,
            "asset": self.asset,
            "assetDecimals": self.asset_decimals,
            "principal": money(self.principal),
            "prepaidFinanceCharges": {"originationFee": money(self.origination_fee)},
            "amountFinanced": money(self.amount_financed),
            "financeCharge": money(self.finance_charge),
            "totalOfPayments": money(self.total_of_payments),
            "annualPercentageRate": format(self.apr_percent, "f"),
            "rateBps": self.rate_bps,
            "termDays": self.term_days,
            "start": self.start.astimezone(UTC),
            "maturity": self.maturity.astimezone(UTC),
            "repayment": self.repayment,
            "dayCount": self.day_count,
            "roundingPolicy": self.rounding_policy,
            "payments": [
                {
                    "number": p.number,
                    "due": p.due,
                    "amount": money(p.amount),
                    "principal": money(p.principal),
                    "interest": money(p.interest),
                }
                for p in self.payments
            ],
            "prepayment": {"penalty": False, "prepaidFinanceChargesRefunded": False},
            "latePayment": {"charge": False},
            "securityInterest": None if self.security_interest is None else self.security_interest.to_dict(),
            "contractReference": CONTRACT_REFERENCE,
        }

    def to_canonical_json(self) -> bytes:
        # Computed once per disclosure (it is frozen): the quote path needs it for the offer's termsHash, the
        # offer's decision record and the stored disclosure.
        cached: bytes | None = self.__dict__.get("_canonical_json")
        if cached is None:
            cached = canonical_json(self.to_dict())
            object.__setattr__(self, "_canonical_json", cached)
        return cached

    def terms_hash(self) -> bytes:
        """keccak256 of the RFC 8785 JSON: the offer's on-chain ``termsHash`` (32 bytes)."""
        cached: bytes | None = self.__dict__.get("_terms_hash")
        if cached is None:
            cached = keccak256(self.to_canonical_json())
            object.__setattr__(self, "_terms_hash", cached)
        return cached


def _cash_flows(
    terms: LoanTerms, payments: list[ScheduledPayment], advance: Decimal
) -> tuple[list[CashFlow], list[CashFlow], Any]:
    """The advance and the payments as Appendix J times them. A schedule of one payment — a single payment, or
    ``repayment: installments`` with ``installments: 1`` — is a single advance repaid by a single payment: its own
    term is the unit-period ((b)(5)(vi), (vii)), never the plan's frequency, whose whole periods would compound (one
    payment 170 days out on a quarterly plan disclosed 35.78% where the rule gives 37.57%)."""
    start = terms.start.date()
    if terms.installments is None or len(payments) == 1:
        t, f, per_year = single_payment_periods(start, payments[0].due)
        return [CashFlow(advance, 0)], [CashFlow(payments[0].amount, t, f)], per_year
    unit = _UNIT_OF[terms.installments.frequency]
    flows = []
    for payment in payments:
        t, f = unit_periods_between(start, payment.due, unit)
        flows.append(CashFlow(payment.amount, t, f))
    return [CashFlow(advance, 0)], flows, UNIT_PERIODS_PER_YEAR[unit]


def _payments(terms: LoanTerms) -> list[ScheduledPayment]:
    if terms.installments is None:
        principal_units = terms.to_base_units(terms.principal)
        interest_units = single_payment_interest(principal_units, terms.rate_bps, terms.term_days * SECONDS_PER_DAY)
        interest = terms.from_base_units(interest_units)
        return [ScheduledPayment(1, terms.maturity.date(), terms.principal + interest, terms.principal, interest)]
    plan = terms.installments
    quantum = Decimal(1).scaleb(-min(2, terms.asset_decimals))
    if terms.principal != terms.principal.quantize(quantum):
        raise ComplianceInputError(f"an installment loan's principal must be whole cents ({quantum})")
    schedule = amortize(
        terms.principal,
        terms.rate_bps,
        terms.start.date(),
        plan.due_dates(terms.start.date()),
        plan.day_count,
        quantum,
        balloon=plan.balloon,
    )
    return [ScheduledPayment(i.number, i.due, i.payment, i.principal, i.interest) for i in schedule]


def _repayment(plan: InstallmentPlan | None) -> str:
    if plan is None:
        return "single-payment"
    shape = "equal-installments" if plan.balloon == 0 else "installments-with-balloon"
    return f"{shape}/{plan.frequency}"


def disclose(terms: LoanTerms) -> Disclosure:
    """The Truth in Lending disclosure of ``terms``.

    Raises:
        ComplianceInputError: terms that cannot be disclosed (see ``LoanTerms``).
    """
    payments = _payments(terms)
    total_of_payments = sum((p.amount for p in payments), Decimal(0))
    interest = sum((p.interest for p in payments), Decimal(0))
    amount_financed = terms.principal - terms.origination_fee
    finance_charge = interest + terms.origination_fee
    advances, flows, per_year = _cash_flows(terms, payments, amount_financed)
    apr_unrounded = actuarial_apr(advances, flows, per_year)
    return Disclosure(
        asset=terms.asset,
        asset_decimals=terms.asset_decimals,
        principal=terms.principal,
        origination_fee=terms.origination_fee,
        amount_financed=amount_financed,
        finance_charge=finance_charge,
        total_of_payments=total_of_payments,
        apr_percent=round_apr(apr_unrounded),
        rate_bps=terms.rate_bps,
        term_days=terms.term_days,
        start=terms.start,
        maturity=terms.maturity,
        repayment=_repayment(terms.installments),
        day_count=None if terms.installments is None else str(terms.installments.day_count),
        rounding_policy=ROUNDING_SINGLE_PAYMENT if terms.installments is None else ROUNDING_INSTALLMENTS,
        payments=tuple(payments),
        security_interest=terms.security_interest,
        apr_unrounded=apr_unrounded,
    )


def mapr_percent(terms: LoanTerms, disclosure: Disclosure | None = None) -> Decimal:
    """The Military Annual Percentage Rate (32 CFR 232.4(c)): the Appendix J APR with the charges the MLA adds to
    the finance charge (credit insurance, debt cancellation or suspension, ancillary products, application and
    participation fees) treated like the origination fee, as paid out of the proceeds. Unrounded, in percent.

    Without such charges the MAPR is the APR: pass the terms' ``disclosure`` to reuse its APR instead of solving the
    same equation again."""
    if not terms.mapr_charges and disclosure is not None and disclosure.apr_unrounded is not None:
        return disclosure.apr_unrounded
    payments = _payments(terms)
    extra = sum((c.amount for c in terms.mapr_charges), Decimal(0))
    advance = terms.principal - terms.origination_fee - extra
    if advance <= 0:
        raise ComplianceInputError("the MAPR charges leave nothing advanced")
    advances, flows, per_year = _cash_flows(terms, payments, advance)
    return actuarial_apr(advances, flows, per_year)
