"""Prices from the Chainlink-style feeds the CollateralManager uses, with the same checks it makes.

For each asset the CollateralManager names its feed and heartbeat (``priceSources``); a feed's answer is usable only
when it is positive and not older than its heartbeat at the block read, and on an L2 only while the sequencer-uptime
feed says the sequencer is up and has been for longer than its grace period (Chainlink's guidance; the contract's
``_price`` and ``_checkSequencer``). ``usable_price`` is that rule as a pure function; ``read_prices`` reads every
source and answer at one pinned block in two JSON-RPC batches (``chain.views``).

A price that fails a check is not an error to raise past the caller: it comes back as a ``PriceRefusal`` naming the
reason, so the keeper logs it and liquidates nothing on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from web3.providers.async_base import AsyncBaseProvider

from chain.errors import ChainError
from chain.views import read_views, view

VALUE_DECIMALS = 8  # the CollateralManager's USD values
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class PriceSource:
    """``priceSources(asset)``: the feed, its heartbeat (seconds), its decimals and the token's."""

    feed: str
    heartbeat: int
    feed_decimals: int
    token_decimals: int


@dataclass(frozen=True, slots=True)
class RoundData:
    """``latestRoundData()``'s answer and times (seconds)."""

    answer: int
    started_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Sequencer:
    """An L2's sequencer-uptime feed: answer 0 means up, since ``started_at``; ``grace`` seconds must pass after."""

    feed: str
    grace: int
    answer: int
    started_at: int


@dataclass(frozen=True, slots=True)
class Price:
    """A usable price: USD with 8 decimals, and the token's unit (10**decimals)."""

    asset: str
    usd: int
    unit: int
    feed: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class PriceRefusal:
    """Why no price of ``asset`` may be used now (stale, non-positive, no feed, sequencer down or in grace)."""

    asset: str
    reason: str


def sequencer_refusal(sequencer: Sequencer | None, now: int) -> str | None:
    """The contract's ``_checkSequencer``: None when there is no sequencer feed or it is up past its grace."""
    if sequencer is None:
        return None
    if sequencer.answer != 0 or sequencer.started_at == 0:
        return f"the L2 sequencer is down (feed {sequencer.feed})"
    if now - sequencer.started_at <= sequencer.grace:
        return f"the L2 sequencer came back at {sequencer.started_at}, within its {sequencer.grace} s grace period"
    return None


def usable_price(
    asset: str, source: PriceSource | None, round_data: RoundData | None, now: int, sequencer: Sequencer | None = None
) -> Price | PriceRefusal:
    """``asset``'s price at block time ``now`` under the contract's checks (no feed, sequencer, sign, staleness)."""
    if source is None or source.feed.lower() == ZERO_ADDRESS or round_data is None:
        return PriceRefusal(asset, "no price feed")
    down = sequencer_refusal(sequencer, now)
    if down is not None:
        return PriceRefusal(asset, down)
    if round_data.answer <= 0:
        return PriceRefusal(asset, f"feed {source.feed} answers {round_data.answer}")
    if round_data.updated_at + source.heartbeat < now:
        age = now - round_data.updated_at
        return PriceRefusal(
            asset,
            f"stale price: feed {source.feed} updated at {round_data.updated_at}, {age} s before block time {now}, "
            f"over its {source.heartbeat} s heartbeat",
        )
    usd = round_data.answer
    if source.feed_decimals > VALUE_DECIMALS:
        usd //= 10 ** (source.feed_decimals - VALUE_DECIMALS)
    elif source.feed_decimals < VALUE_DECIMALS:
        usd *= 10 ** (VALUE_DECIMALS - source.feed_decimals)
    return Price(asset, usd, 10**source.token_decimals, source.feed, round_data.updated_at)


@dataclass(frozen=True, slots=True)
class PriceBoard:
    """Every asset's price (or why not) at one block."""

    block: int
    timestamp: int
    prices: Mapping[str, Price | PriceRefusal]

    def get(self, asset: str) -> Price | PriceRefusal:
        return self.prices.get(asset.lower()) or PriceRefusal(asset, "not read")


async def read_prices(
    provider: AsyncBaseProvider, manager: str, assets: Iterable[str], block: int, timestamp: int
) -> PriceBoard:
    """The CollateralManager's price sources of ``assets`` and their feeds' answers at ``block`` (two batches);
    ``timestamp`` is that block's time, against which staleness is judged."""
    wanted = sorted({asset.lower() for asset in assets})
    sources_view = view("CollateralManager", "priceSources")
    first = [sources_view.call(manager, to_checksum_address(asset), block=block) for asset in wanted]
    first += [
        view("CollateralManager", "sequencerFeed").call(manager, block=block),
        view("CollateralManager", "sequencerGracePeriod").call(manager, block=block),
    ]
    answers = await read_views(provider, first)
    sources: dict[str, PriceSource | None] = {}
    for asset, (feed, heartbeat, feed_decimals, token_decimals) in zip(wanted, answers, strict=False):
        usable = str(feed).lower() != ZERO_ADDRESS
        sources[asset] = (
            PriceSource(str(feed), int(heartbeat), int(feed_decimals), int(token_decimals)) if usable else None
        )
    sequencer_feed, grace = str(answers[-2]), int(answers[-1])
    round_view = view("AggregatorV3Interface", "latestRoundData")
    feeds = sorted({source.feed for source in sources.values() if source is not None})
    calls = [round_view.call(feed, block=block) for feed in feeds]
    has_sequencer = sequencer_feed.lower() != ZERO_ADDRESS
    if has_sequencer:
        calls.append(round_view.call(sequencer_feed, block=block))
    rounds = await read_views(provider, calls, each=True)  # a feed with no contract refuses its assets' prices only
    by_feed = {
        feed: r if isinstance(r, ChainError) else RoundData(int(r[1]), int(r[2]), int(r[3]))
        for feed, r in zip(feeds, rounds, strict=False)
    }
    sequencer = None
    if has_sequencer:
        seq = rounds[-1]
        if isinstance(seq, ChainError):  # every price of the chain hangs on it: the round cannot judge any
            raise seq
        sequencer = Sequencer(sequencer_feed, grace, int(seq[1]), int(seq[2]))
    prices: dict[str, Price | PriceRefusal] = {}
    for asset, found in sources.items():
        data = by_feed.get(found.feed) if found is not None else None
        if isinstance(data, ChainError):
            prices[asset] = PriceRefusal(asset, f"its feed answers nothing usable: {data}")
            continue
        prices[asset] = usable_price(asset, found, data, timestamp, sequencer)
    return PriceBoard(block, timestamp, prices)
