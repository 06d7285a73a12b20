"""A traditional lender's ``payment.received`` through the real webhook (the providers router in-process, the signed
body verified with the lender's secret) recorded by the operator on a real devnet, with the payments kept in SQLite:
the disclosed total of payments closes the loan when it was paid by its due date as the lender dates it, and paid
180 days late it is recorded as reported, leaving the interest that went on accruing owed and the collateral held; a
payment the node does not take for now (the operator's account out of gas) is kept, answered 503, and recorded when
reported again."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from web3.logs import DISCARD

from aggregator.assets import Asset, AssetRegistry
from aggregator.platform import ChainRuntime, connect_chain
from api import problems
from api.routers import providers as providers_router
from api.settings import Settings
from chain.signers import Role, devnet_signer
from providers.policy import ResiliencePolicy
from providers.signing import signed_headers
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from store.payments import OffchainPaymentRow
from tests.contracts.harness import BORROWERS, OPERATOR, RELAYER, USDC, Harness
from tests.integration.aggregator.test_offchain_payments import _apply
from tests.integration.providers.support import SECRET, http_registry
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]  # the fixture's loop

BORROWER = BORROWERS[2]
LENDER = "sim-bank"
PRINCIPAL = 1_500 * USDC
#: 1,500 USDC at 9% for 30 days, one payment: principal plus 30 days' interest on an actual/365 count
TOTAL = "1511.095891"
ACTIVE, REPAID = 1, 2  # the contract's LoanStatus


@dataclass
class Lent:
    """A loan opened from the lender's offer ``offer_ref``, due on ``due`` (its single disclosed payment)."""

    h: Harness
    database: Database
    api: httpx.AsyncClient
    offer_ref: str
    loan_ref: int
    due: datetime


@pytest.fixture
async def lent(ethereum_local: DeployedChain, tmp_path: Path) -> AsyncIterator[Lent]:
    database = Database(f"sqlite:///{tmp_path / 'payments.db'}")
    database.migrate()
    h = Harness(ethereum_local)
    h.approve_all(BORROWER.address)
    offer = h.offer(BORROWER.address, pool=False)
    due = datetime.fromtimestamp(h.now(), UTC) + timedelta(days=30)
    disclosure = {
        "assetDecimals": 6,
        "termDays": 30,
        "totalOfPayments": TOTAL,
        "payments": [
            {"number": 1, "due": due.date().isoformat(), "amount": TOTAL, "principal": "1500", "interest": "11.095891"}
        ],
    }
    offer_ref = f"ref-{tmp_path.name}"
    add_quote(
        database,
        borrower_address=BORROWER.address,
        offer_digest="0x" + h.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex(),
        provider_id=LENDER,
        chain_name=h.chain.name,
        chain_id=h.chain.chain_id,
        contract=h.aggregator.address,
        offer={"providerRef": offer_ref},
        disclosure=disclosure,
    )
    opened = h.send(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    _apply(database, h, opened)
    loan_ref = int(h.aggregator.events.LoanOpened().process_receipt(opened, errors=DISCARD)[0]["args"]["loanId"])
    runtime: ChainRuntime = await connect_chain(
        ethereum_local.config,
        ethereum_local.record,
        devnet_signer(Role.RELAYER),
        SqlChainStore(database.sessions),
        {Role.OPERATOR: devnet_signer(Role.OPERATOR)},
    )
    async with httpx.AsyncClient() as http:
        registry = await http_registry("http://127.0.0.1:9", [LENDER], http, ResiliencePolicy())
        app = FastAPI()
        problems.install(app)
        app.include_router(providers_router.router)
        app.state.platform = SimpleNamespace(
            providers=registry,
            database=database,
            settings=Settings(accept_wait_seconds=60),
            assets=AssetRegistry([Asset("USDC", 6, Decimal(1), {ethereum_local.name: h.usdc.address})]),
            chains={ethereum_local.name: runtime},
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as api:
            try:
                yield Lent(h, database, api, offer_ref, loan_ref, due)
            finally:
                await runtime.close()
                database.dispose()


async def _report(lent: Lent, event_id: str, payment_ref: str, amount: str, occurred_at: datetime) -> httpx.Response:
    """The lender's signed ``payment.received`` of ``amount``, made (by its books) at ``occurred_at``."""
    event = {
        "protocol_version": "1",
        "event_id": event_id,
        "type": "payment.received",
        "offer_ref": lent.offer_ref,
        "payment_ref": payment_ref,
        "amount": amount,
        "occurred_at": occurred_at.isoformat(),
    }
    body = json.dumps(event).encode()
    headers = signed_headers(SECRET, int(time.time()), body) | {"content-type": "application/json"}
    return await lent.api.post(f"/v1/providers/{LENDER}/webhooks", content=body, headers=headers)


def _kept(lent: Lent) -> list[tuple[int, int | None, str]]:
    with lent.database.unit_of_work() as uow:
        rows = uow.session.scalars(select(OffchainPaymentRow).order_by(OffchainPaymentRow.id))
        return [(int(r.amount), None if r.recorded_amount is None else int(r.recorded_amount), r.status) for r in rows]


def _ledger_status(lent: Lent) -> str:
    with lent.database.unit_of_work() as uow:
        return uow.session.scalars(select(LoanRow.status).where(LoanRow.onchain_loan_id == lent.loan_ref)).one()


def _collateral_back(lent: Lent) -> int:
    return int(lent.h.weth.functions.balanceOf(BORROWER.address).call())


async def test_the_disclosed_total_paid_180_days_late_is_recorded_as_reported(lent: Lent) -> None:
    """The disclosure promises no late charge, interest accruing on what is unpaid: 1,500 USDC at 9% owes 1566.58 on
    the chain 180 days after opening. Before, the lender's 1511.095891 was sent as 1566.96 (what was owed plus a
    day), the loan closed, its collateral went back and 55.48 USDC of interest was recorded as repaid."""
    h = lent.h
    held = _collateral_back(lent)
    h.advance(180 * 86_400)
    principal, interest = h.aggregator.functions.amountOwed(lent.loan_ref).call()
    assert principal + interest > 1_566 * USDC

    answer = await _report(lent, "evt-late", "pay-1", TOTAL, datetime.fromtimestamp(h.now(), UTC))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "confirmed"

    assert _kept(lent) == [(1_511_095_891, None, "recorded")], "sent as the lender reported it"
    assert h.loan(lent.loan_ref)["status"] == ACTIVE, "the late interest is still owed"
    left = sum(h.aggregator.functions.amountOwed(lent.loan_ref).call())
    assert 55 * USDC < left < 56 * USDC, left
    assert _ledger_status(lent) == "active"
    assert _collateral_back(lent) == held, "the collateral stays held"


async def test_the_disclosed_total_paid_on_its_due_date_closes_the_loan(lent: Lent) -> None:
    """Paid on its due date by the lender's books (the webhook's ``occurred_at``) and reported two days later: paid
    as disclosed, so it is sent as what the chain owes and the loan closes whatever the per-second arithmetic
    left."""
    h = lent.h
    held = _collateral_back(lent)
    h.advance(32 * 86_400)
    paid = lent.due.replace(hour=23, minute=59, second=0)

    answer = await _report(lent, "evt-on-time", "pay-1", TOTAL, paid)
    assert answer.status_code == 202, answer.text

    [(amount, recorded, status)] = _kept(lent)
    assert (amount, status) == (1_511_095_891, "recorded")
    assert recorded is not None
    assert recorded > amount, "sent as what the loan owed on-chain"
    assert h.loan(lent.loan_ref)["status"] == REPAID
    assert _ledger_status(lent) == "repaid"
    assert _collateral_back(lent) > held


async def test_a_payment_the_operator_could_not_pay_gas_for_is_recorded_when_reported_again(lent: Lent) -> None:
    """The operator's account out of gas: the node refuses its transaction. Before, the payment was refused for
    good (409, its intent failed under a key that never changes), and the lender's retry got the same 409 for ever
    while the borrower's payment was never recorded. Now: 503 with Retry-After, the payment kept, and the retry,
    once the account is topped up, recorded under the next attempt."""
    h, w3 = lent.h, lent.h.w3
    balance = w3.eth.get_balance(OPERATOR.address)
    w3.provider.make_request("anvil_setBalance", [OPERATOR.address, "0x0"])  # type: ignore[arg-type]
    try:
        refused = await _report(lent, "evt-1", "pay-1", "100.00", datetime.now(UTC))
    finally:
        w3.provider.make_request("anvil_setBalance", [OPERATOR.address, hex(balance)])  # type: ignore[arg-type]
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == str(problems.SERVICE_RETRY_AFTER_SECONDS)
    assert refused.json()["type"].endswith("/payment-not-sent")
    assert _kept(lent) == [(100 * USDC, None, "accepted")], "kept, to be sent again"
    assert h.loan(lent.loan_ref)["outstandingPrincipal"] == PRINCIPAL

    again = await _report(lent, "evt-1", "pay-1", "100.00", datetime.now(UTC))  # the same event, sent again
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "confirmed"
    assert _kept(lent) == [(100 * USDC, None, "recorded")]
    principal, _ = h.aggregator.functions.amountOwed(lent.loan_ref).call()
    assert PRINCIPAL - 100 * USDC <= principal < PRINCIPAL, "recorded: interest first, then principal"
    assert h.loan(lent.loan_ref)["status"] == ACTIVE
