"""The loan ledger follows the chain: the indexer's facts and the ledger commit with the checkpoint; a loan opened
with the relayer key outside any accept appears linked to its quote and flagged; repayments, collateral and
closing reach the record; a reorg removes the facts (also those recorded early from a receipt) of the blocks it
took away and the loans they made; nothing above the confirmation depth is recorded."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from web3.logs import DISCARD

from aggregator.indexer import LEASE_KIND, READER, ChainIndexer, IndexerSettings
from aggregator.ledger import SOURCE_RECEIPT, LedgerChain, loan_id_for, receipt_decoder, watched_contracts
from chain.client import ChainClient
from chain.events import EventReader
from contracts.typed_data import Offer
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from store.ledger import ChainFactRow, LoanCollateralMovementRow, LoanLiquidationRow, LoanRepaymentRow
from store.loan_ledger import apply_batch, apply_events
from tests.contracts.harness import BORROWERS, OPERATOR, RELAYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote
from tests.support.pools import deploy_pool, deposit

pytestmark = pytest.mark.integration

BORROWER = BORROWERS[1]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
async def client(ethereum_local: DeployedChain) -> Any:
    chain_client = ChainClient(ethereum_local.config, timeout=10.0)
    await chain_client.connect()
    yield chain_client
    await chain_client.close()


def _reader(client: ChainClient, database: Database, record: Any, confirmations: int) -> EventReader:
    return EventReader(
        client,
        SqlChainStore(database.sessions),
        watched_contracts(record),
        reader="ledger",
        confirmations=confirmations,
    )


def _add_quote(database: Database, h: Harness, offer: Offer, status: str = "expired") -> str:
    """A quote of ours for ``offer`` (its digest as the contract computes it)."""
    quote_id = str(uuid.uuid4())
    add_quote(
        database,
        borrower_address=offer.borrower,
        offer_digest="0x" + h.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex(),
        provider_id="pool:usdc",
        kind="pool",
        chain_name=h.chain.name,
        chain_id=h.chain.chain_id,
        contract=h.aggregator.address,
        status=status,
        quote_id=quote_id,
    )
    return quote_id


def _open(h: Harness, offer: Offer) -> tuple[int, Any]:
    receipt = h.send(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    (event,) = h.aggregator.events.LoanOpened().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["loanId"]), receipt


def _facts(database: Database) -> list[ChainFactRow]:
    with database.unit_of_work() as uow:
        return list(
            uow.session.scalars(select(ChainFactRow).order_by(ChainFactRow.block_number, ChainFactRow.log_index))
        )


def _loans(database: Database, after_block: int) -> dict[str, LoanRow]:
    """The loans opened after ``after_block``: the session's devnet also carries loans other tests opened."""
    with database.unit_of_work() as uow:
        return {
            loan.id: loan for loan in uow.session.scalars(select(LoanRow).where(LoanRow.block_number > after_block))
        }


async def test_a_loan_opened_outside_the_accept_is_recorded_linked_and_flagged_and_followed(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    h = Harness(ethereum_local)
    base = h.w3.eth.block_number
    h.fund(BORROWER.address, usdc=2_000 * USDC, weth=2 * WETH)
    h.approve_all(BORROWER.address)
    offer = h.offer(BORROWER.address)
    quote_id = _add_quote(database, h, offer)
    loan_ref, _ = _open(h, offer)  # the relayer key, no accept of ours
    h.send(h.manager.functions.addCollateral(loan_ref, WETH // 2), BORROWER)
    h.advance(86_400)
    h.send(h.aggregator.functions.repay(loan_ref, 500 * USDC), BORROWER)
    h.send(h.aggregator.functions.close(loan_ref), BORROWER)
    chain = LedgerChain.from_record(ethereum_local.record)
    reader = _reader(client, database, ethereum_local.record, confirmations=1)

    def write(session: Any, batch: Any) -> None:
        apply_batch(session, chain, batch)

    await reader.poll(writer=write)

    (loan,) = _loans(database, base).values()
    assert loan.id == loan_id_for(chain.chain_id, chain.aggregator, loan.offer_digest)
    assert loan.quote_id == quote_id
    assert loan.opened_outside_accept
    assert loan.status == "repaid"
    assert loan.onchain_loan_id == loan_ref
    assert loan.principal == 1_500 * USDC
    assert loan.principal_paid == 1_500 * USDC
    assert loan.outstanding_principal == 0
    assert loan.interest_paid is not None
    assert loan.interest_paid > 0
    assert loan.collateral_amount == 0  # 1.5 WETH locked, all released at close
    assert (loan.funder, loan.asset, loan.block_hash is not None) == (h.pool.address, "USDC", True)
    with database.unit_of_work() as uow:
        repayments = list(uow.session.scalars(select(LoanRepaymentRow).where(LoanRepaymentRow.loan_id == loan.id)))
        movements = list(
            uow.session.scalars(select(LoanCollateralMovementRow).where(LoanCollateralMovementRow.loan_id == loan.id))
        )
    assert sum(r.principal_paid for r in repayments) == 1_500 * USDC
    assert len(repayments) == 2
    assert [(m.direction, m.amount) for m in movements] == [
        ("added", WETH),
        ("added", WETH // 2),
        ("removed", WETH + WETH // 2),
    ]
    facts = _facts(database)
    events = [f.event for f in facts if f.loan_ref == loan_ref]
    assert events[0] == "LoanOpened"
    assert {"LoanFunded", "CollateralAdded", "LoanRepaid", "LoanClosed", "CollateralRemoved"} <= set(events)
    assert all(isinstance(value, str | bool) for f in facts for value in f.args.values())  # big ints as strings
    # a second poll and a replay of the same events write nothing twice
    assert await reader.poll(writer=write) == 0
    with database.unit_of_work() as uow:
        assert apply_events(uow.session, chain, []) == 0
    assert len(_facts(database)) == len(facts)


async def test_a_reorg_removes_the_facts_and_the_loan_of_the_blocks_it_took(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    h = Harness(ethereum_local)
    h.fund(BORROWER.address, usdc=1_000 * USDC, weth=4 * WETH)
    h.approve_all(BORROWER.address)
    chain = LedgerChain.from_record(ethereum_local.record)
    decoder = receipt_decoder(ethereum_local.record, client.w3.codec)
    reader = _reader(client, database, ethereum_local.record, confirmations=3)

    def write(session: Any, batch: Any) -> None:
        apply_batch(session, chain, batch)

    snapshot = h.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    base = h.w3.eth.block_number  # the deployment's own facts are below

    def facts() -> list[ChainFactRow]:
        return [f for f in _facts(database) if f.block_number > base]

    first = h.offer(BORROWER.address)
    _, receipt = _open(h, first)
    statements: list[str] = []
    listen = functools.partial(event.listen, database.engine, "before_cursor_execute")
    listen(lambda *args: statements.append(args[2]))
    with database.unit_of_work() as uow:  # what the accept records at once from the receipt
        apply_events(uow.session, chain, decoder.decode_receipt(chain.chain_id, receipt), source=SOURCE_RECEIPT)
        uow.commit()
    # the loan is read once, by its id or its on-chain id (a record from before ids were derived) in one statement,
    # and not again once saved: by its CollateralLocked, or to be updated
    assert len([sql for sql in statements if sql.startswith("SELECT") and "\nFROM loans" in sql]) == 1
    opened_block = int(receipt["blockNumber"])
    await reader.poll(writer=write)  # the loan's block is the head: not confirmed, nothing indexed
    assert {f.source for f in facts()} == {SOURCE_RECEIPT}
    for _ in range(3):
        h.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    await reader.poll(writer=write)
    head = h.w3.eth.block_number
    assert max(f.block_number for f in _facts(database) if f.source != SOURCE_RECEIPT) <= head - 2
    first_facts = {(f.block_hash, f.tx_hash) for f in facts()}
    assert {tx for _, tx in first_facts} == {receipt["transactionHash"].to_0x_hex()}
    (first_loan,) = _loans(database, base).values()

    # the chain goes back to before the loan, and other blocks are mined: a different loan lands instead
    h.w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
    second = h.offer(BORROWER.address, principal=900 * USDC)
    h.fund(BORROWER.address, weth=1)  # shift the second loan into another block than the first was in
    _, second_receipt = _open(h, second)
    for _ in range(4):
        h.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    await reader.poll(writer=write)

    assert len(reader.reorgs) == 1
    after = facts()
    assert not first_facts & {(f.block_hash, f.tx_hash) for f in after}  # the removed blocks' facts are gone
    assert {f.tx_hash for f in after} == {second_receipt["transactionHash"].to_0x_hex()}
    loans = _loans(database, base)
    assert first_loan.id not in loans
    (loan,) = loans.values()
    assert loan.principal == 900 * USDC
    assert loan.block_number == int(second_receipt["blockNumber"]) != opened_block
    assert loan.opened_outside_accept  # no quote of ours at all
    assert loan.quote_id is None
    with database.unit_of_work() as uow:
        movements = select(func.count()).where(LoanCollateralMovementRow.loan_id == loan.id)
        assert uow.session.scalar(movements) == 1


async def test_default_liquidation_and_write_off_reach_the_ledger(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    h = Harness(ethereum_local)
    base = h.w3.eth.block_number
    liquidator = BORROWERS[3]
    h.fund(BORROWER.address, weth=2 * WETH)
    h.fund(liquidator.address, usdc=20_000 * USDC)
    for account in (BORROWER, liquidator):
        h.approve_all(account.address)
    terms: dict[str, Any] = {"principal": 2_000 * USDC, "originationFee": 0}
    terms["rateBps"] = max(900, h.min_rate(2_000 * USDC))
    defaulted, _ = _open(h, h.offer(BORROWER.address, **terms))
    written_off, _ = _open(h, h.offer(BORROWER.address, **terms))
    chain = LedgerChain.from_record(ethereum_local.record)
    reader = _reader(client, database, ethereum_local.record, confirmations=1)

    def write(session: Any, batch: Any) -> None:
        apply_batch(session, chain, batch)

    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(defaulted), OPERATOR)
    await reader.poll(writer=write)
    by_ref = {loan.onchain_loan_id: loan for loan in _loans(database, base).values()}
    assert by_ref[defaulted].status == "defaulted"
    assert by_ref[written_off].status == "active"

    h.send(h.manager.functions.liquidate(defaulted, 10_000 * USDC), liquidator)  # a defaulted loan: closed in full
    h.set_weth_price(1_500)  # the other's collateral no longer covers its debt
    h.send(h.manager.functions.liquidate(written_off, 10_000 * USDC), liquidator)
    h.advance(1)
    await reader.poll(writer=write)
    by_ref = {loan.onchain_loan_id: loan for loan in _loans(database, base).values()}
    assert (by_ref[defaulted].status, by_ref[defaulted].outstanding_principal) == ("liquidated", 0)
    assert (by_ref[written_off].status, by_ref[written_off].outstanding_principal) == ("written_off", 0)
    assert by_ref[written_off].collateral_amount == 0, "the liquidator seized it all"
    with database.unit_of_work() as uow:
        ours = [by_ref[defaulted].id, by_ref[written_off].id]
        liquidations = list(uow.session.scalars(select(LoanLiquidationRow).where(LoanLiquidationRow.loan_id.in_(ours))))
    assert sorted(row.loan_id for row in liquidations) == sorted(ours)
    assert all(row.liquidator == liquidator.address and row.collateral_seized > 0 for row in liquidations)


async def _leading(client: ChainClient, record: Any, database: Database) -> ChainIndexer:
    indexer = ChainIndexer(client, record, database, settings=IndexerSettings(confirmations=1))
    indexer.lease = await indexer.leases.acquire(LEASE_KIND, indexer.chain_id, indexer.holder, timedelta(minutes=5))
    assert indexer.lease is not None
    return indexer


async def test_a_pool_registered_inside_a_range_is_read_from_its_registration_and_after_a_restart(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    h = Harness(ethereum_local)
    head = h.w3.eth.get_block("latest")
    await SqlChainStore(database.sessions).run(
        lambda repo: repo.set_checkpoint(h.chain.chain_id, READER, int(head["number"]), head["hash"].to_0x_hex())
    )
    indexer = await _leading(client, ethereum_local.record, database)
    pool = deploy_pool(h)
    h.govern(h.aggregator, "registerPool", pool.address)
    first = deposit(h, pool, 1_000 * USDC)  # in the range that registers the pool: read only by a backfill
    h.advance(1)
    await indexer.poll()
    facts = _facts(database)
    assert "Deposit" in [f.event for f in facts if f.tx_hash == first and f.address == pool.address]
    assert any(f.event == "PoolRegistered" for f in facts)
    await indexer.leases.release(indexer.lease)  # type: ignore[arg-type]

    # a restarted indexer watches the pool from its recorded PoolRegistered, not only from the deployment record
    restarted = await _leading(client, ethereum_local.record, database)
    second = deposit(h, pool, 500 * USDC)
    h.advance(1)
    await restarted.poll()
    assert "Deposit" in [f.event for f in _facts(database) if f.tx_hash == second]


async def test_a_pool_registered_while_another_process_led_is_read_when_the_lease_comes_back(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    """A leads, B takes the lease over and records a pool's registration and first deposit, A leads again: A reads
    the pool's events from its first poll on (it read the registered pools only once, when it first led)."""
    h = Harness(ethereum_local)
    head = h.w3.eth.get_block("latest")
    await SqlChainStore(database.sessions).run(
        lambda repo: repo.set_checkpoint(h.chain.chain_id, READER, int(head["number"]), head["hash"].to_0x_hex())
    )
    first_leader = await _leading(client, ethereum_local.record, database)
    h.advance(1)
    await first_leader.poll()
    await first_leader.leases.release(first_leader.lease)  # type: ignore[arg-type]

    other = await _leading(client, ethereum_local.record, database)
    pool = deploy_pool(h)
    h.govern(h.aggregator, "registerPool", pool.address)
    first = deposit(h, pool, 1_000 * USDC)
    h.advance(1)
    await other.poll()
    assert "Deposit" in [f.event for f in _facts(database) if f.tx_hash == first]
    await other.leases.release(other.lease)  # type: ignore[arg-type]

    back = await first_leader.leases.acquire(
        LEASE_KIND, first_leader.chain_id, first_leader.holder, timedelta(minutes=5)
    )
    assert back is not None
    first_leader.lease = back
    second = deposit(h, pool, 500 * USDC)
    h.advance(1)
    await first_leader.poll()
    assert first_leader.reader.watches(pool.address)
    assert "Deposit" in [f.event for f in _facts(database) if f.tx_hash == second]
