"""The ledger's open loans of each CreditAggregator other than the one a chain's deployment record names
(``SqlLoanStore.open_loans_of_other_contracts``), on SQLite and PostgreSQL: earlier deployments whose addresses sort
before and after the served one's, only the statuses servicing takes as open, only the chain asked about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import insert

from store.aggregator import LoanRow
from store.db import Database
from store.loans import SqlLoanStore

SERVED = "0x5555555555555555555555555555555555555555"
BEFORE = "0x1111111111111111111111111111111111111111"
AFTER = "0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa"


def _loans(database: Database, chain_id: int, contract: str, *statuses: str) -> None:
    rows = [
        {
            "id": str(uuid.uuid4()),
            "chain_name": "ethereum-local",
            "chain_id": chain_id,
            "contract": contract,
            "onchain_loan_id": number,
            "status": status,
            "asset": "USDC",
            "principal": 10**9,
            "created_at": datetime.now(UTC),
            "offer_digest": "0x" + uuid.uuid4().hex * 2,
        }
        for number, status in enumerate(statuses, start=1)
    ]
    with database.unit_of_work() as uow:
        uow.session.execute(insert(LoanRow), rows)
        uow.commit()


def test_the_open_loans_of_every_other_aggregator_of_the_chain_are_counted(fresh: Database) -> None:
    fresh.migrate()
    _loans(fresh, 31337, SERVED, "active", "defaulted", "active")
    _loans(fresh, 31337, BEFORE, "active", "repaid", "liquidated", "written_off", "cancelled", "defaulted")
    _loans(fresh, 31337, AFTER, "defaulted")
    _loans(fresh, 31338, BEFORE, "active", "active")  # another chain's
    store = SqlLoanStore(fresh)

    assert store.open_loans_of_other_contracts(31337, SERVED) == {BEFORE: 2, AFTER: 1}
    assert store.open_loans_of_other_contracts(31337, BEFORE) == {SERVED: 3, AFTER: 1}
    assert store.open_loans_of_other_contracts(31338, BEFORE) == {}
    assert store.open_loans_of_other_contracts(31339, SERVED) == {}
    # a record naming no CreditAggregator services no loan of its chain
    assert store.open_loans_of_other_contracts(31337, "") == {BEFORE: 2, SERVED: 3, AFTER: 1}
