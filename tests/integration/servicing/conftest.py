"""Servicing tests run on a devnet of their own, one for the package (liquidations and time travel must not touch
the shared devnets' loans), deployed with the devnet profile, each module with its ledger in a PostgreSQL schema of
its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from web3 import Web3
from web3.logs import DISCARD
from web3.types import RPCEndpoint

from aggregator.accept_saga import FUND_REFUSED
from aggregator.servicing.defaults import DefaulterSettings, DefaultJob
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from chain.artifacts import load_artifact
from chain.client import ChainClient
from chain.config import LOCAL_CHAINS
from chain.devnet import start_devnet
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from contracts.deploy import deploy_to_devnet
from store.accept_rows import AcceptRow
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from tests.contracts.harness import DEPLOYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain
from tests.support.health_page import admin_health_page
from tests.support.ledger_facts import add_quote


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


def unfunded_loan(chain: DeployedChain, database: Database, *, pool: bool = False) -> tuple[int, str, LocalAccount]:
    """A loan opened on-chain from sim-bank's quote whose funding instruction sim-bank refused (its accept
    ``fund-refused``, as the saga leaves it): its on-chain id, its ledger id, the borrower."""
    harness, borrower = borrower_with_collateral(chain)
    term = 30 * SECONDS_PER_DAY
    loan_ref, receipt = harness.open_loan(borrower, pool=pool, principal=1_000 * USDC, originationFee=0, term=term)
    record_in_ledger(database, chain, receipt)
    quote_id, now = str(uuid.uuid4()), datetime.now(UTC)
    with database.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == loan_ref)).one()
        loan_id, borrower_id = loan.id, loan.borrower_id
    add_quote(
        database, borrower_address=borrower.address, borrower_id=borrower_id, offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id="sim-bank", chain_name=chain.name, chain_id=chain.chain_id,
        contract=chain.record.address("CreditAggregator"), offer={"providerRef": f"ref-{loan_ref}"}, quote_id=quote_id,
    )  # fmt: skip
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        assert row is not None
        row.quote_id, row.provider_id = quote_id, "sim-bank"
        row.opened_outside_accept = False  # the accept opened it
        accept = AcceptRow(
            quote_id=quote_id, request_id=str(uuid.uuid4()), borrower_id=str(row.borrower_id), kind="traditional",
            chain_name=chain.name, attempt=1, step="recorded", owner="gone", lease_until=now, updated_at=now,
            error="sim-bank refused to fund the loan: 409", loan_id=loan_id, lender_state=FUND_REFUSED,
        )  # fmt: skip
        uow.session.add(accept)
        uow.commit()
    return loan_ref, loan_id, borrower


@contextmanager
def out_of_gas(chain: DeployedChain, account: str) -> Iterator[None]:
    """A sending account (the operator's, the keeper's) emptied (the node refuses its transactions), then topped up
    again."""
    balance = chain.w3.eth.get_balance(account)  # type: ignore[arg-type]
    chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [account, hex(0)])
    try:
        yield
    finally:
        chain.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [account, hex(balance)])


async def intent_status(sender: TransactionManager, key: str) -> str | None:
    """The status of the intent ``key`` (None: none stored under it)."""
    intent = await sender.store.get_intent(key)
    return None if intent is None else intent.status


def blocking_collateral(harness: Harness) -> Any:
    """A collateral token that can refuse transfers to an account (``setBlocked``), priced like WETH."""
    artifact = load_artifact("MockBlockingERC20")
    factory = harness.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    deployed = harness.w3.eth.wait_for_transaction_receipt(
        factory.constructor("Blocking", "BLK", 18).transact({"from": DEPLOYER.address})
    )
    token = harness.w3.eth.contract(address=deployed["contractAddress"], abi=artifact.abi)
    timelock = harness.timelock.address
    harness.impersonate(timelock)
    harness.send(harness.manager.functions.setPriceFeed(token.address, harness.weth_feed.address, 3_600), timelock)
    harness.send(harness.manager.functions.setCollateralParameters(token.address, 8_000, 8_250, 500, 10**24), timelock)
    return token


def closed_with_a_blocking_token(harness: Harness) -> tuple[LocalAccount, Any, int, int]:
    """A loan closed by its borrower directly on-chain while its collateral token refused them: the borrower, the
    token, the loan's id and the first block to index."""
    harness.set_weth_price(3_000)
    token = blocking_collateral(harness)
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, usdc=100 * USDC)  # the interest and the fee, beyond the proceeds
    harness.approve_all(borrower.address)
    harness.send(token.functions.mint(borrower.address, WETH), DEPLOYER)
    harness.send(token.functions.approve(harness.aggregator.address, WETH), borrower.address)
    first_block = harness.w3.eth.block_number + 1
    loan_ref, _ = harness.open_loan(borrower, collateralAsset=token.address, collateralAmount=WETH)

    harness.send(token.functions.setBlocked(borrower.address, True), DEPLOYER)
    closed = harness.send(harness.aggregator.functions.close(loan_ref), borrower.address)  # not through the platform
    assert harness.manager.events.CollateralClaimable().process_receipt(closed, errors=DISCARD)
    return borrower, token, loan_ref, first_block


async def admin_health(client: ChainClient, senders: dict[Role, TransactionManager]) -> dict[str, Any]:
    """``GET /health`` as an admin, over ``client`` and the accounts of ``senders`` (a process's keys by role)."""
    chain = SimpleNamespace(client=client, senders=senders)
    return await admin_health_page(
        SimpleNamespace(chains={"servicing": chain}, compliance=SimpleNamespace(versions=lambda: {}))
    )
