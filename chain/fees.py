"""EIP-1559 fees: what to offer, from ``eth_feeHistory``, within a chain's fee policy; and the bump that replaces a
stuck transaction at the same nonce. Pure functions over integers (wei); the RPC call lives in the lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.config import ChainConfig
from chain.errors import FeeCapExceeded
from chain.types import Wei

GWEI = 10**9
# Nodes refuse a same-nonce replacement unless both fee fields rise by at least 10 % (geth's default price bump);
# 12.5 % is what the issue asks and matches the base fee's own per-block maximum step.
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8
ONE_GWEI = Wei(GWEI)
FIFTY_GWEI = Wei(50 * GWEI)


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """How much a chain's transactions may pay per gas.

    ``max_fee_per_gas`` is the hard cap; ``base_fee_multiplier`` is the headroom over the next block's base fee
    (2 survives six consecutive full blocks); the priority fee is the ``reward_percentile`` of recent blocks'
    tips, clamped to [``min_priority_fee``, ``max_priority_fee``]."""

    max_fee_per_gas: Wei
    min_priority_fee: Wei = ONE_GWEI
    max_priority_fee: Wei = FIFTY_GWEI
    reward_percentile: int = 50
    history_blocks: int = 10
    base_fee_multiplier: int = 2

    @classmethod
    def from_config(cls, config: ChainConfig) -> FeePolicy:
        cap = Wei(config.max_fee_gwei * GWEI)
        return cls(max_fee_per_gas=cap, max_priority_fee=Wei(min(50 * GWEI, cap)))


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: Wei
    max_priority_fee_per_gas: Wei

    def as_params(self) -> dict[str, int]:
        return {"maxFeePerGas": self.max_fee_per_gas, "maxPriorityFeePerGas": self.max_priority_fee_per_gas}


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    if not ordered:
        return 0
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def suggest_fees(next_base_fee: Wei, recent_tips: Sequence[Wei], policy: FeePolicy) -> Fees:
    """Fees for a new transaction: the median recent tip (clamped) over ``multiplier × next base fee``, capped.

    Raises FeeCapExceeded when even the next block's base fee plus the minimum tip is above the cap: such a
    transaction could not be included now, and the caller should not sign it."""
    if next_base_fee + policy.min_priority_fee > policy.max_fee_per_gas:
        raise FeeCapExceeded(
            f"next base fee {next_base_fee} wei + minimum tip exceeds the chain's cap {policy.max_fee_per_gas} wei"
        )
    tip = min(max(_median(recent_tips), policy.min_priority_fee), policy.max_priority_fee)
    max_fee = min(policy.base_fee_multiplier * next_base_fee + tip, policy.max_fee_per_gas)
    return Fees(max_fee_per_gas=Wei(max_fee), max_priority_fee_per_gas=Wei(min(tip, max_fee)))


#: what a node says at ``eth_estimateGas`` when the call needs more gas than it lets the estimate try, lower-cased:
#: geth "gas required exceeds allowance (N)", anvil "Out of gas: gas required exceeds allowance: N", geth before 1.9
#: "gas required exceeds allowance (N) or always failing transaction". Nodes cap an estimate by what the sender's
#: balance buys only when the estimate carries a fee; ours carry none (``chain.transactions``), so for us it always
#: means the call needs more gas than the node allows (its block gas limit or RPC gas cap), never the sender's funds
ALLOWANCE_EXCEEDED = "gas required exceeds allowance"
#: what the transaction manager stores after such a refusal, so that a reader of the intent never takes it for funds
NOT_THE_SENDERS_FUNDS = (
    "not the sender's funds: an estimate without a fee is capped by the node's gas limit, not by the balance; the call "
    "needs more gas than the node allows"
)


def bumped(value: int) -> int:
    """``value`` raised by 12.5 %, rounded up (a rounded-down bump could fall short of the node's minimum)."""
    return -(-value * BUMP_NUMERATOR // BUMP_DENOMINATOR)


def replacement_fees(previous: Fees, market: Fees, policy: FeePolicy) -> Fees:
    """Fees for a same-nonce replacement: at least 12.5 % above ``previous`` in both fields and at least what the
    market asks now. Raises FeeCapExceeded when the cap leaves no room for the bump."""
    tip = max(market.max_priority_fee_per_gas, bumped(previous.max_priority_fee_per_gas))
    max_fee = max(market.max_fee_per_gas, bumped(previous.max_fee_per_gas), tip)
    max_fee = min(max_fee, policy.max_fee_per_gas)
    if max_fee < bumped(previous.max_fee_per_gas) or max_fee < tip:
        raise FeeCapExceeded(
            f"a 12.5 % bump of max fee {previous.max_fee_per_gas} wei exceeds the chain's cap {policy.max_fee_per_gas}"
        )
    return Fees(max_fee_per_gas=Wei(max_fee), max_priority_fee_per_gas=Wei(tip))


def fee_per_gas_estimate(next_base_fee: Wei, fees: Fees) -> Wei:
    """What a transaction is expected to pay per gas in the next block (base fee + tip, never above its cap)."""
    return Wei(min(fees.max_fee_per_gas, next_base_fee + fees.max_priority_fee_per_gas))
