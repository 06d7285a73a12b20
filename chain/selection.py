"""Fee-based chain selection: what one operation would cost on each eligible chain (gas estimate × expected fee
per gas × the native token's price) and the cheapest chosen, with every candidate's numbers and the reasons kept.

Costs stay integers in wei until the price is applied; the quote-currency cost is a ``Decimal`` quantized to
``COST_QUANTUM`` rounding up (a cost is never understated)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

from chain.client import ChainClient
from chain.errors import ChainError
from chain.fees import FeePolicy, fee_per_gas_estimate, suggest_fees
from chain.types import Wei
from store.chain import SqlChainStore

WEI_PER_NATIVE = Decimal(10**18)
COST_QUANTUM = Decimal("0.000001")


class PriceSource(Protocol):
    """The price of one whole native token (ETH, POL, …) in the quote currency."""

    async def native_price(self, symbol: str) -> Decimal: ...


class FixedPrices:
    """A price source from a fixed table (devnets, tests)."""

    def __init__(self, prices: Mapping[str, Decimal]) -> None:
        self.prices = dict(prices)

    async def native_price(self, symbol: str) -> Decimal:
        try:
            return self.prices[symbol]
        except KeyError:
            raise ChainError(f"no price for native token {symbol}") from None


# Gas of the operation on one chain: usually an eth_estimateGas of the real call through that chain's client.
GasEstimator = Callable[[ChainClient], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class ChainCost:
    chain: str
    chain_id: int
    eligible: bool
    reason: str
    gas: int | None = None
    fee_per_gas: Wei | None = None
    cost_wei: Wei | None = None
    native_token: str | None = None
    native_price: Decimal | None = None
    cost: Decimal | None = None

    def as_json(self) -> dict[str, object]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class ChainChoice:
    operation: str
    chosen: str | None
    candidates: tuple[ChainCost, ...]

    @property
    def reasons(self) -> list[str]:
        return [f"{c.chain}: {c.reason}" for c in self.candidates]


def cost_in_quote(cost_wei: int, native_price: Decimal) -> Decimal:
    return (Decimal(cost_wei) / WEI_PER_NATIVE * native_price).quantize(COST_QUANTUM, rounding=ROUND_CEILING)


async def _cost(client: ChainClient, estimate: GasEstimator, prices: PriceSource) -> ChainCost:
    config = client.config
    try:
        gas = await estimate(client)
        policy = FeePolicy.from_config(config)
        history = await client.rpc("eth_feeHistory", hex(policy.history_blocks), "latest", [policy.reward_percentile])
        next_base = Wei(int(history["baseFeePerGas"][-1], 16))
        tips = [Wei(int(r[0], 16)) for r in history.get("reward") or [] if r]
        fee = fee_per_gas_estimate(next_base, suggest_fees(next_base, tips, policy))
        price = await prices.native_price(config.native_token)
    except ChainError as err:
        return ChainCost(config.name, config.chain_id, False, f"not eligible: {err}")
    cost_wei = Wei(gas * fee)
    cost = cost_in_quote(cost_wei, price)
    reason = f"{gas} gas × {fee} wei/gas = {cost_wei} wei × {price} per {config.native_token} = {cost}"
    return ChainCost(config.name, config.chain_id, True, reason, gas, fee, cost_wei, config.native_token, price, cost)


async def choose_chain(
    operation: str,
    clients: Sequence[ChainClient],
    estimate: GasEstimator,
    prices: PriceSource,
    store: SqlChainStore | None = None,
) -> ChainChoice:
    """Cost ``operation`` on every chain in ``clients`` concurrently and choose the cheapest eligible one (ties go
    to the earlier chain in ``clients``: callers list preferred chains first). Recorded when ``store`` is given."""
    costs = await asyncio.gather(*(_cost(client, estimate, prices) for client in clients))
    eligible = [c for c in costs if c.eligible and c.cost is not None]
    best = min(eligible, key=lambda c: (c.cost, costs.index(c))) if eligible else None
    marked = tuple(
        c if c is not best else ChainCost(**{**asdict(c), "reason": "chosen, cheapest: " + c.reason}) for c in costs
    )
    choice = ChainChoice(operation, best.chain if best else None, marked)
    if store is not None:
        candidates = [c.as_json() for c in marked]
        await store.run(lambda repo: repo.add_selection(operation, choice.chosen, candidates))
    return choice
