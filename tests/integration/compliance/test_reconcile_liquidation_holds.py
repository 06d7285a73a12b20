"""Liquidation holds on a real devnet and PostgreSQL, reconciled as ``creditmesh reconcile`` runs: the operator's
``holdLiquidation`` of an unfunded loan, sent by the platform as an intent of its own, is matched with its
``LiquidationHoldChanged``; a hold in a transaction no intent of ours sent (the operator's key used outside the
platform: a loan nobody may liquidate) is reported on-chain-not-recorded. Before, ``LiquidationHoldChanged`` was
counted as seen and never matched: such a hold went unreported. A hold of ours that the transaction manager has not
marked confirmed yet when the run reads is ours too, and another deployment's intents on the chain are not this
one's."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from aggregator.servicing.defaults import default_intent_key, hold_intent_key
from chain.client import ChainClient
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import Call, TransactionManager
from store.chain import SqlChainStore
from store.chain_rows import ChainIntentRow
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
    unconfirmed = maker.open(2, lender=("sim-bank", f"ref-{os.urandom(4).hex()}"))
    manager = maker.h.manager
    client = await ChainClient(chain.config).connect()
    operator = await TransactionManager(
        client, devnet_signer(Role.OPERATOR), SqlChainStore(database.sessions), revert_artifacts=REVERT_ARTIFACTS
    ).start()
    try:
        for loan in (ours, unconfirmed):
            key = hold_intent_key(chain.chain_id, manager.address, loan.onchain_id)
            data = bytes.fromhex(manager.encode_abi("holdLiquidation", [loan.onchain_id])[2:])
            receipt = await operator.submit_and_wait(key, Call(manager.address, data), within=60)
            assert receipt.status == "confirmed"
    finally:
        await operator.close()
        await client.close()
    maker.h.send(manager.functions.holdLiquidation(outside.onchain_id), OPERATOR)
    await index(chain, database, start)
    with database.unit_of_work() as uow:
        # mined, not yet marked confirmed when the run reads (the manager's next round, or its process stopped)
        uow.session.execute(
            update(ChainIntentRow)
            .where(ChainIntentRow.key == hold_intent_key(chain.chain_id, manager.address, unconfirmed.onchain_id))
            .values(status="mined")
        )
        # another deployment's confirmed default of its loan of the same number, in the run's range
        other_aggregator = "0x" + "0d" * 20
        other = default_intent_key(chain.chain_id, other_aggregator, ours.onchain_id)
        now = datetime.now(UTC)
        uow.session.add(
            ChainIntentRow(key=other, chain_id=chain.chain_id, sender=OPERATOR.address, to_address=other_aggregator,
                           data="0x", value=0, payload_hash="0x" + "00" * 32, status="confirmed", nonce=0,
                           tx_hash="0x" + "0e" * 32, block_number=maker.head(), created_at=now, updated_at=now)
        )  # fmt: skip
        uow.commit()

    result = await reconciled(chain, database, start)

    assert [(item.category.value, item.subject, item.what) for item in result.items] == [
        ("on-chain-not-recorded", f"loan {outside.onchain_id}", "LiquidationHoldChanged")
    ]
    (reported,) = result.items
    assert "no intent of ours sent" in reported.detail
    assert result.counts["matched"] >= 4  # the three loans, and the platform's confirmed hold
