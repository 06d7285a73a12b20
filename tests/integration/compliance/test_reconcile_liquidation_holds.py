"""Liquidation holds on a real devnet and PostgreSQL, reconciled as ``creditmesh reconcile`` runs: the operator's
``holdLiquidation`` of an unfunded loan, sent by the platform as an intent of its own, is matched with its
``LiquidationHoldChanged``; a hold in a transaction no intent of ours sent (the operator's key used outside the
platform: a loan nobody may liquidate) is reported on-chain-not-recorded. Before, ``LiquidationHoldChanged`` was
counted as seen and never matched: such a hold went unreported."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from aggregator.servicing.defaults import hold_intent_key
from chain.client import ChainClient
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import Call, TransactionManager
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import OPERATOR
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_holds_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_liquidation_hold_is_matched_with_the_operators_intent(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    ours = maker.open(0, lender=("sim-bank", f"ref-{os.urandom(4).hex()}"))
    outside = maker.open(1, lender=("sim-bank", f"ref-{os.urandom(4).hex()}"))
    manager = maker.h.manager
    client = await ChainClient(chain.config).connect()
    operator = await TransactionManager(
        client, devnet_signer(Role.OPERATOR), SqlChainStore(database.sessions), revert_artifacts=REVERT_ARTIFACTS
    ).start()
    try:
        key = hold_intent_key(chain.chain_id, ours.onchain_id)
        data = bytes.fromhex(manager.encode_abi("holdLiquidation", [ours.onchain_id])[2:])
        receipt = await operator.submit_and_wait(key, Call(manager.address, data), within=60)
        assert receipt.status == "confirmed"
    finally:
        await operator.close()
        await client.close()
    maker.h.send(manager.functions.holdLiquidation(outside.onchain_id), OPERATOR)
    await index(chain, database, start)

    result = await reconciled(chain, database, start)

    assert [(item.category.value, item.subject, item.what) for item in result.items] == [
        ("on-chain-not-recorded", f"loan {outside.onchain_id}", "LiquidationHoldChanged")
    ]
    (reported,) = result.items
    assert "no intent of ours sent" in reported.detail
    assert result.counts["matched"] >= 3  # both loans, and the platform's hold
