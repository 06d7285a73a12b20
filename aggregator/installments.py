"""A loan's repayment schedule as servicing reads it: what falls due by a date, and how many days the oldest unpaid
installment is past due. Pure: the schedule and the amounts paid in, base units and days out.

The schedule is the one disclosed and hashed at quote time (``termsHash``): ``schedule_from_disclosure`` reads it
from a quote's stored disclosure (``QuoteRow.disclosure``; for a loan, the disclosure of ``LoanRow.quote_id``'s
quote). A single-payment loan has a schedule of one payment at maturity.

What the borrower has paid (interest and principal together) is applied to installments in due order, oldest
first (paying part of an installment leaves it unpaid for its remainder)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class DueInstallment:
    """One scheduled payment in base units: ``amount`` = ``principal`` + ``interest``."""

    number: int
    due: date
    amount: int
    principal: int
    interest: int


def _base_units(value: str, decimals: int) -> int:
    scaled = Decimal(value).scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} is not a whole number of base units at {decimals} decimals")
    return int(scaled)


def schedule_from_disclosure(disclosure: Mapping[str, Any]) -> tuple[DueInstallment, ...]:
    """The installments of a stored Truth in Lending disclosure (``payments``, amounts in asset units with the
    disclosure's ``assetDecimals``), in due order."""
    decimals = int(disclosure["assetDecimals"])
    rows = sorted(disclosure["payments"], key=lambda p: int(p["number"]))
    return tuple(
        DueInstallment(
            number=int(p["number"]),
            due=date.fromisoformat(str(p["due"])),
            amount=_base_units(p["amount"], decimals),
            principal=_base_units(p["principal"], decimals),
            interest=_base_units(p["interest"], decimals),
        )
        for p in rows
    )


def due_by(schedule: Sequence[DueInstallment], day: date) -> int:
    """The total scheduled to be paid on or before ``day`` (base units, interest included)."""
    return sum(i.amount for i in schedule if i.due <= day)


def first_unpaid(schedule: Sequence[DueInstallment], paid: int) -> DueInstallment | None:
    """The oldest installment that ``paid`` (everything repaid so far, interest and principal, base units: the
    ledger's ``LoanRow.interest_paid + principal_paid``) does not cover in full, or None when every installment is
    covered.

    Coverage is counted in whole payments, as the lender's schedule counts them, not in principal: on-chain interest
    accrues per second on the outstanding principal (365-day year) while the schedule's interest follows its own
    day count, so a borrower who pays each installment in full on its due date may see a little less (a 31-day month
    under 30/360) or more of it credited to principal than the schedule shows. Counted in principal, that borrower
    would be past due from the first long month."""
    covered = 0
    for installment in schedule:
        covered += installment.amount
        if paid < covered:
            return installment
    return None


def days_past_due(schedule: Sequence[DueInstallment], paid: int, today: date) -> int:
    """Days since the oldest installment not covered by ``paid`` fell due (0 when none is overdue)."""
    unpaid = first_unpaid(schedule, paid)
    if unpaid is None or unpaid.due >= today:
        return 0
    return (today - unpaid.due).days


def total_of_payments(schedule: Sequence[DueInstallment]) -> int:
    """The schedule's total of payments (base units): what the borrower pays if every installment is paid on time."""
    return sum(i.amount for i in schedule)
