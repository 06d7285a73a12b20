"""The CollateralManager's price checks, off-chain: no feed, sequencer down or in grace, non-positive, stale."""

from __future__ import annotations

import pytest

from aggregator.servicing.prices import Price, PriceRefusal, PriceSource, RoundData, Sequencer, usable_price

pytestmark = pytest.mark.unit

FEED = "0x" + "11" * 20
SOURCE = PriceSource(FEED, heartbeat=3_600, feed_decimals=8, token_decimals=18)
NOW = 1_800_000_000


def test_a_fresh_positive_answer_is_the_price_in_8_decimals() -> None:
    price = usable_price("weth", SOURCE, RoundData(3_000 * 10**8, NOW - 10, NOW - 10), NOW)
    assert price == Price("weth", 3_000 * 10**8, 10**18, FEED, NOW - 10)
    scaled = usable_price("weth", PriceSource(FEED, 3_600, 18, 18), RoundData(3_000 * 10**18, NOW, NOW), NOW)
    assert isinstance(scaled, Price)
    assert scaled.usd == 3_000 * 10**8


def test_an_answer_older_than_the_heartbeat_is_stale_as_the_contract_says() -> None:
    at_limit = usable_price("weth", SOURCE, RoundData(1, NOW - 3_600, NOW - 3_600), NOW)
    assert isinstance(at_limit, Price)  # updatedAt + heartbeat < now reverts; equal does not
    stale = usable_price("weth", SOURCE, RoundData(1, NOW - 3_601, NOW - 3_601), NOW)
    assert isinstance(stale, PriceRefusal)
    assert "stale price" in stale.reason
    assert "3600 s heartbeat" in stale.reason


def test_no_feed_a_non_positive_answer_or_a_sequencer_down_refuse() -> None:
    assert isinstance(usable_price("weth", None, None, NOW), PriceRefusal)
    assert "answers 0" in str(usable_price("weth", SOURCE, RoundData(0, NOW, NOW), NOW))
    down = Sequencer(FEED, grace=3_600, answer=1, started_at=NOW - 10_000)
    assert "down" in str(usable_price("weth", SOURCE, RoundData(1, NOW, NOW), NOW, down))
    grace = Sequencer(FEED, grace=3_600, answer=0, started_at=NOW - 3_600)
    assert "grace" in str(usable_price("weth", SOURCE, RoundData(1, NOW, NOW), NOW, grace))
    up = Sequencer(FEED, grace=3_600, answer=0, started_at=NOW - 3_601)
    assert isinstance(usable_price("weth", SOURCE, RoundData(1, NOW, NOW), NOW, up), Price)
