"""The loan terms of ``LoanOpened`` against our records, on a real devnet and PostgreSQL: loans opened through the
relayer with our quote (its signed offer stored as the quote signer signs it) and the ledger built by the indexer's
path; then the ledger's rate of one loan and the quote's borrower of another are altered, and a run reports each
as its own category, naming the field — read through ``store.reconcile`` (the loan row and the quote's offer)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import update

from compliance.reconcile import Category
from store.aggregator import LoanRow, QuoteRow
from store.db import Database
from tests.contracts.harness import BORROWERS
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index, reconciled

pytestmark = pytest.mark.integration

STRANGER = "0x" + "5e" * 20  # an address none of the borrowers has


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_terms_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_rate_or_borrower_other_than_the_chains_is_reported_by_field(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    rate, term = 900, 45 * 86_400
    loans = [maker.open(n, rateBps=rate, term=term) for n in range(3)]
    await index(chain, database, start)
    borrowers = [BORROWERS[n % len(BORROWERS)].address for n in range(3)]
    with database.unit_of_work() as uow:
        for loan, borrower in zip(loans, borrowers, strict=True):  # the quote's offer as our quote signer signs it
            offer = {"borrower": borrower, "rateBps": rate, "term": term}
            uow.session.execute(update(QuoteRow).where(QuoteRow.offer_digest == loan.offer_digest).values(offer=offer))
        uow.session.execute(update(LoanRow).where(LoanRow.id == loans[1].loan_id).values(rate_bps=rate - 100))
        altered = {"borrower": STRANGER, "rateBps": rate, "term": term}
        uow.session.execute(
            update(QuoteRow).where(QuoteRow.offer_digest == loans[2].offer_digest).values(offer=altered)
        )
        uow.commit()

    result = await reconciled(chain, database, start)

    found = sorted((item.category.value, item.record_ref, item.detail) for item in result.items)
    assert found == [
        (
            Category.BORROWER_MISMATCH.value,
            loans[2].loan_id,
            f"borrower: our accepted offer (quote {_quote(database, loans[2].loan_id)}) has {STRANGER}, "
            f"on-chain {borrowers[2]}",
        ),
        (Category.RATE_MISMATCH.value, loans[1].loan_id, f"rate: recorded {rate - 100} bps, on-chain {rate} bps"),
    ]
    assert loans[0].loan_id not in {item.record_ref for item in result.items}  # as recorded and as offered


def _quote(database: Database, loan_id: str) -> str | None:
    with database.unit_of_work() as uow:
        row = uow.session.get(LoanRow, loan_id)
        return None if row is None else row.quote_id
