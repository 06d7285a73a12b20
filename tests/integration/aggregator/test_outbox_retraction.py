"""Loan events of reorged blocks, on a devnet (``evm_snapshot``/``evm_revert``, as the ledger's reorg test does) with
the indexer's own writer and the outbox relay posting to a lender's receiver over HTTP: a repayment delivered to the
lender and another not delivered yet are both in blocks a reorg removes — the undelivered one is cancelled (never
sent), the delivered one is taken back with ``loan.event_retracted`` naming it, and the loan's opening (below the fork)
and a repayment mined on the new branch stand and are delivered in order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from aggregator.event_destinations import Destination, EventDestinations
from aggregator.ledger import LedgerChain, watched_contracts
from aggregator.relay import DEPLOYMENT, LEASE_KIND, OutboxRelay, RelaySettings
from aggregator.servicing.defaults import write_past_due
from chain.client import ChainClient
from chain.events import ChainEvent, EventBatch, EventReader
from providers.destinations import DestinationGuard, PinnedTransport
from providers.secrets import SecretBox
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from store.loan_ledger import apply_batch, apply_events
from store.outbox import (
    CANCELLED,
    DELIVERED,
    PENDING,
    OutboxDeliveryRow,
    OutboxEventRow,
    SqlOutboxRepository,
    SqlOutboxStore,
)
from store.relay import SqlRelayStore
from store.servicing import SqlServicingRepository
from tests.contracts.harness import RELAYER, USDC, WETH, Harness
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import CHAIN, LoanFacts, add_quote
from tests.support.receiver import EventReceiver

pytestmark = pytest.mark.integration

LENDER, SECRET = "sim-bank", "retraction-test-secret"
FAST = RelaySettings(ttl=timedelta(seconds=3), interval=0.05, tries=2, first_wait=0.05, timeout=2)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'retraction.db'}")
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
async def client(ethereum_local: DeployedChain) -> AsyncIterator[ChainClient]:
    chain_client = await ChainClient(ethereum_local.config, timeout=10.0).connect()
    yield chain_client
    await chain_client.close()


def _events(database: Database, loan_id: str) -> list[OutboxEventRow]:
    with database.unit_of_work() as uow:
        return SqlOutboxRepository(uow.session).events(loan_id)


def _recorded_deliveries(database: Database, loan_id: str) -> int:
    """How many of the loan's event deliveries the relay has recorded as delivered."""
    with database.unit_of_work() as uow:
        outbox = SqlOutboxRepository(uow.session)
        return sum(d.status == DELIVERED for event in outbox.events(loan_id) for d in outbox.deliveries(event.id))


async def _relay_until(database: Database, receiver: EventReceiver, done: Callable[[], bool]) -> None:
    """Run the outbox relay (to the lender's receiver) until ``done``."""
    destinations = EventDestinations(SecretBox.from_master_key(bytes(32)), {LENDER: Destination(receiver.url, SECRET)})
    async with httpx.AsyncClient(transport=PinnedTransport(DestinationGuard(["127.0.0.0/8"]))) as http:
        relay = OutboxRelay(SqlRelayStore(database), destinations, http, settings=FAST)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:
            for _ in range(600):  # 60 s at most
                if done():
                    break
                await asyncio.sleep(0.05)
            assert done(), "the relay did not get there in time"
        finally:
            stop.set()
            await running


def _quoted_borrower(
    deployed: DeployedChain, client: ChainClient, database: Database, reader_name: str
) -> tuple[Harness, LocalAccount, Any, EventReader, Callable[[Any, Any], None]]:
    """A fresh borrower with WETH, our quote of a pool offer to it (1,500 USDC: the proceeds pay the repayments the
    tests make), and a ledger reader from the next block with its writer."""
    h = Harness(deployed)
    borrower: LocalAccount = Account.create()
    h.impersonate(borrower.address)
    h.fund(borrower.address, weth=2 * WETH)
    h.approve_all(borrower.address)
    offer = h.offer(borrower.address)
    add_quote(
        database,
        borrower_address=borrower.address,
        offer_digest="0x" + h.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex(),
        provider_id=LENDER,
        chain_name=deployed.name,
        chain_id=deployed.chain_id,
        contract=h.aggregator.address,
    )
    chain = LedgerChain.from_record(deployed.record)
    reader = EventReader(
        client,
        SqlChainStore(database.sessions),
        watched_contracts(deployed.record),
        reader=reader_name,
        confirmations=1,
        start_block=h.w3.eth.block_number + 1,
    )

    def write(session: Any, batch: Any) -> None:
        apply_batch(session, chain, batch)

    return h, borrower, offer, reader, write


async def test_a_reorg_cancels_undelivered_events_and_retracts_delivered_ones(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    h, borrower, offer, reader, write = _quoted_borrower(ethereum_local, client, database, "retraction")
    w3: Any = h.w3

    def repay(amount: int) -> str:
        receipt = h.send(h.aggregator.functions.repay(loan_ref, amount), borrower.address)
        (event,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
        return str(event["transactionHash"].to_0x_hex())

    opened = h.send(h.aggregator.functions.openLoan(*h.open_args(offer, borrower.key)), RELAYER)
    (event,) = h.aggregator.events.LoanOpened().process_receipt(opened, errors=DISCARD)
    loan_ref = int(event["args"]["loanId"])
    fork = w3.provider.make_request("evm_snapshot", [])["result"]  # the loan's opening stays below the fork

    receiver = EventReceiver(SECRET).start()
    try:
        delivered_repayment = repay(100 * USDC)
        await reader.poll(writer=write)
        with database.unit_of_work() as uow:
            loan_id = uow.session.query(LoanRow).filter(LoanRow.onchain_loan_id == loan_ref).one().id
        # received and recorded as delivered: the receiver has an event before the relay records its delivery, and
        # a delivery in flight when the relay stops stays pending (sent again later), which the reorg below would
        # cancel instead of retracting
        await _relay_until(
            database, receiver, lambda: len(receiver.events()) == 2 and _recorded_deliveries(database, loan_id) == 2
        )
        undelivered_repayment = repay(200 * USDC)
        await reader.poll(writer=write)  # written to the outbox; the relay is not running
        before = {e.body["data"].get("tx_hash"): e for e in _events(database, loan_id)}
        assert set(before) >= {delivered_repayment, undelivered_repayment}

        # the chain goes back to the fork and grows another branch, longer than the one it drops
        w3.provider.make_request("evm_revert", [fork])
        h.impersonate(borrower.address)
        h.fund(borrower.address, usdc=1)  # shifts the new branch's repayment into another block
        new_repayment = repay(300 * USDC)
        for _ in range(4):
            w3.provider.make_request("evm_mine", [])
        await reader.poll(writer=write)
        assert len(reader.reorgs) == 1

        after = {e.id: e for e in _events(database, loan_id)}
        retracted, cancelled = after[before[delivered_repayment].id], after[before[undelivered_repayment].id]
        assert retracted.retracted_at is not None
        assert retracted.retracted_by is not None
        assert cancelled.retracted_at is not None
        assert cancelled.retracted_by is None  # nobody had it: nothing to say
        assert after[before[opened["transactionHash"].to_0x_hex()].id].retracted_at is None  # below the fork

        # the re-read range's transaction records the new branch's repayment, then retracts what no fact makes
        # again: the new repayment comes first, in the loan's order
        await _relay_until(
            database,
            receiver,
            lambda: [e.type for e in receiver.events()][-2:] == ["loan.repayment", "loan.event_retracted"],
        )
    finally:
        receiver.stop()

    received = receiver.events()
    assert [e.type for e in received] == ["loan.opened", "loan.repayment", "loan.repayment", "loan.event_retracted"]
    assert [e.sequence for e in received] == sorted(e.sequence for e in received)
    retraction = received[3].body["data"]
    assert retraction["retracted_event_id"] == received[1].event_id == before[delivered_repayment].id
    assert retraction["retracted_type"] == "loan.repayment"
    assert retraction["reason"] == "reorg"
    assert retraction["tx_hash"] == delivered_repayment
    assert received[3].event_id == retracted.retracted_by
    assert received[2].body["data"]["tx_hash"] == new_repayment
    assert before[undelivered_repayment].id not in {e.event_id for e in received}  # cancelled: never sent
    assert receiver.refused == []


# ---------------------------------------------------------------------------- the same rules on synthetic facts


def _apply(database: Database, events: list[ChainEvent]) -> None:
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, events)
        uow.commit()


def _reorg(database: Database, first: int, last: int, events: tuple[ChainEvent, ...] = (), head_hash: str = "") -> None:
    """The indexer's write of blocks ``first``..``last`` after a reorg: ``events`` are the range's now."""
    hashes = {event.block_number: event.block_hash for event in events} | {last: head_hash or "0x" + "ee" * 32}
    with database.unit_of_work() as uow:
        apply_batch(uow.session, CHAIN, EventBatch(CHAIN.chain_id, first, last, events, block_hashes=hashes))
        uow.commit()


def _delivered(database: Database, loan_id: str) -> None:
    """Every event of the loan delivered to the lender (as the relay records it)."""
    now = datetime.now(UTC)
    with database.unit_of_work() as uow:
        for event in SqlOutboxRepository(uow.session).events(loan_id):
            event.dispatched_at = now
            uow.session.add(
                OutboxDeliveryRow(
                    event_id=event.id,
                    loan_id=loan_id,
                    sequence=event.sequence,
                    recipient=f"provider:{LENDER}",
                    status=DELIVERED,
                    attempts=1,
                    next_attempt_at=now,
                    created_at=now,
                    delivered_at=now,
                )
            )
        uow.commit()


def test_an_event_whose_transaction_is_mined_again_stands_and_a_removed_opening_is_retracted(
    database: Database,
) -> None:
    facts = LoanFacts(loan_ref=7_001)
    facts.quoted_by(database, LENDER)
    opened, repaid = facts.opened(), facts.repaid(1_000, 400_000_000, 600_000_000)
    _apply(database, [opened, repaid])
    _delivered(database, facts.loan_id)
    first = {e.event_type: e.id for e in _events(database, facts.loan_id)}

    # the repayment's block is replaced by another one holding the same transaction at the same place
    again = dataclasses.replace(repaid, block_hash="0x" + "fe" * 32)
    _reorg(database, repaid.block_number, repaid.block_number, (again,), head_hash=again.block_hash)
    events = _events(database, facts.loan_id)
    assert [(e.event_type, e.retracted_at) for e in events] == [("loan.opened", None), ("loan.repayment", None)]
    assert {e.event_type: e.id for e in events} == first  # the ids the lender knows

    # both blocks go: the loan was never opened, its record goes, and the lender hears both events taken back
    _reorg(database, opened.block_number, repaid.block_number)
    with database.unit_of_work() as uow:
        assert uow.session.get(LoanRow, facts.loan_id) is None
    events = _events(database, facts.loan_id)
    retractions = [e for e in events if e.event_type == "loan.event_retracted"]
    assert {e.body["data"]["retracted_event_id"] for e in retractions} == set(first.values())
    assert all(e.body["loan"]["loan_id"] == facts.loan_id for e in retractions)  # as the retracted event showed it
    assert all(e.retracted_at is not None and e.retracted_by for e in events if e.event_type != "loan.event_retracted")
    with database.unit_of_work() as uow:
        repo = SqlOutboxRepository(uow.session)
        assert [[d.recipient for d in repo.deliveries(e.id)] for e in retractions] == [[f"provider:{LENDER}"]] * 2

    # the opening is mined again later, beyond the reorg's range: a new loan.opened, under a new id
    later = dataclasses.replace(opened, block_number=repaid.block_number + 5, block_hash="0x" + "0d" * 32)
    _apply(database, [later])
    (reopened,) = [e for e in _events(database, facts.loan_id) if e.event_type == "loan.opened" and not e.retracted_at]
    assert reopened.id != first["loan.opened"]


def test_a_removed_opening_retracts_the_loans_past_due_notices_and_forgets_its_buckets(database: Database) -> None:
    facts = LoanFacts(loan_ref=7_003)
    facts.quoted_by(database, LENDER)
    opened = facts.opened()
    _apply(database, [opened])
    with database.unit_of_work() as uow:  # as the default job announces a bucket
        assert SqlServicingRepository(uow.session).announce(facts.loan_id, "1-29", 3, datetime.now(UTC))
        write_past_due(SqlOutboxStore(uow.session), facts.loan_id, {"bucket": "1-29", "days_past_due": 3})
        uow.commit()
    _delivered(database, facts.loan_id)

    _reorg(database, opened.block_number, opened.block_number)

    events = _events(database, facts.loan_id)
    told = {e.id for e in events if e.event_type in ("loan.opened", "loan.past_due")}
    assert len(told) == 2
    assert all(e.retracted_at is not None and e.retracted_by for e in events if e.id in told)
    retractions = [e for e in events if e.event_type == "loan.event_retracted"]
    assert {e.body["data"]["retracted_event_id"] for e in retractions} == told
    with database.unit_of_work() as uow:
        assert SqlServicingRepository(uow.session).announced(facts.loan_id) == set()  # went with the loan's record


async def test_a_delivery_in_flight_when_its_event_is_retracted_is_taken_back_too(database: Database) -> None:
    facts = LoanFacts(loan_ref=7_002)
    facts.quoted_by(database, LENDER)
    opened, repaid = facts.opened(), facts.repaid(1_000, 400_000_000, 600_000_000)
    _apply(database, [opened, repaid])
    receiver = EventReceiver(SECRET).start()
    destinations = EventDestinations(SecretBox.from_master_key(bytes(32)), {LENDER: Destination(receiver.url, SECRET)})
    try:
        async with httpx.AsyncClient(transport=PinnedTransport(DestinationGuard(["127.0.0.0/8"]))) as http:
            relay = OutboxRelay(SqlRelayStore(database), destinations, http, settings=FAST)
            relay.lease = await relay.leases.acquire(LEASE_KIND, DEPLOYMENT, relay.holder, FAST.ttl)
            await relay.round()  # dispatched; loan.opened sent (its repayment waits behind it)
            await _until(lambda: len(receiver.events()) == 1)
            await _until(lambda: _statuses(database, facts.loan_id)[0] == DELIVERED)
            (in_flight,) = await asyncio.to_thread(relay._due, 10)  # the repayment's send, about to go out
            _reorg(database, repaid.block_number, repaid.block_number)  # ... when a reorg takes its block
            assert _statuses(database, facts.loan_id) == [DELIVERED, CANCELLED]
            await relay._send(in_flight)  # it goes out all the same
            assert _statuses(database, facts.loan_id) == [DELIVERED, DELIVERED, PENDING]
            await relay.round()
            await _until(lambda: len(receiver.events()) == 3)
    finally:
        receiver.stop()
    assert [e.type for e in receiver.events()] == ["loan.opened", "loan.repayment", "loan.event_retracted"]
    assert receiver.events()[2].body["data"]["retracted_event_id"] == receiver.events()[1].event_id
    assert receiver.refused == []


def _statuses(database: Database, loan_id: str) -> list[str]:
    with database.unit_of_work() as uow:
        repo = SqlOutboxRepository(uow.session)
        return [d.status for e in repo.events(loan_id) for d in repo.deliveries(e.id)]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(600):  # 30 s at most
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def _signed(w3: Any, call: Any, account: LocalAccount) -> bytes:
    """``call`` signed by ``account`` at its next nonce: the same bytes can be sent again on another branch."""
    transaction = call.build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address),
            "gas": 3_000_000,
            "maxFeePerGas": 200 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "chainId": w3.eth.chain_id,
        }
    )
    return bytes(account.sign_transaction(transaction).raw_transaction)


def _mined(w3: Any, raw: bytes) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    assert receipt["status"] == 1
    return receipt


async def test_a_reorg_that_mines_the_same_transactions_again_keeps_the_loan_and_its_events(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    """The usual deep reorg: the new branch holds the very same transactions (same hashes, blocks and logs, new
    block hashes). The loan's record, its past-due notice and every event the lender had stand under their ids.
    The reorg notice used to delete the loan's facts at once: the loan went (its notices with it), every event
    was retracted, and the re-read made the loan and its events again under new ids."""
    h, borrower, offer, reader, write = _quoted_borrower(ethereum_local, client, database, "remined")
    w3: Any = h.w3

    digest = "0x" + h.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex()
    await reader.poll(writer=write)
    fork = w3.provider.make_request("evm_snapshot", [])["result"]
    raw_open = _signed(w3, h.aggregator.functions.openLoan(*h.open_args(offer, borrower.key)), RELAYER)
    opened = _mined(w3, raw_open)
    (event,) = h.aggregator.events.LoanOpened().process_receipt(opened, errors=DISCARD)
    raw_repay = _signed(w3, h.aggregator.functions.repay(int(event["args"]["loanId"]), 100 * USDC), borrower)
    repaid = _mined(w3, raw_repay)
    await reader.poll(writer=write)
    with database.unit_of_work() as uow:
        loan = uow.session.query(LoanRow).filter(LoanRow.offer_digest == digest).one()
        loan_id, created_at = loan.id, loan.created_at
        assert SqlServicingRepository(uow.session).announce(loan_id, "1-29", 3, datetime.now(UTC))
        write_past_due(SqlOutboxStore(uow.session), loan_id, {"bucket": "1-29", "days_past_due": 3})
        uow.commit()
    before = [(e.id, e.event_type) for e in _events(database, loan_id)]
    assert [kind for _, kind in before] == ["loan.opened", "loan.repayment", "loan.past_due"]

    w3.provider.make_request("evm_revert", [fork])
    w3.provider.make_request("evm_increaseTime", [5])  # the same transactions in blocks of another hash
    again = (_mined(w3, raw_open), _mined(w3, raw_repay))
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])
    assert [r["transactionHash"] for r in again] == [opened["transactionHash"], repaid["transactionHash"]]
    assert again[0]["blockHash"] != opened["blockHash"]
    await reader.poll(writer=write)

    assert len(reader.reorgs) == 1
    after = _events(database, loan_id)
    assert [(e.id, e.event_type) for e in after] == before, "the same events, under the same ids"
    assert all(e.retracted_at is None for e in after)
    with database.unit_of_work() as uow:
        kept = uow.session.get_one(LoanRow, loan_id)
        assert kept.created_at == created_at
        assert (kept.interest_paid or 0) + (kept.principal_paid or 0) == 100 * USDC
        assert SqlServicingRepository(uow.session).announced(loan_id) == {"1-29"}
