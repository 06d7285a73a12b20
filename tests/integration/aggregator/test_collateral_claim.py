"""The platform's collateral claim after a close whose push the token refused: while the token still refuses the
borrower the claim is not sent (and nothing fails); once it would pass, the relayer sends ``claimCollateral`` and the
borrower has the collateral."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from web3.logs import DISCARD

from aggregator.platform import ChainRuntime, connect_chain
from aggregator.repaying import claim_collateral
from chain.artifacts import load_artifact
from chain.signers import Role, devnet_signer
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import BORROWERS, DEPLOYER, WETH, Harness
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

BORROWER = BORROWERS[3]


def _closed_with_a_blocking_token(h: Harness) -> tuple[int, Any]:
    """A loan closed while the token refused to push the collateral to the borrower: its id, and the token."""
    h.approve_all(BORROWER.address)
    artifact = load_artifact("MockBlockingERC20")
    factory = h.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    deployed = h.w3.eth.wait_for_transaction_receipt(
        factory.constructor("Blocking", "BLK", 18).transact({"from": DEPLOYER.address})
    )
    token = h.w3.eth.contract(address=deployed["contractAddress"], abi=artifact.abi)
    h.impersonate(h.timelock.address)
    h.send(h.manager.functions.setPriceFeed(token.address, h.weth_feed.address, 3_600), h.timelock.address)
    h.send(h.manager.functions.setCollateralParameters(token.address, 8_000, 8_250, 500, 10**24), h.timelock.address)
    h.send(token.functions.mint(BORROWER.address, WETH), DEPLOYER)
    h.send(token.functions.approve(h.aggregator.address, WETH), BORROWER)
    loan_id, _ = h.open_loan(BORROWER, collateralAsset=token.address)
    h.send(token.functions.setBlocked(BORROWER.address, True), DEPLOYER)
    closed = h.send(h.aggregator.functions.close(loan_id), BORROWER)
    assert h.manager.events.CollateralClaimable().process_receipt(closed, errors=DISCARD)
    return loan_id, token


@asynccontextmanager
async def _relayer(chain: DeployedChain, tmp_path: Path) -> AsyncIterator[ChainRuntime]:
    """The platform's chain runtime, relaying as the relayer, its intents in a SQLite database of its own."""
    database = Database(f"sqlite:///{tmp_path / 'claims.db'}")
    database.migrate()
    runtime = await connect_chain(
        chain.config, chain.record, devnet_signer(Role.RELAYER), SqlChainStore(database.sessions)
    )
    try:
        yield runtime
    finally:
        await runtime.close()
        database.dispose()


async def test_the_claim_waits_until_the_token_lets_the_borrower_have_it(
    ethereum_local: DeployedChain, tmp_path: Path
) -> None:
    h = Harness(ethereum_local)
    loan_id, token = _closed_with_a_blocking_token(h)
    async with _relayer(ethereum_local, tmp_path) as runtime:
        assert await claim_collateral(runtime, loan_id, 30) is None, "blocked: nothing sent"
        h.send(token.functions.setBlocked(BORROWER.address, False), DEPLOYER)
        tx_hash = await claim_collateral(runtime, loan_id, 30)
    assert tx_hash is not None
    assert token.functions.balanceOf(BORROWER.address).call() == WETH


async def test_a_claim_that_reverted_is_sent_again_once_it_would_pass(
    ethereum_local: DeployedChain, tmp_path: Path
) -> None:
    """The token let the borrower have it when the claim was simulated and refused again before it was mined: the
    claim reverted. Under its one fixed intent key every later call answered that revert, and the collateral could
    never be claimed for the borrower; the next call now sends the next attempt."""
    h = Harness(ethereum_local)
    loan_id, token = _closed_with_a_blocking_token(h)
    h.send(token.functions.setBlocked(BORROWER.address, False), DEPLOYER)
    async with _relayer(ethereum_local, tmp_path) as runtime:
        relayer = to_checksum_address(runtime.relayer)
        h.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        try:
            before = h.w3.eth.get_transaction_count(relayer, "pending")
            claim = asyncio.create_task(claim_collateral(runtime, loan_id, 30))
            for _ in range(500):
                if h.w3.eth.get_transaction_count(relayer, "pending") > before:
                    break
                await asyncio.sleep(0.01)
            block = token.functions.setBlocked(BORROWER.address, True)  # ahead of the claim in the block: a higher tip
            fees: Any = {"from": DEPLOYER.address, "maxPriorityFeePerGas": 50 * 10**9, "maxFeePerGas": 200 * 10**9}
            block.transact(fees)
            h.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        finally:
            h.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        assert await claim is None, "reverted: the token refused the borrower again"
        assert token.functions.balanceOf(BORROWER.address).call() == 0

        h.send(token.functions.setBlocked(BORROWER.address, False), DEPLOYER)
        tx_hash = await claim_collateral(runtime, loan_id, 30)
    assert tx_hash is not None
    assert token.functions.balanceOf(BORROWER.address).call() == WETH
