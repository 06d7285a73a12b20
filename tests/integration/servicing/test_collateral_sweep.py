"""The keeper's collateral claim sweep on the package's own devnet: a borrower closes a loan directly on-chain while
the collateral token refuses to pay them, so the close leaves the collateral claimable and nothing of the platform
sent it. The indexer records the facts; while the token still refuses, the keeper's round sends nothing; once it
would pass, the keeper claims it from its own account and the borrower has the collateral; the next rounds (this
keeper's, another's, and one that restarted after sending but before recording) send nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import delete, select

from aggregator.indexer import index_to_head
from aggregator.servicing.keeper import Keeper, claim_intent_key
from chain.client import ChainClient
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from store.chain import REVERTED, SqlChainStore
from store.db import Database
from store.ledger import ChainFactRow, LoanCollateralMovementRow
from tests.contracts.harness import DEPLOYER, WETH, Harness
from tests.integration.servicing.conftest import closed_with_a_blocking_token
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

KEEPER = devnet_signer(Role.KEEPER)


@pytest.fixture
async def keepers(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[list[Keeper]]:
    """Two keepers of the chain (as two processes would run them), each with its own transaction manager."""
    made: list[tuple[ChainClient, TransactionManager]] = []
    keepers = []
    for holder in ("keeper-a", "keeper-b"):
        client = await ChainClient(own_chain.config).connect()
        store = SqlChainStore(servicing_db.sessions)
        transactions = await TransactionManager(client, KEEPER, store, revert_artifacts=REVERT_ARTIFACTS).start()
        made.append((client, transactions))
        keepers.append(Keeper(client, own_chain.record, servicing_db, transactions, holder=holder))
    yield keepers
    for client, transactions in made:
        await transactions.close()
        await client.close()


async def test_a_direct_close_left_claimable_is_claimed_once_by_the_keeper(
    own_chain: DeployedChain, servicing_db: Database, keepers: list[Keeper]
) -> None:
    harness = Harness(own_chain)
    borrower, token, loan_ref, first_block = closed_with_a_blocking_token(harness)
    await index_to_head(own_chain.config, own_chain.record, servicing_db, first_block, reader="claim-sweep")
    nonce = harness.w3.eth.get_transaction_count(KEEPER.address)

    blocked = await keepers[0].run_round()
    assert blocked.claimed == {}
    account_blocked = "0x" + keccak(text="AccountBlocked(address)")[:4].hex()  # the token's error, bubbled up
    assert account_blocked in blocked.unclaimed[loan_ref]
    assert harness.w3.eth.get_transaction_count(KEEPER.address) == nonce  # refused by simulation: nothing sent

    harness.send(token.functions.setBlocked(borrower.address, False), DEPLOYER)
    claimed = await keepers[0].run_round()
    assert set(claimed.claimed) == {loan_ref}
    assert token.functions.balanceOf(borrower.address).call() == WETH
    assert harness.w3.eth.get_transaction_count(KEEPER.address) == nonce + 1
    with servicing_db.unit_of_work() as uow:
        (removed,) = uow.session.scalars(
            select(LoanCollateralMovementRow).where(LoanCollateralMovementRow.direction == "removed")
        ).all()
        assert (removed.account, removed.amount) == (borrower.address, WETH)

    assert (await keepers[0].run_round()).claimed == {}
    assert (await keepers[1].run_round()).claimed == {}
    # a keeper that sent the claim but died before recording its receipt: the fact is missing, the intent is not
    with servicing_db.unit_of_work() as uow:
        uow.session.execute(delete(ChainFactRow).where(ChainFactRow.tx_hash == claimed.claimed[loan_ref]))
        uow.commit()
    resumed = await keepers[1].run_round()
    assert resumed.claimed == {loan_ref: claimed.claimed[loan_ref]}  # the same transaction, recorded now
    key = claim_intent_key(own_chain.chain_id, keepers[1].chain.manager, loan_ref)
    assert (await keepers[1].transactions.store.get_intent(key)) is not None
    assert harness.w3.eth.get_transaction_count(KEEPER.address) == nonce + 1
    assert (await keepers[1].run_round()).claimed == {}


async def test_a_claim_that_reverted_is_sent_again_once_it_would_pass(
    own_chain: DeployedChain, servicing_db: Database, keepers: list[Keeper]
) -> None:
    """The token let the borrower have it when the keeper simulated the claim and refused again before it was mined:
    the claim reverted. Under the one fixed intent key per loan the keeper never claimed that collateral again; the
    next round now sends the next attempt once its simulation passes."""
    harness = Harness(own_chain)
    borrower, token, loan_ref, first_block = closed_with_a_blocking_token(harness)
    await index_to_head(own_chain.config, own_chain.record, servicing_db, first_block, reader="claim-sweep-retry")
    harness.send(token.functions.setBlocked(borrower.address, False), DEPLOYER)
    keeper = keepers[0]
    harness.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        before = harness.w3.eth.get_transaction_count(KEEPER.address, "pending")
        sweeping = asyncio.create_task(keeper.run_round())
        for _ in range(1_000):
            if harness.w3.eth.get_transaction_count(KEEPER.address, "pending") > before:
                break
            await asyncio.sleep(0.01)
        refuse = token.functions.setBlocked(borrower.address, True)  # ahead of the claim in the block: a higher tip
        fees: Any = {"from": DEPLOYER.address, "maxPriorityFeePerGas": 50 * 10**9, "maxFeePerGas": 200 * 10**9}
        refuse.transact(fees)
        harness.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    finally:
        harness.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    reverted = await sweeping
    assert reverted.claimed == {}
    assert loan_ref in reverted.unclaimed
    first = await keeper.transactions.store.get_intent(
        claim_intent_key(own_chain.chain_id, keeper.chain.manager, loan_ref)
    )
    assert first is not None
    assert first.status == REVERTED
    assert token.functions.balanceOf(borrower.address).call() == 0

    harness.send(token.functions.setBlocked(borrower.address, False), DEPLOYER)
    claimed = await keepers[1].run_round()  # another keeper (or a restart) takes the next attempt as well
    assert set(claimed.claimed) == {loan_ref}
    assert token.functions.balanceOf(borrower.address).call() == WETH
    second = await keeper.transactions.store.get_intent(
        claim_intent_key(own_chain.chain_id, keeper.chain.manager, loan_ref, 2)
    )
    assert second is not None
    assert second.tx_hash == claimed.claimed[loan_ref]
    assert (await keeper.run_round()).claimed == {}  # claimed: no third attempt
