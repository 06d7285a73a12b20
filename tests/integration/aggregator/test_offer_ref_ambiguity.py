"""A lender that gave one offer reference to the offers of two loans: its payment report naming that reference is
refused (409) naming why, on SQLite and PostgreSQL. Before, the store took whichever loan its query met first, so the
payment could be recorded on-chain against another borrower's loan while the payer's went into default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.assets import AssetRegistry
from aggregator.offchain_payments import OffchainPayments, PaymentNotRecordable
from aggregator.receipts import LedgerReceipts
from store.db import Database
from store.loan_ledger import apply_events
from store.loans import SqlLoanStore
from store.payments import SqlPaymentStore
from tests.support.databases import migrated
from tests.support.ledger_facts import AGGREGATOR, CHAIN, LoanFacts, add_quote

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated(request, tmp_path, "offer_ref_ambiguity") as db:
        yield db


def _loan_of_ref(database: Database, loan_ref: int, offer_ref: str) -> None:
    facts = LoanFacts(loan_ref)
    add_quote(
        database,
        borrower_address=facts.borrower,
        offer_digest=facts.digest,
        provider_id="sim-bank",
        chain_name=CHAIN.name,
        chain_id=CHAIN.chain_id,
        contract=AGGREGATOR,
        offer={"providerRef": offer_ref},
    )
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [facts.opened()])
        uow.commit()


async def test_a_payment_naming_an_offer_reference_of_two_loans_is_refused(database: Database) -> None:
    _loan_of_ref(database, 7_001, "product-A")
    _loan_of_ref(database, 7_002, "product-A")  # the lender reused its reference for another borrower's offer
    payments = OffchainPayments(
        SqlLoanStore(database), SqlPaymentStore(database), {}, AssetRegistry([]), LedgerReceipts(database)
    )
    with pytest.raises(PaymentNotRecordable) as refused:
        await payments.record("sim-bank", "product-A", "pay-1", "100.00")
    assert refused.value.status == 409
    assert "offer reference 'product-A' names more than one loan" in str(refused.value)

    _loan_of_ref(database, 7_003, "product-B")
    with SqlLoanStore(database).reading() as loans:
        found = loans.by_provider_ref("sim-bank", "product-B")
    assert found is not None
    assert found.onchain_loan_id == 7_003
