"""chain.settled: a bounded map of outcomes, oldest settled first out."""

from __future__ import annotations

import pytest

from chain.settled import SettledOutcomes

pytestmark = pytest.mark.unit


def test_the_oldest_settled_outcome_leaves_first() -> None:
    outcomes: SettledOutcomes[str] = SettledOutcomes(capacity=3)
    for key in "abcd":
        outcomes.settle(key, key.upper())
    assert len(outcomes) == 3
    assert outcomes.get("a") is None
    outcomes.settle("b", "B again")  # settling again makes it the newest
    outcomes.settle("e", "E")
    assert outcomes.get("c") is None
    assert outcomes.get("b") == "B again"
    assert [outcomes.get(k) for k in "de"] == ["D", "E"]


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SettledOutcomes(capacity=0)
