"""``sender_funds``' rules alone: which refusals are the account's funds, the pause between attempts, and how many
refusals in a row a loan's action has behind it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from aggregator.servicing.sender_funds import (
    SenderFunds,
    cost,
    funds_message,
    pause,
    refusals_in_a_row,
    refused_for_funds,
)
from chain.errors import ChainError, GasEstimationFailed
from chain.signers import Role
from store.chain import DROPPED, FAILED, REVERTED, AttemptRecord, IntentRecord

pytestmark = pytest.mark.unit

NODE_SAYS = "ethereum-local refused markDefault:1:0xabc:1: insufficient funds for gas * price + value"


def _intent(status: str, error: str | None = None, gas: int = 0, fee: int = 0) -> IntentRecord:
    attempts = () if not gas else (AttemptRecord("0x01", 0, fee, 1, gas, "0x", "rejected", datetime.now(UTC)),)
    return IntentRecord("k", 1, "0xabc", "0xdef", "0x", 0, gas or None, "0x", status, error=error, attempts=attempts)


def test_only_a_refusal_for_the_account_s_funds_counts() -> None:
    assert funds_message(NODE_SAYS)
    assert funds_message("Insufficient balance for transfer")
    assert not funds_message("nonce too low")
    assert refused_for_funds(_intent(FAILED, NODE_SAYS))
    assert not refused_for_funds(_intent(FAILED, "max fee per gas less than block base fee"))
    assert not refused_for_funds(_intent(REVERTED, NODE_SAYS)), "a revert is the contract's answer"


def test_a_gas_allowance_exceeded_counts_only_where_the_transaction_manager_found_the_balance_short() -> None:
    """A node says "gas required exceeds allowance" of an account that cannot pay and of a call that needs more gas
    than a block holds: the transaction manager stores which it was after it (``chain.transactions``), and only the
    first is the account's funds — after a restart too, read from the stored intent."""
    node = "gas estimate failed on ethereum-local: Out of gas: gas required exceeds allowance: 30000000"
    bought = "a balance of 10000000000000000000000 wei buys {} the 30000000 gas allowed at 2000000000 wei per gas"
    out_of_gas = (
        f"{node} (not the sender's funds: {bought.format('more than')}; the call needs more gas than the node allows)"
    )
    starved = f"{node} (insufficient funds: {bought.format('no more than')})"
    assert not refused_for_funds(_intent(FAILED, node)), "as the node said it: not known to be the account's funds"
    assert not refused_for_funds(_intent(FAILED, out_of_gas))
    assert refused_for_funds(_intent(FAILED, starved))
    assert refusals_in_a_row([_intent(FAILED, starved), _intent(FAILED, out_of_gas)]) == 0
    assert refusals_in_a_row([_intent(FAILED, out_of_gas), _intent(FAILED, starved)]) == 1


def test_the_pause_doubles_per_refusal_up_to_the_most() -> None:
    assert [pause(n, 60, 3_600) for n in (1, 2, 3, 6, 7, 40)] == [60, 120, 240, 1_920, 3_600, 3_600]


def test_refusals_are_counted_back_from_the_latest_attempt() -> None:
    refused, dropped = _intent(FAILED, NODE_SAYS), _intent(DROPPED, "replaced")
    assert refusals_in_a_row([refused, dropped]) == 0
    assert refusals_in_a_row([dropped, refused, refused]) == 2
    assert refusals_in_a_row([]) == 0


def test_the_cost_of_a_refused_attempt_is_its_gas_at_its_fee_cap() -> None:
    assert cost(_intent(FAILED, NODE_SAYS, gas=100_000, fee=2_000_000_000)) == 200_000_000_000_000
    assert cost(_intent(FAILED, NODE_SAYS)) is None


class _Node:
    """``ChainClient.rpc`` answering ``eth_getBalance`` with ``balance``."""

    def __init__(self, balance: int) -> None:
        self.balance = balance

    async def rpc(self, method: str, *_: object) -> str:
        assert method == "eth_getBalance"
        return hex(self.balance)


async def test_a_first_attempt_waits_out_only_the_first_pause_after_the_account_s_last_refusal() -> None:
    """A keeper found starved by a refusal at a fee spike, its balance not grown since (it paid a retry, or fees fell
    and it can pay now): a new underwater loan's first liquidation was held back for the hour after the refusal
    (review C reproduced it: 61 minutes). It waits out the first pause only, then goes out as the account's probe."""
    sender = SimpleNamespace(account=SimpleNamespace(chain_id=31337, address="0x" + "ab" * 20))
    funds = SenderFunds(_Node(10**15), sender, 60, 3_600, role=Role.KEEPER, job="keeper", sends="liquidations")  # type: ignore[arg-type]
    funds.starved, funds.starved_balance = True, 10**15

    funds.refused_at = time.monotonic() - 10
    assert await funds.deferral("liquidate", ()) is not None, "within the first pause: held back"
    funds.new_round()
    funds.refused_at = time.monotonic() - 61
    assert await funds.deferral("liquidate", ()) is None, "past the first pause: sent, the account's probe"


def test_a_round_stops_sending_after_a_funds_refusal_at_the_estimate_and_not_after_a_call_out_of_gas() -> None:
    """The keeper raises a ``ChainError`` from the manager's ``GasEstimationFailed``: the round's later sends wait
    when the estimate found the account short, not when the call needed more gas than the node allows, nor when it
    reverts (a token's "insufficient balance" is the contract's answer)."""
    sender = SimpleNamespace(account=SimpleNamespace(chain_id=31337, address="0x" + "ab" * 20))
    node = "gas estimate failed on ethereum-local: Out of gas: gas required exceeds allowance: 30000000"
    for said, refused in [
        (f"{node} (insufficient funds: a balance of 1 wei buys no more than the 30000000 gas allowed)", True),
        (f"{node} (not the sender's funds: a balance of 9 wei buys more than the 30000000 gas allowed)", False),
        ("gas estimate failed on ethereum-local: execution reverted: insufficient balance", False),
    ]:
        funds = SenderFunds(_Node(0), sender, 60, 3_600, role=Role.KEEPER, job="keeper", sends="claims")  # type: ignore[arg-type]
        estimate = GasEstimationFailed(said)
        try:
            raise ChainError(f"claimCollateral:1: {estimate}") from estimate
        except ChainError as err:
            funds.saw(err)
        assert funds.refused_now is refused, said
