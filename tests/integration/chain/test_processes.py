"""Across processes: two senders on one PostgreSQL nonce counter, and a sender killed between signing and
confirmation whose intents a restarted manager finishes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest

from chain.client import ChainClient
from chain.signers import Role, devnet_signer
from store.chain import CONFIRMED, SqlChainStore
from tests.integration.chain.support import deploy_token, manager, miner

pytestmark = pytest.mark.integration


async def _worker(db: str, client: ChainClient, token: str, prefix: str, count: int, *extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.chain.worker",
        db,
        client.config.rpc_urls[0],
        str(client.config.chain_id),
        token,
        prefix,
        str(count),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode is not None
    return process.returncode, (stdout or stderr).decode()


async def _deployer_nonce(client: ChainClient) -> int:
    return int(await client.rpc("eth_getTransactionCount", devnet_signer(Role.DEPLOYER).address, "latest"), 16)


async def test_two_processes_share_one_postgres_nonce_counter(
    client: ChainClient, pg_store: SqlChainStore, postgres_url: str
) -> None:
    async with manager(client, pg_store, Role.RELAYER) as relayer:
        token = await deploy_token(relayer)
    async with miner(client, 0.1):
        results = await asyncio.gather(
            _worker(postgres_url, client, token.address, "p1", 250),
            _worker(postgres_url, client, token.address, "p2", 250),
        )
    nonces: list[int] = []
    for returncode, output in results:
        assert returncode == 0, output
        nonces += json.loads(output.strip().splitlines()[-1])["nonces"]
    assert sorted(nonces) == list(range(500))  # every nonce once, no gap
    assert await _deployer_nonce(client) == 500


async def test_a_process_killed_between_signing_and_confirmation_resumes(
    client: ChainClient, pg_store: SqlChainStore, postgres_url: str
) -> None:
    async with manager(client, pg_store, Role.RELAYER) as relayer:
        token = await deploy_token(relayer)
    await client.rpc("evm_setAutomine", False)  # nothing confirms before the kill
    returncode, _ = await _worker(postgres_url, client, token.address, "crash", 20, "--kill-after-signing", "crash:19")
    assert returncode == -signal.SIGKILL
    before = {key: await pg_store.get_intent(f"crash:{key}") for key in range(20)}
    assert all(intent is not None and intent.nonce is not None for intent in before.values())
    assert await _deployer_nonce(client) == 0
    async with manager(client, pg_store, Role.DEPLOYER) as txs, miner(client, 0.1):
        receipts = await asyncio.gather(*(txs.wait(f"crash:{i}", within=60) for i in range(20)))
    assert all(r.status == CONFIRMED for r in receipts)
    for i, receipt in enumerate(receipts):
        intent = before[i]
        assert intent is not None
        assert receipt.tx_hash == intent.attempts[0].tx_hash  # the same signed bytes, never a second transaction
    assert sorted(r.nonce for r in receipts) == list(range(20))
    assert await _deployer_nonce(client) == 20
