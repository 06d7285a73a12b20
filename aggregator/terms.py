"""Loan terms as the contract computes them, and the offer's Truth in Lending disclosure and ``termsHash``.

Interest is simple interest per second on the principal for the whole term, rounded up to the base unit, exactly
as ``InterestMath.simpleInterestUp`` accrues on-chain. The origination fee is deducted from the proceeds, so the
amount financed is principal − fee and the fee is part of the finance charge."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import rfc8785
from eth_utils.crypto import keccak

SECONDS_PER_DAY = 86_400
YEAR_SECONDS = 365 * SECONDS_PER_DAY
BPS = 10_000


def simple_interest_up(principal: int, rate_bps: int, elapsed_seconds: int) -> int:
    """ceil(principal × rate × elapsed / (10,000 × 365 days)), the contract's formula to the wei."""
    numerator = principal * rate_bps * elapsed_seconds
    return -(-numerator // (BPS * YEAR_SECONDS))


@dataclass(frozen=True, slots=True)
class SinglePaymentDisclosure:
    """The Regulation Z disclosure of a single-payment loan, in base units; APR in percent."""

    asset: str
    decimals: int
    principal: int
    origination_fee: int
    rate_bps: int
    term_days: int
    interest: int
    amount_financed: int
    finance_charge: int
    total_of_payments: int
    apr_percent: Decimal

    def as_document(self) -> dict[str, Any]:
        """The disclosure as a JSON document (integers as decimal strings, so every JSON reader keeps them)."""
        return {
            "asset": self.asset,
            "decimals": self.decimals,
            "principal": str(self.principal),
            "originationFee": str(self.origination_fee),
            "rateBps": self.rate_bps,
            "termDays": self.term_days,
            "interest": str(self.interest),
            "amountFinanced": str(self.amount_financed),
            "financeCharge": str(self.finance_charge),
            "totalOfPayments": str(self.total_of_payments),
            "apr": format(self.apr_percent, "f"),
            "schedule": [{"dueDay": self.term_days, "amount": str(self.total_of_payments)}],
        }

    def terms_hash(self) -> bytes:
        """keccak256 of the RFC 8785 canonical JSON of the disclosure: the offer's ``termsHash``."""
        return keccak(rfc8785.dumps(self.as_document()))


def disclose_single_payment(
    asset: str, decimals: int, principal: int, origination_fee: int, rate_bps: int, term_days: int
) -> SinglePaymentDisclosure:
    interest = simple_interest_up(principal, rate_bps, term_days * SECONDS_PER_DAY)
    amount_financed = principal - origination_fee
    total_of_payments = principal + interest
    # One advance, one payment, the unit-period equal to the term (Appendix J): APR = (TP / AF − 1) × periods/year.
    apr = (Decimal(total_of_payments) / Decimal(amount_financed) - 1) * Decimal(365) / Decimal(term_days) * 100
    return SinglePaymentDisclosure(
        asset=asset,
        decimals=decimals,
        principal=principal,
        origination_fee=origination_fee,
        rate_bps=rate_bps,
        term_days=term_days,
        interest=interest,
        amount_financed=amount_financed,
        finance_charge=interest + origination_fee,
        total_of_payments=total_of_payments,
        apr_percent=apr.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN),
    )
