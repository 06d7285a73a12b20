"""How a simulated bank prices: a rate per risk grade, a term premium, a size discount, a 1% origination fee."""

from __future__ import annotations

from dataclasses import dataclass

GRADE_RATE_BPS = {1: 650, 2: 800, 3: 1_100, 4: 1_500, 5: 2_100}


@dataclass(frozen=True, slots=True)
class SimPrice:
    rate_bps: int
    origination_fee: int


def price(principal: int, decimals: int, term_days: int, grade: int, fee_bps: int = 100) -> SimPrice | None:
    """The simulated bank's price, or None when it does not lend (grade E above 10,000 units, or over a year)."""
    whole_units = principal // 10**decimals
    if term_days > 365 or (grade >= 5 and whole_units > 10_000):
        return None
    rate = GRADE_RATE_BPS.get(grade, GRADE_RATE_BPS[5]) + 5 * (term_days // 30)
    if whole_units >= 50_000:
        rate -= 50
    fee = principal * fee_bps // 10_000
    return SimPrice(rate_bps=rate, origination_fee=fee)
