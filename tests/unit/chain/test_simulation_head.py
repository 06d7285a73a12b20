"""``chain.relay.simulate``: pinned to the head it read, and a revert trusted only when the head stayed put.

anvil can answer an ``eth_call`` for head N with block N's timestamp over block N+1's state; under concurrent accepts a
valid ``openLoan`` then reverted with Panic(0x11) in ``LendingPool._accrue`` (``block.timestamp - lastAccrual``). The
fake below plays that node: a call whose head moved while it ran reverts with that panic."""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import ContractPanicError

from chain.errors import TransactionReverted
from chain.relay import SIMULATION_ATTEMPTS, revert_of, simulate

pytestmark = pytest.mark.unit

PANIC_UNDERFLOW = "0x4e487b71" + "11".rjust(64, "0")
RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class _Eth:
    def __init__(self, heads: list[int]) -> None:
        self.heads = heads

    @property
    async def block_number(self) -> int:
        return self.heads.pop(0) if len(self.heads) > 1 else self.heads[0]


class _Node:
    def __init__(self, heads: list[int]) -> None:
        self.eth = _Eth(heads)


class _OpenLoanCall:
    """``openLoan`` as a contract function: reverts (the panic) for every pinned block listed in ``racing``."""

    def __init__(self, heads: list[int], racing: set[int]) -> None:
        self.w3 = _Node(heads)
        self.racing = racing
        self.calls: list[tuple[dict[str, Any], int]] = []

    async def call(self, transaction: dict[str, Any], block_identifier: int) -> int:
        self.calls.append((transaction, block_identifier))
        if block_identifier in self.racing:
            raise ContractPanicError(
                "Panic error 0x11: Arithmetic operation results in underflow or overflow.", data=PANIC_UNDERFLOW
            )
        return 7  # the new loan's id


async def test_a_revert_while_the_head_moved_is_simulated_again_at_the_new_head() -> None:
    # head 5 before the call, 6 after its revert (a block was mined meanwhile); 6 again for the second attempt
    call = _OpenLoanCall(heads=[5, 6, 6], racing={5})
    assert await simulate(call, RELAYER) == 7
    assert call.calls == [({"from": RELAYER}, 5), ({"from": RELAYER}, 6)]


async def test_a_revert_at_a_head_that_stayed_put_is_final_and_decoded() -> None:
    call = _OpenLoanCall(heads=[5, 5], racing={5})
    with pytest.raises(TransactionReverted, match="0x11") as caught:
        await simulate(call, RELAYER)
    assert caught.value.revert_data == PANIC_UNDERFLOW
    assert len(call.calls) == 1


async def test_reverts_while_the_head_keeps_moving_give_up_after_the_last_attempt() -> None:
    heads = list(range(10, 10 + 2 * SIMULATION_ATTEMPTS + 2))
    call = _OpenLoanCall(heads=heads, racing=set(heads))
    with pytest.raises(TransactionReverted, match="0x11"):
        await simulate(call, RELAYER)
    assert [block for _, block in call.calls] == list(range(10, 10 + 2 * SIMULATION_ATTEMPTS, 2))


class _Provider:
    """A node for the servicing jobs' raw ``eth_call``: the head read before and after each call from ``heads``; a
    call pinned to a block in ``racing`` reverts with the panic, as anvil's race does."""

    def __init__(self, heads: list[int], racing: set[int]) -> None:
        self.heads, self.racing = heads, racing
        self.pinned: list[str] = []

    async def make_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        if method == "eth_blockNumber":
            return {"result": hex(self.heads.pop(0) if len(self.heads) > 1 else self.heads[0])}
        assert method == "eth_call"
        self.pinned.append(params[1])
        if int(params[1], 16) in self.racing:
            return {"error": {"code": 3, "message": "execution reverted", "data": PANIC_UNDERFLOW}}
        return {"result": "0x"}


REQUEST = {"from": RELAYER, "to": RELAYER, "data": "0x"}


async def test_a_servicing_simulation_that_reverted_while_the_head_moved_runs_again_and_passes() -> None:
    provider = _Provider(heads=[5, 6, 6], racing={5})
    assert await revert_of(provider, REQUEST) is None
    assert provider.pinned == ["0x5", "0x6"]


async def test_a_servicing_simulation_reverting_at_a_steady_head_names_the_panic() -> None:
    provider = _Provider(heads=[5, 5], racing={5})
    refused = await revert_of(provider, REQUEST)
    assert refused is not None
    assert refused == "Panic(0x11: arithmetic operation results in underflow or overflow)"  # as the job logs it
    assert provider.pinned == ["0x5"]
