"""The liquidation keeper on a devnet of its own: a stale feed → nothing sent and the reason logged; liquidations
paused → nothing sent; the WETH feed moved down → one keeper (of two sharing the chain's lease: one in this process,
one a ``creditmesh keeper`` process) liquidates within the close factor, seizing what the contract's rules say to the
wei, and the other sends nothing; under water while paused → impaired once, then liquidated with the bad debt
written off."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from aggregator.servicing.health import collateral_for_debt_down
from aggregator.servicing.keeper import Keeper, KeeperSettings, liquidation_intent_key
from api.bootstrap import write_chains_file
from chain.client import ChainClient
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role, devnet_signer
from chain.transactions import TransactionManager
from store.aggregator import LoanRow
from store.chain import TERMINAL_STATUSES, SqlChainStore
from store.db import Database
from store.ledger import LoanLiquidationRow
from tests.contracts.harness import DEPLOYER, GUARDIAN, USDC, WETH, Harness
from tests.integration.servicing.conftest import record_in_ledger
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

KEEPER = devnet_signer(Role.KEEPER)


@pytest.fixture(scope="module")
def harness(own_chain: DeployedChain) -> Harness:
    return Harness(own_chain)


def _open_loan(harness: Harness, servicing_db: Database) -> int:
    """A fresh borrower's loan of 5,000 USDC against 3 WETH, recorded in the ledger as the indexer would."""
    borrower: LocalAccount = Account.create()
    harness.impersonate(borrower.address)
    harness.fund(borrower.address, weth=3 * WETH)
    harness.approve_all(borrower.address)
    loan_ref, receipt = harness.open_loan(
        borrower, principal=5_000 * USDC, originationFee=50 * USDC, collateralAmount=3 * WETH
    )
    record_in_ledger(servicing_db, harness.chain, receipt)
    return int(loan_ref)


@pytest.fixture(scope="module")
def unhealthy_loan(harness: Harness, servicing_db: Database) -> int:
    """5,000 USDC against 3 WETH (health 1.485 at 3,000); WETH then moved to 2,000: health 0.99, above 0.95 and
    large, so one liquidation may repay half the debt."""
    loan_ref = _open_loan(harness, servicing_db)
    harness.set_weth_price(2_000)
    return loan_ref


@pytest.fixture
async def keepers(own_chain: DeployedChain, servicing_db: Database) -> AsyncIterator[list[Keeper]]:
    made: list[tuple[ChainClient, TransactionManager, Keeper]] = []
    for holder in ("keeper-a", "keeper-b"):
        client = await ChainClient(own_chain.config).connect()
        store = SqlChainStore(servicing_db.sessions)
        transactions = await TransactionManager(client, KEEPER, store, revert_artifacts=REVERT_ARTIFACTS).start()
        settings = KeeperSettings(ttl=timedelta(seconds=3), interval=0.2)
        keeper = Keeper(client, own_chain.record, servicing_db, transactions, holder=holder, settings=settings)
        made.append((client, transactions, keeper))
    yield [keeper for _, _, keeper in made]
    for client, transactions, _ in made:
        await transactions.close()
        await client.close()


def _rpc(harness: Harness, method: str, params: list[object]) -> None:
    answer = harness.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in answer, answer


async def _settled(transactions: TransactionManager, key: str) -> bool:
    intent = await transactions.store.get_intent(key)
    return intent is not None and intent.status in TERMINAL_STATUSES


def _liquidations(harness: Harness, loan_ref: int) -> list[dict[str, object]]:
    events = harness.manager.events.LoanLiquidated().get_logs(from_block=0, argument_filters={"loanId": loan_ref})
    return [dict(event["args"]) for event in events]


async def test_a_stale_feed_is_logged_and_nothing_is_sent(
    harness: Harness, unhealthy_loan: int, keepers: list[Keeper], caplog: pytest.LogCaptureFixture
) -> None:
    now = harness.now()
    harness.send(harness.weth_feed.functions.setTimes(now - 7_200, now - 7_200), DEPLOYER)  # heartbeat 3,600 s
    try:
        with caplog.at_level(logging.WARNING, logger="aggregator.servicing.keeper"):
            report = await keepers[0].run_round()
    finally:
        harness.send(harness.weth_feed.functions.setTimes(0, 0), DEPLOYER)
    assert report.sent == []
    assert "stale price" in report.skipped[unhealthy_loan]
    assert any("stale price" in record.getMessage() for record in caplog.records)
    assert _liquidations(harness, unhealthy_loan) == []


async def test_paused_liquidations_send_nothing(
    own_chain: DeployedChain, harness: Harness, unhealthy_loan: int, keepers: list[Keeper]
) -> None:
    nonce = harness.w3.eth.get_transaction_count(KEEPER.address)
    with own_chain.snapshot():
        harness.send(harness.manager.functions.pauseLiquidations(), GUARDIAN)
        report = await keepers[0].run_round()
        assert report.sent == []
        assert "paused" in report.skipped[unhealthy_loan]
        assert report.health[unhealthy_loan] < 10**18
    assert harness.w3.eth.get_transaction_count(KEEPER.address) == nonce


@pytest.fixture
def keeper_process(
    own_chain: DeployedChain, servicing_db: Database, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``creditmesh keeper`` on the same chain and database: a second keeper in a process of its own."""
    write_chains_file(tmp_path / "chains.json", [own_chain.config])
    own_chain.record.save(tmp_path / "deployments" / f"{own_chain.name}.json")
    env = os.environ | {
        "CREDITMESH_DATA_DIR": str(tmp_path),
        "CREDITMESH_CHAINS_FILE": str(tmp_path / "chains.json"),
        "CREDITMESH_DATABASE_URL": servicing_db.url,
    }
    command = [sys.executable, "-m", "api.cli", "keeper", "--lease-seconds", "3", "--interval", "0.2"]
    with (tmp_path / "keeper.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stderr=log)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_one_of_two_keepers_liquidates_within_the_close_factor(
    harness: Harness,
    unhealthy_loan: int,
    keepers: list[Keeper],
    keeper_process: subprocess.Popen[bytes],
    servicing_db: Database,
) -> None:
    nonce = harness.w3.eth.get_transaction_count(KEEPER.address)
    stop = asyncio.Event()
    running = asyncio.create_task(keepers[0].run(stop))
    try:
        for _ in range(150):  # 30 s at most
            if _liquidations(harness, unhealthy_loan):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # several more rounds of both: the position is healthy again, nothing more is sent
    finally:
        stop.set()
        await running
    assert keeper_process.poll() is None  # the other keeper is alive: it waited on the lease, or it led
    (liquidated,) = _liquidations(harness, unhealthy_loan)
    assert liquidated["liquidator"] == KEEPER.address
    assert harness.w3.eth.get_transaction_count(KEEPER.address) == nonce + 1
    repaid, seized = int(liquidated["debtRepaid"]), int(liquidated["collateralSeized"])  # type: ignore[call-overload]
    left = harness.loan(unhealthy_loan)
    debt_before = repaid + left["outstandingPrincipal"] + left["accruedInterest"]
    assert repaid >= 2_500 * USDC
    assert repaid * 2 <= debt_before  # the close factor: half the debt at most
    assert seized == collateral_for_debt_down(repaid, 10**8, USDC, 2_000 * 10**8, WETH, 500)
    with servicing_db.unit_of_work() as uow:
        (row,) = uow.session.scalars(select(LoanLiquidationRow)).all()
        assert (row.debt_repaid, row.collateral_seized) == (repaid, seized)
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == unhealthy_loan)).one()
        assert loan.collateral_amount == 3 * WETH - seized, "the ledger holds what the liquidator left"


async def test_underwater_loans_are_impaired_while_paused_then_liquidated_with_bad_debt_written_off(
    harness: Harness, unhealthy_loan: int, keepers: list[Keeper], servicing_db: Database
) -> None:
    harness.set_weth_price(3_000)
    loan_ref = _open_loan(harness, servicing_db)
    harness.set_weth_price(1_000)  # 3,000 USD of collateral against 5,000 of debt: under water

    harness.send(harness.manager.functions.pauseLiquidations(), GUARDIAN)
    paused = await keepers[0].run_round()
    assert {(sent.loan_ref, sent.action) for sent in paused.sent} == {(loan_ref, "impair"), (unhealthy_loan, "impair")}
    recoverable = 3_000 * USDC * 10_000 // 10_500  # all the collateral, less the bonus
    impairment = int(harness.pool.functions.impairmentOf(loan_ref).call())
    assert 0 <= impairment - (5_000 * USDC - recoverable) < USDC  # the expected loss (and a few seconds' interest)
    assert all(sent.action != "impair" for sent in (await keepers[0].run_round()).sent)  # not again: unchanged

    harness.govern(harness.manager, "unpauseLiquidations")
    report = await keepers[0].run_round()
    liquidated = {sent.loan_ref: sent.outcome for sent in report.sent if sent.action == "liquidate"}
    assert set(liquidated) == {loan_ref, unhealthy_loan}
    outcome = liquidated[loan_ref]
    assert outcome is not None
    assert outcome.collateral_seized == 3 * WETH
    (written_off,) = harness.manager.events.BadDebtRecorded().get_logs(
        from_block=0, argument_filters={"loanId": loan_ref}
    )
    assert 0 <= int(written_off["args"]["amount"]) - outcome.bad_debt < USDC  # a few seconds' interest more
    with servicing_db.unit_of_work() as uow:
        row = uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == loan_ref)).one()
        assert row.status == "written_off"
        assert row.collateral_amount == 0, "the liquidator seized it all"


async def test_a_liquidation_not_confirmed_in_time_does_not_stop_the_round(
    harness: Harness,
    keepers: list[Keeper],
    servicing_db: Database,
    own_chain: DeployedChain,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two liquidatable loans and blocks that stop coming (anvil's automine off): the first liquidation is not
    confirmed within the keeper's wait, and the round still goes on to the second (it used to end at the first). The
    next round sends neither again while they wait (it used to send a second liquidation of each). The round sends
    both before it waits, and waits for them together (it used to wait a receipt timeout per liquidation)."""
    harness.set_weth_price(3_000)
    refs = [_open_loan(harness, servicing_db) for _ in range(2)]
    harness.set_weth_price(2_000)  # health 0.99 each
    shared = keepers[0]
    impatient = Keeper(
        shared.client,
        own_chain.record,
        servicing_db,
        shared.transactions,
        holder="keeper-impatient",
        settings=KeeperSettings(receipt_timeout=2.0),
    )
    calls: list[str] = []  # the order the round submits its liquidations and waits for them
    submit, wait = shared.transactions.submit, shared.transactions.wait

    async def submitting(key: str, call: Any) -> Any:
        calls.append("submit")
        return await submit(key, call)

    async def waiting(key: str, within: float) -> Any:
        calls.append("wait")
        return await wait(key, within=within)

    monkeypatch.setattr(shared.transactions, "submit", submitting)
    monkeypatch.setattr(shared.transactions, "wait", waiting)
    _rpc(harness, "evm_setAutomine", [False])
    try:
        report = await impatient.run_round()
        round_calls = list(calls)
        # a block without the two liquidations: the base fee jumped above what they offer (they wait in the pool)
        _rpc(harness, "anvil_setNextBlockBaseFeePerGas", [hex(10**15)])
        _rpc(harness, "evm_mine", [])
        again = await impatient.run_round()
    finally:
        _rpc(harness, "anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
        _rpc(harness, "evm_setAutomine", [True])
        _rpc(harness, "evm_mine", [])
    assert all("did not complete" in report.skipped.get(ref, "") for ref in refs), report.skipped
    # both sent first, then waited for together: one receipt timeout, not one per liquidation
    assert round_calls == ["submit", "submit", "wait", "wait"], round_calls
    # the next round, at a new block, sends no second liquidation under that block's key while the first waits
    assert again.sent == []
    assert all("is not settled yet" in again.skipped.get(ref, "") for ref in refs), again.skipped


async def test_a_successor_that_missed_a_liquidation_in_flight_sends_no_second_one(
    harness: Harness, keepers: list[Keeper], servicing_db: Database, own_chain: DeployedChain
) -> None:
    """A keeper stalled past its lease between its fence and recording its liquidation; its successor's round read
    the open intents before that one was recorded. Keyed per block, the successor's liquidation of the same loan was
    another intent, and the loan was liquidated twice in one round (two close-factor slices); keyed per loan, it
    finds the first in flight and sends nothing. Once that one settled, the loan's next liquidation is the next
    number."""
    harness.set_weth_price(3_000)
    ref = _open_loan(harness, servicing_db)
    harness.set_weth_price(2_000)  # health 0.99
    shared = keepers[0]
    stalled, successor = (
        Keeper(
            shared.client,
            own_chain.record,
            servicing_db,
            shared.transactions,
            holder=holder,
            settings=KeeperSettings(receipt_timeout=1.0),
        )
        for holder in ("keeper-stalled", "keeper-successor")
    )

    async def read_before_the_stalled_one_recorded() -> dict[int, str]:
        return {}

    successor._liquidations_in_flight = read_before_the_stalled_one_recorded  # type: ignore[method-assign]
    _rpc(harness, "evm_setAutomine", [False])
    try:
        first = await stalled.run_round()
        # a block without the liquidation (the base fee jumped above what it offers): the successor reads a new block
        _rpc(harness, "anvil_setNextBlockBaseFeePerGas", [hex(10**15)])
        _rpc(harness, "evm_mine", [])
        second = await successor.run_round()
    finally:
        _rpc(harness, "anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
        _rpc(harness, "evm_setAutomine", [True])
        _rpc(harness, "evm_mine", [])
    assert "did not complete" in first.skipped.get(ref, ""), first.skipped
    assert [sent for sent in second.sent if sent.loan_ref == ref] == []
    assert "is not settled yet" in second.skipped.get(ref, ""), second.skipped
    first_key = liquidation_intent_key(own_chain.chain_id, successor.chain.manager, ref, 1)
    async with asyncio.timeout(30):
        while not await _settled(shared.transactions, first_key):  # noqa: ASYNC110 (an intent row, not an event)
            await asyncio.sleep(0.1)
    assert len(_liquidations(harness, ref)) == 1
    assert (await successor._liquidation_key(ref))[:2] == (
        liquidation_intent_key(own_chain.chain_id, successor.chain.manager, ref, 2),
        None,
    )
