"""A traditional lender's payment reported after the loan went into default is recorded on-chain too: the operator's
own transaction manager sends ``recordOffchainRepayment`` once per payment reference (a second report is the same
transaction), and the ledger records it from the receipt with its reference; the loan stays in default while
something is owed."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from web3.logs import DISCARD

from aggregator.assets import Asset, AssetRegistry
from aggregator.ledger import SOURCE_RECEIPT, LedgerChain, receipt_decoder
from aggregator.offchain_payments import OffchainPayments, payment_ref_hash
from aggregator.platform import connect_chain
from aggregator.receipts import LedgerReceipts
from chain.signers import Role, devnet_signer
from store.aggregator import LoanRow
from store.chain import SqlChainStore
from store.db import Database
from store.ledger import LoanRepaymentRow
from store.loan_ledger import apply_events
from store.loans import SqlLoanStore
from store.payments import SqlPaymentStore
from tests.contracts.harness import BORROWERS, OPERATOR, RELAYER, USDC, Harness
from tests.support.devnet import DeployedChain
from tests.support.ledger_facts import add_quote

pytestmark = pytest.mark.integration

BORROWER = BORROWERS[2]
OFFER_REF = "sim-bank-late-0001"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'payments.db'}")
    db.migrate()
    yield db
    db.dispose()


def _quote(database: Database, h: Harness, digest: str) -> None:
    """Our quote of sim-bank's offer ``OFFER_REF`` (what the loan is found by)."""
    add_quote(
        database,
        borrower_address=BORROWER.address,
        offer_digest=digest,
        provider_id="sim-bank",
        chain_name=h.chain.name,
        chain_id=h.chain.chain_id,
        contract=h.aggregator.address,
        offer={"providerRef": OFFER_REF},
    )


def _apply(database: Database, h: Harness, receipt: Any) -> None:
    events = receipt_decoder(h.chain.record, h.w3.codec).decode_receipt(h.chain.chain_id, receipt)
    with database.unit_of_work() as uow:
        apply_events(uow.session, LedgerChain.from_record(h.chain.record), events, source=SOURCE_RECEIPT)
        uow.commit()


async def test_a_payment_after_default_is_recorded_once(ethereum_local: DeployedChain, database: Database) -> None:
    h = Harness(ethereum_local)
    h.approve_all(BORROWER.address)
    offer = h.offer(BORROWER.address, pool=False)
    _quote(database, h, "0x" + h.aggregator.functions.offerDigest(offer.as_abi_tuple()).call().hex())
    opened = h.send(h.aggregator.functions.openLoan(*h.open_args(offer, BORROWER.key)), RELAYER)
    _apply(database, h, opened)
    loan_ref = int(h.aggregator.events.LoanOpened().process_receipt(opened, errors=DISCARD)[0]["args"]["loanId"])
    h.advance(offer.term + int(h.aggregator.functions.gracePeriod().call()) + 1)
    _apply(database, h, h.send(h.aggregator.functions.markDefault(loan_ref), OPERATOR))

    runtime = await connect_chain(
        ethereum_local.config,
        ethereum_local.record,
        devnet_signer(Role.RELAYER),
        SqlChainStore(database.sessions),
        {Role.OPERATOR: devnet_signer(Role.OPERATOR)},
    )
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1), {ethereum_local.name: h.usdc.address})])
    try:
        payments = OffchainPayments(
            SqlLoanStore(database),
            SqlPaymentStore(database),
            {ethereum_local.name: runtime},
            assets,
            LedgerReceipts(database),
            wait_seconds=60,
        )
        first = await payments.record("sim-bank", OFFER_REF, "late-1", "100.00")
        again = await payments.record("sim-bank", OFFER_REF, "late-1", "100.00")
    finally:
        await runtime.close()
    assert first.status == again.status == "confirmed"
    assert first.tx_hash == again.tx_hash, "one recordOffchainRepayment per payment reference"
    assert first.interest_paid + first.principal_paid == 100 * USDC
    with database.unit_of_work() as uow:
        loan = uow.session.scalars(select(LoanRow).where(LoanRow.onchain_loan_id == loan_ref)).one()
        repayments = list(uow.session.scalars(select(LoanRepaymentRow).where(LoanRepaymentRow.loan_id == loan.id)))
        assert loan.status == "defaulted"
    assert [(r.payer, r.payment_ref) for r in repayments] == [
        (OPERATOR.address, "0x" + payment_ref_hash("sim-bank", "late-1").hex())
    ]
    assert h.loan(loan_ref)["status"] == 3, "still in default: the rest is owed"
