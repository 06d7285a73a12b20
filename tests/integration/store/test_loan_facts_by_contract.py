"""A loan's facts are its own contract's: loan #1 of another CreditAggregator on the same chain (a redeployment, both
deployments' facts kept) is another loan. The reconciler's records and a borrower's loans on file joined the facts by
chain and loan number only, so the other loan's later facts moved this one's newest fact: the reconciler judged the
loan changed after its run's last block and skipped comparing it (a mismatch went unreported), and the retention of
a closed loan's borrower started years late."""

from __future__ import annotations

from datetime import UTC, datetime

from store.aggregator import LoanRow
from store.api import BorrowerRow
from store.borrowers import SqlBorrowerRepository
from store.db import Database
from store.ledger import ChainFactRow
from store.reconcile import chain_records

CHAIN_ID = 31337
AGGREGATOR, MANAGER = "0x" + "Bb" * 20, "0x" + "Cc" * 20
OLD_AGGREGATOR = "0x" + "Aa" * 20
OPENED = datetime(2026, 1, 1, tzinfo=UTC)
CLOSED = datetime(2026, 1, 2, tzinfo=UTC)


def _fact(fact_id: int, address: str, event: str, block: int, at: datetime) -> ChainFactRow:
    return ChainFactRow(
        chain_id=CHAIN_ID,
        contract="CreditAggregator",
        address=address,
        event=event,
        args={"loanId": "1"},
        loan_ref=1,
        block_number=block,
        block_hash=f"0x{block:064x}",
        tx_hash=f"0x{fact_id:064x}",
        log_index=0,
        source="indexer",
        recorded_at=at,
    )


def _loan(loan_id: str, contract: str, borrower_id: str, status: str, digest: str) -> LoanRow:
    return LoanRow(
        id=loan_id,
        chain_name="ethereum-local",
        chain_id=CHAIN_ID,
        contract=contract,
        onchain_loan_id=1,
        status=status,
        asset=contract,
        principal=10**9,
        created_at=OPENED,
        offer_digest=digest,
        borrower_id=borrower_id,
        block_number=90,
    )


def test_a_loans_facts_are_its_own_aggregators(fresh: Database) -> None:
    fresh.migrate()
    with fresh.unit_of_work() as uow:
        for borrower in ("b1", "b2"):
            uow.session.add(
                BorrowerRow(id=borrower, wallet_address="0x" + borrower[1] * 40, jurisdiction="US", created_at=OPENED)
            )
        uow.session.flush()
        uow.session.add(_loan("new1", AGGREGATOR, "b1", "repaid", "0x" + "1" * 64))
        uow.session.add(_loan("old1", OLD_AGGREGATOR, "b2", "active", "0x" + "2" * 64))
        uow.session.add(_fact(1, AGGREGATOR, "LoanClosed", 100, CLOSED))
        uow.session.add(_fact(2, MANAGER.lower(), "CollateralRemoved", 101, CLOSED))  # its CollateralManager's: its own
        uow.session.add(_fact(3, OLD_AGGREGATOR, "LoanRepaid", 5000, datetime(2030, 6, 1, tzinfo=UTC)))
        uow.commit()
    with fresh.unit_of_work() as uow:
        (record,) = chain_records(uow.session, CHAIN_ID, AGGREGATOR.lower(), MANAGER).loans
        (on_file,) = SqlBorrowerRepository(uow.session).loans_on_file("b1")
    assert (record.loan_id, record.last_fact_block) == ("new1", 101)
    assert record.as_of(200), "compared with the chain at the run's last block"
    assert on_file.closed_at == CLOSED
