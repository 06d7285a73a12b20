"""The general equation's flows at whole unit-periods are discounted without multiplying by ``1 + 0*i``: the solver
gives the same rates, digit for digit, as with the multiplication, on random cash flows (whole periods and
fractions, one advance or several)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from unittest import mock

import pytest

from compliance.tila import apr
from compliance.tila.apr import CashFlow, actuarial_apr, unit_period_rate

pytestmark = pytest.mark.unit

_ONE = Decimal(1)


def every_flow_multiplied(
    advances: Sequence[tuple[Decimal, int, Decimal]], payments: Sequence[tuple[Decimal, int, Decimal]], i: Decimal
) -> tuple[Decimal, Decimal]:
    """``_gap`` as it was: ``(1 + f*i)`` computed for every flow."""
    compound = _ONE + i
    gap = slope = Decimal(0)
    for amount, periods, fraction in payments:
        simple = _ONE + fraction * i
        value = amount / (simple * compound**periods)
        gap, slope = gap + value, slope + -value * (fraction / simple + periods / compound)
    for amount, periods, fraction in advances:
        simple = _ONE + fraction * i
        value = amount / (simple * compound**periods)
        gap, slope = gap - value, slope - -value * (fraction / simple + periods / compound)
    return gap, slope


def _flows(rng: random.Random) -> tuple[list[CashFlow], list[CashFlow], Fraction]:
    advance = Decimal(rng.randrange(100_00, 5_000_000_00)) / 100
    advances = [CashFlow(advance, 0)]
    if rng.random() < 0.2:  # a second advance later on
        advances.append(CashFlow(advance / 4, rng.randrange(0, 3), Fraction(rng.randrange(0, 30), 30)))
    total = sum((a.amount for a in advances), Decimal(0)) * (1 + Decimal(rng.randrange(0, 20_000)) / 10_000)
    count = rng.choice([1, 1, 2, 6, 12, 24])
    fraction = Fraction(0) if rng.random() < 0.6 else Fraction(rng.randrange(0, 30), 30)
    first = rng.randrange(0 if fraction else 1, 3)
    share = (total / count).quantize(Decimal("0.01"))
    payments = [CashFlow(share, first + k, fraction) for k in range(count)]
    return advances, payments, Fraction(rng.choice([12, 24, 26, 52, 4]), rng.choice([1, 1, 7]))


def test_the_same_rates_digit_for_digit_on_random_cash_flows() -> None:
    rng = random.Random(1026)
    cases = [_flows(rng) for _ in range(400)]
    rates = [(unit_period_rate(a, p), actuarial_apr(a, p, w)) for a, p, w in cases]
    with mock.patch.object(apr, "_gap", every_flow_multiplied):
        before = [(unit_period_rate(a, p), actuarial_apr(a, p, w)) for a, p, w in cases]
    assert [tuple(map(str, pair)) for pair in rates] == [tuple(map(str, pair)) for pair in before]
