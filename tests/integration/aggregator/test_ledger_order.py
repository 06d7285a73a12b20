"""Facts that reach a loan out of chain order, on anvil with the real contracts, the real ``ChainIndexer`` and
``apply_receipt``, on PostgreSQL and SQLite: a receipt applied at once, then the indexer's confirmed events of
earlier blocks no receipt recorded (the operator's ``markDefault`` whose receipt was not applied, the borrower's own
repayment from its wallet) — or a ``markDefault`` receipt applied after a repayment's. The loan ends as the chain has
it and its lender hears no ``loan.defaulted`` after ``loan.closed``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from web3.logs import DISCARD

from aggregator.receipts import apply_receipt
from chain.client import ChainClient
from store.aggregator import LoanRow
from store.db import Database
from store.ledger import ChainFactRow, LoanRepaymentRow
from store.outbox import OutboxEventRow
from tests.contracts.harness import BORROWERS, OPERATOR, USDC, WETH, Harness
from tests.integration.aggregator.test_ledger import _leading, _open
from tests.integration.aggregator.test_ledger import client as client  # the fixture
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

BORROWER = BORROWERS[1]
CLOSED, DEFAULTED = 2, 3  # the CreditAggregator's LoanStatus.Repaid and .Defaulted


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        db = Database(request.getfixturevalue("postgres_schema")(f"ledger_order_{uuid.uuid4().hex[:8]}"))
    else:
        db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    db.migrate()
    yield db
    db.dispose()


def _loan(database: Database, ref: int) -> LoanRow:
    with database.unit_of_work() as uow:
        return uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == ref)).one()


def _told(database: Database, loan_id: str) -> list[str]:
    """The loan's outbox events, in its order."""
    with database.unit_of_work() as uow:
        rows = uow.session.scalars(
            select(OutboxEventRow).where(OutboxEventRow.loan_id == loan_id).order_by(OutboxEventRow.sequence)
        )
        return [row.event_type for row in rows]


def _repayments(database: Database, loan_id: str) -> list[tuple[int, int]]:
    """(principal paid, outstanding after) of the loan's repayment entries, in chain order."""
    with database.unit_of_work() as uow:
        rows = uow.session.execute(
            select(LoanRepaymentRow.principal_paid, LoanRepaymentRow.outstanding_principal)
            .join(ChainFactRow, ChainFactRow.id == LoanRepaymentRow.fact_id)
            .where(LoanRepaymentRow.loan_id == loan_id)
            .order_by(ChainFactRow.block_number, ChainFactRow.log_index)
        )
        return [(int(paid), int(left)) for paid, left in rows]


def _tx(receipt: Any) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _repaid(h: Harness, receipt: Any) -> tuple[int, int]:
    """(principal paid, outstanding after) of the receipt's ``LoanRepaid`` (interest accrues by the second)."""
    (event,) = h.aggregator.events.LoanRepaid().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["principalPaid"]), int(event["args"]["outstandingPrincipal"])


def _two_loans(h: Harness) -> tuple[int, int]:
    h.fund(BORROWER.address, usdc=10_000 * USDC, weth=4 * WETH)
    h.approve_all(BORROWER.address)
    terms: dict[str, Any] = {"principal": 2_000 * USDC, "originationFee": 0}
    terms["rateBps"] = max(900, h.min_rate(2_000 * USDC))
    first, _ = _open(h, h.offer(BORROWER.address, **terms))
    second, _ = _open(h, h.offer(BORROWER.address, **terms))
    return first, second


async def test_the_indexers_earlier_facts_after_a_repayments_receipt_leave_the_loans_as_the_chain_has_them(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    h, record = Harness(ethereum_local), ethereum_local.record
    defaulted, repaid_own = _two_loans(h)
    indexer = await _leading(client, record, database)
    await indexer.poll()

    # repaid_own: the borrower pays 500 USDC from its wallet (only the indexer hears of it), then closes through us
    own = h.send(h.aggregator.functions.repay(repaid_own, 500 * USDC), BORROWER.address)
    closing = h.send(h.aggregator.functions.close(repaid_own), BORROWER.address)
    repayments = [_repaid(h, own), _repaid(h, closing)]
    await apply_receipt(database, client.w3, record, client.config.chain_id, _tx(closing))
    # defaulted: marked in default (its receipt not applied: the default job's wait ran out), then repaid in full
    h.advance(38 * 86_400)
    h.send(h.aggregator.functions.markDefault(defaulted), OPERATOR)
    closing = h.send(h.aggregator.functions.close(defaulted), BORROWER.address)
    await apply_receipt(database, client.w3, record, client.config.chain_id, _tx(closing))
    assert _loan(database, defaulted).status == "repaid"

    h.advance(1)
    await indexer.poll()
    for ref in (defaulted, repaid_own):
        loan = _loan(database, ref)
        assert h.loan(ref)["status"] == CLOSED
        assert (loan.status, loan.outstanding_principal, loan.principal_paid) == ("repaid", 0, 2_000 * USDC)
        assert loan.closed_tx_hash is not None
    loan = _loan(database, defaulted)
    assert _told(database, loan.id) == ["loan.opened", "loan.repayment", "loan.closed"], "no default after closing"
    assert loan.interest_paid is not None
    assert loan.interest_paid > 0
    loan = _loan(database, repaid_own)
    assert _repayments(database, loan.id) == repayments
    assert repayments[0][1] > 0, "the late repayment's own outstanding principal was not the loan's last word"
    assert _told(database, loan.id) == ["loan.opened", "loan.repayment", "loan.closed", "loan.repayment"]
    assert await indexer.poll() == 0


async def test_a_default_receipt_applied_after_a_repayments_receipt_is_applied_in_chain_order(
    ethereum_local: DeployedChain, client: ChainClient, database: Database
) -> None:
    """The default job resumes its ``markDefault`` after the receipt of a later repayment was applied: a loan
    repaid in part stays in default with what the repayment left; one repaid in full stays repaid, unannounced."""
    h, record = Harness(ethereum_local), ethereum_local.record
    partly, fully = _two_loans(h)
    indexer = await _leading(client, record, database)
    await indexer.poll()
    h.advance(38 * 86_400)
    defaults = {ref: h.send(h.aggregator.functions.markDefault(ref), OPERATOR) for ref in (partly, fully)}
    part = h.send(h.aggregator.functions.repay(partly, 500 * USDC), BORROWER.address)
    full = h.send(h.aggregator.functions.close(fully), BORROWER.address)
    for receipt in (part, full, defaults[partly], defaults[fully]):
        await apply_receipt(database, client.w3, record, client.config.chain_id, _tx(receipt))

    loan = _loan(database, partly)
    onchain = h.loan(partly)
    _, left = _repaid(h, part)
    assert (onchain["status"], onchain["outstandingPrincipal"]) == (DEFAULTED, left)
    assert left < 2_000 * USDC, "below what the default names outstanding"
    assert (loan.status, loan.outstanding_principal) == ("defaulted", left)
    assert _told(database, loan.id) == ["loan.opened", "loan.repayment", "loan.defaulted"], "true of it now"
    loan = _loan(database, fully)
    assert (loan.status, loan.outstanding_principal, loan.principal_paid) == ("repaid", 0, 2_000 * USDC)
    assert _told(database, loan.id) == ["loan.opened", "loan.repayment", "loan.closed"]

    h.advance(1)
    await indexer.poll()  # the same facts confirmed: nothing changes
    assert (_loan(database, partly).status, _loan(database, fully).status) == ("defaulted", "repaid")
    assert _told(database, loan.id) == ["loan.opened", "loan.repayment", "loan.closed"]
