"""EIP-1559 fees: what to offer, from ``eth_feeHistory``, within a chain's fee policy; and the bump that replaces a
stuck transaction at the same nonce. Pure functions over integers (wei); the RPC call lives in the lifecycle."""

from __future__ import annotations

import re
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
#: "gas required exceeds allowance (N) or always failing transaction"
ALLOWANCE_EXCEEDED = "gas required exceeds allowance"
_ALLOWANCE = re.compile(r"gas required exceeds allowance\W{0,3}(\d+)", re.IGNORECASE)


def gas_allowed(message: str) -> int | None:
    """The gas the node let an estimate try, as its "gas required exceeds allowance" ``message`` names it (None: it
    names none)."""
    named = _ALLOWANCE.search(message)
    return int(named.group(1)) if named else None


def short_of_funds(message: str, balance: Wei, gas_cap: int, max_fee_per_gas: Wei, value: Wei) -> bool:
    """Whether a node's "gas required exceeds allowance" at ``eth_estimateGas`` (``message``) says the sender's
    balance ran out, not the node's gas cap. Nodes say it of both: an estimate tries at most the block gas limit (or
    the node's RPC gas cap) and, when it carries a fee, at most what the balance less the value buys at that fee — so
    a call that runs out of gas whatever it is given and an account that cannot pay read alike. An allowance of at
    least ``gas_cap`` (the block gas limit) is the block's: no balance sends that call. Otherwise the balance is what
    stopped it only when it cannot buy one gas more than the node allowed (the gas the message names, else
    ``gas_cap``) at ``max_fee_per_gas``, the fee the transaction would pay. Any other message: False."""
    if ALLOWANCE_EXCEEDED not in message.lower():
        return False
    named = gas_allowed(message)
    if named is not None and named >= gas_cap:
        return False
    allowed = gas_cap if named is None else named
    return balance - value < (allowed + 1) * max_fee_per_gas


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
