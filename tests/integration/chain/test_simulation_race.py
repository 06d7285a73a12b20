"""anvil's racing ``eth_call``, reproduced cheaply (no platform, no accepts): the chaos run's Panic(0x11).

A probe contract stores ``block.timestamp`` on every transaction and, called with data, reverts when
``block.timestamp`` is behind the stored one — what ``LendingPool._accrue``'s ``block.timestamp - lastAccrual`` does
with a Panic(0x11). Many senders mine blocks while many callers simulate it: anvil now and then runs a call with
head N's timestamp over block N+1's state (a second later, right after a second boundary), so a raw ``eth_call``
at ``latest`` reverts; ``chain.relay.simulate`` re-simulates such a revert and must never report one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.config import LOCAL_CHAINS
from chain.devnet import Devnet, devnets
from chain.errors import TransactionReverted
from chain.relay import simulate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBE = AsyncWeb3.to_checksum_address("0x00000000000000000000000000000000000c10c0")
# no calldata: SSTORE(0, TIMESTAMP); with calldata: REVERT if TIMESTAMP < SLOAD(0), else STOP
PROBE_RUNTIME = "0x" + "36600857" + "425f5500" + "5b5f54421060115700" + "5b5f5ffd"
PROBE_ABI = [{"type": "function", "name": "check", "inputs": [], "outputs": [], "stateMutability": "view"}]
SECONDS = 30


@pytest.fixture
def devnet() -> Iterator[Devnet]:
    with devnets(LOCAL_CHAINS[:1], free_ports=True) as (running,):
        yield running


async def test_simulate_never_reports_the_race_raw_eth_call_shows(devnet: Devnet) -> None:
    w3 = AsyncWeb3(AsyncHTTPProvider(devnet.rpc_url))
    await w3.provider.make_request("anvil_setCode", [PROBE, PROBE_RUNTIME])
    probe = w3.eth.contract(address=PROBE, abi=PROBE_ABI)
    senders = (await w3.eth.accounts)[:8]
    stop = time.monotonic() + SECONDS
    raw_reverts: list[object] = []
    simulate_reverts: list[str] = []

    async def mine(sender: str) -> None:
        while time.monotonic() < stop:
            await w3.eth.send_transaction({"from": sender, "to": PROBE, "gas": 60_000})

    async def call_raw() -> None:
        while time.monotonic() < stop:
            answer = await w3.provider.make_request("eth_call", [{"to": PROBE, "data": "0x01"}, "latest"])
            if "error" in answer:
                raw_reverts.append(answer["error"])

    async def call_simulate() -> None:
        while time.monotonic() < stop:
            try:
                await simulate(probe.functions.check(), senders[0])
            except TransactionReverted as err:
                simulate_reverts.append(str(err))

    await asyncio.gather(
        *(mine(s) for s in senders), *(call_raw() for _ in range(8)), *(call_simulate() for _ in range(8))
    )
    assert simulate_reverts == []
    print(f"raw eth_call at latest reverted {len(raw_reverts)} times in {SECONDS} s; simulate never")
