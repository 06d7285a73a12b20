"""The in-process nonce allocator, payload hashes of calls, and chain-selection cost arithmetic."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from eth_typing import ChecksumAddress, HexAddress, HexStr

from chain.nonces import AccountRef, LocalNonceAllocator
from chain.selection import cost_in_quote
from chain.transactions import Call
from chain.types import Nonce, Wei

pytestmark = pytest.mark.unit

TO = ChecksumAddress(HexAddress(HexStr("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")))
ACCOUNT = AccountRef(31337, TO)
OTHER = AccountRef(31338, ACCOUNT.address)


async def test_concurrent_allocations_are_unique_and_gapless() -> None:
    allocator = LocalNonceAllocator()
    nonces = await asyncio.gather(*(allocator.allocate(ACCOUNT, f"k{i}") for i in range(500)))
    assert sorted(nonces) == list(range(500))
    assert await allocator.allocate(OTHER, "other") == 0  # chains do not share a counter


async def test_released_nonces_are_reused_first_and_floor_drops_used_ones() -> None:
    allocator = LocalNonceAllocator()
    for i in range(5):
        await allocator.allocate(ACCOUNT, f"k{i}")
    await allocator.release(ACCOUNT, Nonce(3))
    await allocator.release(ACCOUNT, Nonce(1))
    await allocator.release(ACCOUNT, Nonce(9))  # never handed out: ignored
    assert [await allocator.allocate(ACCOUNT, "a"), await allocator.allocate(ACCOUNT, "b")] == [1, 3]
    assert await allocator.allocate(ACCOUNT, "c") == 5
    assert await allocator.handed_out(ACCOUNT) == 6
    await allocator.release(ACCOUNT, Nonce(2))
    await allocator.floor(ACCOUNT, Nonce(10))  # the chain has used 0..9
    assert await allocator.allocate(ACCOUNT, "d") == 10
    await allocator.release(ACCOUNT, Nonce(10))
    await allocator.floor(ACCOUNT, Nonce(10), handed_out=Nonce(14))  # handed out up to 13; the chain has not used 10
    assert [await allocator.allocate(ACCOUNT, f"e{i}") for i in range(2)] == [10, 14]


def test_payload_hash_distinguishes_every_field() -> None:
    base = Call(to=TO, data=b"\x01", value=Wei(0), gas=None)
    variants = [
        Call(to=None, data=b"\x01"),
        Call(to=TO, data=b"\x02"),
        Call(to=TO, data=b"\x01", value=Wei(1)),
        Call(to=TO, data=b"\x01", gas=21_000),
    ]
    hashes = {call.payload_hash(31337, ACCOUNT.address) for call in [base, *variants]}
    assert len(hashes) == 5
    assert base.payload_hash(31337, ACCOUNT.address) != base.payload_hash(31338, ACCOUNT.address)


def test_cost_in_quote_rounds_up_and_stays_exact() -> None:
    # 21,000 gas × 3 gwei = 63,000 gwei = 0.000063 ETH at 3,000.00 → 0.189
    assert cost_in_quote(21_000 * 3 * 10**9, Decimal("3000.00")) == Decimal("0.189000")
    assert cost_in_quote(1, Decimal("1")) == Decimal("0.000001")  # never understated
