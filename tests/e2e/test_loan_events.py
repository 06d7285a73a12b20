"""Loan events over real HTTP with the outbox relay in the API process (``CREDITMESH_WORKERS=indexer,outbox``, the
platform shared with the accept saga's tests): a borrower sets its webhook through the API and gets ``loan.opened``
for the loan it accepts; its receiver fails while a repayment is made, the API process is killed (SIGKILL) with
that event written but not delivered, and after the restart the receiver gets it, then the closing repayment and
``loan.closed`` — every event once by id, in the loan's order, each signed with the secret the API gave."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.wallet import accept_quote, repay_loan
from chain.devnet import free_port
from chain.signers import devnet_account
from store.db import Database
from store.outbox import OutboxDeliveryRow, OutboxEventRow
from tests.support.accepting import credit_request
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform
from tests.support.receiver import EventReceiver, Received
from tests.support.saga import disarmed

#: a platform restart and three relayed transactions: ~35 s on a quiet machine, minutes on a loaded one; the default
#: run covers a killed relay with tests/integration/aggregator/test_relay.py (``make slow`` runs this one)
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEPLOYER = devnet_account(0)
CHAIN = "ethereum-local"


def _mint(chain: DeployedChain, token: str, to: str, amount: int) -> None:
    tx_hash = chain.contract(token).functions.mint(to, amount).transact({"from": DEPLOYER.address})
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def _wait(condition: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _types(receiver: EventReceiver, loan_id: str) -> list[str]:
    seen: dict[str, Received] = {}
    for event in receiver.events():
        if event.loan_id == loan_id:
            seen.setdefault(event.event_id, event)
    return [event.type for event in sorted(seen.values(), key=lambda e: e.sequence)]


def _tried(database: Database, loan_id: str, event_type: str) -> bool:
    with database.unit_of_work() as uow:
        attempts = uow.session.scalar(
            sa.select(sa.func.max(OutboxDeliveryRow.attempts))
            .join(OutboxEventRow, OutboxEventRow.id == OutboxDeliveryRow.event_id)
            .where(OutboxEventRow.loan_id == loan_id, OutboxEventRow.event_type == event_type)
        )
    return bool(attempts)


def test_a_borrower_hears_of_its_loan_also_across_an_api_killed_before_delivery(
    ledger_platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    platform = ledger_platform
    disarmed(platform)
    chain = devnet_chains[CHAIN]
    rpc = chain.devnet.rpc_url
    wallet: LocalAccount = Account.create()
    _mint(chain, "WETH", wallet.address, 10**18)
    _mint(chain, "USDC", wallet.address, 50 * 10**6)
    key = platform.onboard(wallet.address)
    port = free_port()
    with platform.client(key) as client:
        answer = client.put("/v1/borrowers/me/webhook", json={"url": f"http://127.0.0.1:{port}/events"})
        assert answer.status_code == 200, answer.text
        receiver = EventReceiver(answer.json()["secret"], port).start()
        response = client.post("/v1/credit-requests", json=credit_request(CHAIN))
        assert response.status_code == 201, response.text
        quote = next(q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == CHAIN)
    database = Database(platform.database_url)
    try:
        loan_id = str(accept_quote(wallet, platform.api_url, key, quote["id"], rpc)["id"])
        _wait(lambda: _types(receiver, loan_id) == ["loan.opened"])
        opened = receiver.events()[0].body
        assert opened["loan"]["borrower_address"] == wallet.address
        assert opened["loan"]["principal"] == "1000000000"

        receiver.failing_with = 503
        partial = repay_loan(wallet, platform.api_url, key, loan_id, "100.00", rpc)
        assert partial["status"] == "confirmed"
        _wait(lambda: _tried(database, loan_id, "loan.repayment"))
        assert platform.api is not None
        platform.api.send_signal(signal.SIGKILL)
        assert platform.wait_api_exit() == -signal.SIGKILL

        receiver.failing_with = None
        platform.restart_api()
        _wait(lambda: _types(receiver, loan_id) == ["loan.opened", "loan.repayment"])
        closed = repay_loan(wallet, platform.api_url, key, loan_id, "max", rpc)
        assert closed["closed"] is True
        _wait(lambda: _types(receiver, loan_id)[-1:] == ["loan.closed"])
    finally:
        receiver.stop()
        database.dispose()

    assert _types(receiver, loan_id) == ["loan.opened", "loan.repayment", "loan.repayment", "loan.closed"]
    sequences = [e.sequence for e in receiver.events() if e.loan_id == loan_id]
    assert sequences == sorted(sequences), "in the loan's order (a repeat only ever repeats the one before)"
    assert receiver.refused == []
    assert receiver.events()[-1].body["data"]["outcome"] == "repaid"
