"""Servicing tests run on a devnet of their own, one for the package (liquidations and time travel must not touch
the shared devnets' loans), deployed with the devnet profile, each module with its ledger in a PostgreSQL schema of
its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from aggregator.servicing.defaults import DefaulterSettings, DefaultJob
from chain.client import ChainClient
from chain.config import LOCAL_CHAINS
from chain.devnet import start_devnet
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from contracts.deploy import deploy_to_devnet
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import WETH, Harness
from tests.support.devnet import DeployedChain


@pytest.fixture(scope="package")
def own_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedChain]:
    local = LOCAL_CHAINS[0]
    devnet = start_devnet(local, port=0)
    try:
        record_path: Path = tmp_path_factory.mktemp("servicing") / f"{local.name}.json"
        record = deploy_to_devnet(devnet.name, devnet.chain_id, devnet.rpc_url, record_path)
        yield DeployedChain(devnet, record, Web3(Web3.HTTPProvider(devnet.rpc_url)))
    finally:
        devnet.stop()


@pytest.fixture(scope="module")
def servicing_db(postgres_schema: Callable[[str], str], request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database(postgres_schema(f"servicing_{request.module.__name__.rsplit('.', 1)[-1]}"))
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def record_in_ledger(database: Database, chain: DeployedChain, receipt: Any) -> None:
    """Apply a receipt's events to the ledger, as the accept (or the indexer) would."""
    from aggregator.ledger import LedgerChain, receipt_decoder
    from store.loan_ledger import apply_events

    events = receipt_decoder(chain.record, chain.w3.codec).decode_receipt(chain.chain_id, receipt)
    with database.unit_of_work() as uow:
        apply_events(uow.session, LedgerChain.from_record(chain.record), events)
        uow.commit()


def borrower_with_collateral(chain: DeployedChain) -> tuple[Harness, LocalAccount]:
    """A harness on ``chain`` with WETH priced at $3,000, and a new borrower (impersonated, with gas) holding 1 WETH,
    its tokens approved to the CreditAggregator, the CollateralManager and the pool: ready to open a loan."""
    harness = Harness(chain)
    harness.set_weth_price(3_000)
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=WETH)
    harness.approve_all(borrower.address)
    return harness, borrower


@pytest.fixture
async def job(
    own_chain: DeployedChain, servicing_db: Database, request: pytest.FixtureRequest
) -> AsyncIterator[DefaultJob]:
    """The package chain's default job with the operator's account, its lease held briefly (3 s) and its rounds run
    by the test (``run_round``); its holder named after the test's module."""
    client = await ChainClient(own_chain.config).connect()
    store = SqlChainStore(servicing_db.sessions)
    operator = await TransactionManager(
        client, devnet_signer(Role.OPERATOR), store, revert_artifacts=REVERT_ARTIFACTS
    ).start()
    settings = DefaulterSettings(ttl=timedelta(seconds=3), interval=0.2)
    holder = request.module.__name__.rsplit(".", 1)[-1]
    yield DefaultJob(client, own_chain.record, servicing_db, operator, holder=holder, settings=settings)
    await operator.close()
    await client.close()
