"""How a simulated lender prices: a rate per risk grade, a term premium, a size discount, an origination fee —
each lender with its own numbers (``PricingSpec``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

GRADE_RATE_BPS = {1: 650, 2: 800, 3: 1_100, 4: 1_500, 5: 2_100}


class PricingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grade_rate_bps: dict[int, int] = Field(default_factory=lambda: dict(GRADE_RATE_BPS))
    term_bps_per_30_days: int = Field(default=5, ge=0)
    large_amount_units: int = Field(default=50_000, ge=0, description="whole units from which the discount applies")
    large_amount_discount_bps: int = Field(default=50, ge=0)
    fee_bps: int = Field(default=100, ge=0, le=1_000)
    min_amount_units: int = Field(default=0, ge=0)
    max_amount_units: int = Field(default=10**12, ge=0)
    max_term_days: int = Field(default=365, ge=1)
    worst_grade: int = Field(default=5, ge=1, le=5, description="grades above this are declined")
    risky_grade_max_units: int = Field(default=10_000, ge=0, description="grade E lends at most this many units")


@dataclass(frozen=True, slots=True)
class SimPrice:
    rate_bps: int
    origination_fee: int


def price(
    principal: int, decimals: int, term_days: int, grade: int, spec: PricingSpec | None = None
) -> SimPrice | None:
    """The lender's price in integer basis points and base units, or None when it does not lend."""
    spec = spec or PricingSpec()
    whole_units = principal // 10**decimals
    if term_days > spec.max_term_days or grade > spec.worst_grade:
        return None
    if not spec.min_amount_units <= whole_units <= spec.max_amount_units:
        return None
    if grade >= 5 and whole_units > spec.risky_grade_max_units:
        return None
    worst = spec.grade_rate_bps[max(spec.grade_rate_bps)]
    rate = spec.grade_rate_bps.get(grade, worst) + spec.term_bps_per_30_days * (term_days // 30)
    if whole_units >= spec.large_amount_units:
        rate -= spec.large_amount_discount_bps
    fee = principal * spec.fee_bps // 10_000
    return SimPrice(rate_bps=max(rate, 0), origination_fee=fee)
