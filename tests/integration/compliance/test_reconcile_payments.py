"""Off-chain repayments reconciled by reference against the lenders' payment records, on a real devnet and
PostgreSQL: two traditional loans, payments reported through ``OffchainPayments`` (what the ``payment.received``
webhook calls) — one matched, one larger than owed that closes its loan (matched: the contract applies what is
owed), one whose record was altered afterwards (amount mismatch) — a ``recordOffchainRepayment`` the operator's key
sent with no lender report (on-chain but not recorded) and a payment record whose transaction the chain does not
have (recorded but not on-chain). And an amortizing loan paid as its schedule says, whose last payment is recorded as
what the chain still owed, so the loan closes, and is matched."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from aggregator.assets import Asset, AssetRegistry
from aggregator.offchain_payments import OffchainPayments, payment_ref_hash
from aggregator.payment_records import RECORDED, ReportedPayment
from aggregator.platform import ChainRuntime, connect_chain
from aggregator.receipts import LedgerReceipts
from chain.signers import Role, devnet_signer
from compliance.reconcile import Category
from store.chain import SqlChainStore
from store.db import Database
from store.loans import SqlLoanStore
from store.payments import OffchainPaymentRow, SqlPaymentRecords, SqlPaymentStore
from tests.contracts.harness import OPERATOR, USDC, WETH
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = pytest.mark.integration

LENDER = "sim-bank"
DAY = 86_400


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_pay_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def _operator_runtime(chain: DeployedChain, database: Database) -> ChainRuntime:
    """The chain as the platform connects it, with the operator's own transaction manager."""
    return await connect_chain(
        chain.config,
        chain.record,
        devnet_signer(Role.RELAYER),
        SqlChainStore(database.sessions),
        {Role.OPERATOR: devnet_signer(Role.OPERATOR)},
    )


def _payments(chain: DeployedChain, database: Database, runtime: ChainRuntime, maker: LoanMaker) -> OffchainPayments:
    """What the payment.received webhook calls, on ``runtime`` and the database."""
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1), {chain.name: maker.h.usdc.address})])
    stores = SqlLoanStore(database), SqlPaymentStore(database)
    return OffchainPayments(*stores, {chain.name: runtime}, assets, LedgerReceipts(database), wait_seconds=60)


async def test_offchain_repayments_are_matched_by_reference_with_the_lenders_payment_records(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    closed, open_ = (maker.open(n, lender=(LENDER, f"offer-{n}")) for n in range(2))
    await index(chain, database, start)

    runtime = await _operator_runtime(chain, database)
    try:
        payments = _payments(chain, database, runtime, maker)
        matched = await payments.record(LENDER, "offer-0", "pay-1", "2.00", event_id="evt-1")
        overpaid = await payments.record(LENDER, "offer-0", "pay-2", "50.00", event_id="evt-2")
        altered = await payments.record(LENDER, "offer-1", "pay-3", "3.00", event_id="evt-3")
    finally:
        await runtime.close()
    assert overpaid.closed
    assert not altered.closed
    with database.unit_of_work() as uow:
        rows = {row.payment_ref: row for row in uow.session.scalars(select(OffchainPaymentRow))}
        assert {ref: (row.status, row.amount, row.tx_hash, row.event_id) for ref, row in rows.items()} == {
            "pay-1": (RECORDED, 2 * USDC, matched.tx_hash, "evt-1"),
            "pay-2": (RECORDED, 50 * USDC, overpaid.tx_hash, "evt-2"),
            "pay-3": (RECORDED, 3 * USDC, altered.tx_hash, "evt-3"),
        }
        uow.session.execute(
            update(OffchainPaymentRow).where(OffchainPaymentRow.payment_ref == "pay-3").values(amount=4 * USDC)
        )
        never = "0x" + payment_ref_hash(LENDER, "pay-never-sent").hex()
        SqlPaymentRecords(uow.session).accept(
            ReportedPayment(
                LENDER,
                "pay-never-sent",
                never,
                open_.loan_id,
                chain.chain_id,
                chain.record.address("CreditAggregator"),
                open_.onchain_id,
                1 * USDC,
                status=RECORDED,
                tx_hash="0x" + "ab" * 32,
                block_number=start + 1,
            )
        )
        uow.commit()
    # the operator's key used with a reference no lender reported
    unreported = maker.h.send(
        maker.h.aggregator.functions.recordOffchainRepayment(
            open_.onchain_id, 1 * USDC, payment_ref_hash(LENDER, "pay-nobody-reported")
        ),
        OPERATOR,
    )
    await index(chain, database, start)

    result = await reconciled(chain, database, start)
    found = sorted((i.category.value, i.subject, i.tx_hash, i.record_ref, i.detail) for i in result.items)
    subject = f"loan #{open_.onchain_id}"
    assert [row[:4] for row in found] == sorted(
        [
            (Category.AMOUNT_MISMATCH.value, subject, altered.tx_hash, open_.loan_id),
            (Category.ONCHAIN_NOT_RECORDED.value, subject, unreported["transactionHash"].to_0x_hex(), None),
            (Category.RECORDED_NOT_ONCHAIN.value, subject, None, open_.loan_id),
        ]
    ), found
    details = {row[0]: row[4] for row in found}
    assert details[Category.AMOUNT_MISMATCH.value] == f"amount: reported {4 * USDC}, recorded on-chain {3 * USDC}"
    assert "no lender payment record" in details[Category.ONCHAIN_NOT_RECORDED.value]
    assert never in details[Category.RECORDED_NOT_ONCHAIN.value]
    assert closed.loan_id not in {row[3] for row in found}  # its two payments matched, the overpayment included


# Two monthly installments of 1,000 USDC at 12% (a month's interest counted 30/360): 1,015.00 in all.
SCHEDULE = {
    "assetDecimals": 6,
    "totalOfPayments": "1015.00",
    "payments": [
        {"number": 1, "due": "2027-01-31", "amount": "510.00", "principal": "500.00", "interest": "10.00"},
        {"number": 2, "due": "2027-03-02", "amount": "505.00", "principal": "500.00", "interest": "5.00"},
    ],
}


async def test_the_last_scheduled_payment_closes_the_loan_though_the_chain_accrued_more(
    database: Database, ethereum_local: DeployedChain
) -> None:
    """Each installment is reported 31 days after the one before: the chain's per-second interest over the longer
    months comes to about 0.29 more than the schedule's, which the last payment (505.00) would leave owed for ever,
    and the default job would mark the loan in default after maturity. It is sent as what the loan owed, the loan
    closes, and the reconciler matches the larger amount applied with the payment's record."""
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loan = maker.open(
        3,
        lender=(LENDER, "offer-scheduled"),
        principal=1_000 * USDC,
        disclosure=SCHEDULE,
        rateBps=1_200,
        term=62 * DAY,
        collateralAmount=WETH,
    )
    runtime = await _operator_runtime(chain, database)
    try:
        await index(chain, database, start)
        payments = _payments(chain, database, runtime, maker)
        maker.h.advance(31 * DAY)
        first = await payments.record(LENDER, "offer-scheduled", "inst-1", "510.00")
        maker.h.advance(31 * DAY)
        owed = sum(maker.h.aggregator.functions.amountOwed(loan.onchain_id).call())
        last = await payments.record(LENDER, "offer-scheduled", "inst-2", "505.00")
    finally:
        await runtime.close()
    assert owed > 505 * USDC, "the chain accrued more than the schedule's interest"
    assert not first.closed
    assert last.closed, "paid as scheduled, the loan closes"
    assert last.interest_paid + last.principal_paid > 505 * USDC
    assert maker.h.loan(loan.onchain_id)["outstandingPrincipal"] == 0
    with database.unit_of_work() as uow:
        row = uow.session.scalars(select(OffchainPaymentRow).where(OffchainPaymentRow.payment_ref == "inst-2")).one()
        assert (row.amount, row.status) == (505 * USDC, RECORDED)
        assert row.recorded_amount is not None
        assert row.recorded_amount >= last.interest_paid + last.principal_paid

    await index(chain, database, start)
    assert [i for i in (await reconciled(chain, database, start)).items if i.record_ref == loan.loan_id] == []
