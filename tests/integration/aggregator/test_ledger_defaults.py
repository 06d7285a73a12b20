"""What the ledger says of a wallet's defaults on chains whose history could not be read now
(``QuotingRepository.ledger_defaults``), on real PostgreSQL and SQLite: a loan the ledger shows in default or
written off counts, and so does one marked in default and repaid since (its ``LoanDefaulted`` fact), as the chain's
own history counts it; another wallet's, another chain's, and a loan repaid without default do not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from store.aggregator import LoanRow
from store.db import Database
from store.ledger import ChainFactRow
from store.loans import loan_columns
from store.quoting import SqlQuotingStore
from tests.support.relay_fakes import AGGREGATOR, CHAIN_ID, LOAN

pytestmark = pytest.mark.integration

WALLET = "0x" + "Be" * 20
OTHER_WALLET = "0x" + "cd" * 20


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if request.param == "postgresql":
        database = Database(request.getfixturevalue("postgres_schema")(f"ledger_defaults_{uuid.uuid4().hex[:8]}"))
    else:
        database = Database(f"sqlite:///{tmp_path_factory.mktemp('ledger_defaults') / 'ledger.db'}")
    database.migrate()
    yield database
    database.dispose()


def _loan(ref: int, status: str, wallet: str = WALLET, chain_id: int = CHAIN_ID) -> LoanRow:
    loan = replace(LOAN, id=f"loan-{ref}-{chain_id}", onchain_loan_id=ref, status=status, chain_id=chain_id,
                   offer_digest="0x" + f"{ref:02x}" * 32, borrower_address=wallet)  # fmt: skip
    return LoanRow(**loan_columns(loan))


def _fact(ref: int, event: str, block: int) -> ChainFactRow:
    return ChainFactRow(
        chain_id=CHAIN_ID, contract="CreditAggregator", address=AGGREGATOR.lower(), event=event, args={},
        loan_ref=ref, block_number=block, block_hash="0x" + f"{block:064x}", tx_hash="0x" + f"{block:064x}",
        log_index=0, source="indexer", recorded_at=datetime.now(UTC),
    )  # fmt: skip


def test_the_ledger_counts_a_wallets_defaults_now_and_past_on_the_chains_asked(database: Database) -> None:
    with database.unit_of_work() as uow:
        uow.session.add_all(
            [
                _loan(1, "defaulted"),
                _loan(2, "written_off"),
                _loan(3, "repaid"),  # marked in default, then repaid: a default all the same
                _loan(4, "repaid"),  # repaid in time
                _loan(5, "active"),
                _loan(6, "defaulted", wallet=OTHER_WALLET),
                _loan(7, "defaulted", chain_id=CHAIN_ID + 1),
            ]
        )
        uow.session.add_all([_fact(3, "LoanDefaulted", 10), _fact(3, "LoanClosed", 11), _fact(4, "LoanClosed", 12)])
        uow.commit()
    store = SqlQuotingStore(database)
    with store.unit_of_work() as uow:
        assert uow.quoting.ledger_defaults(WALLET.lower(), [CHAIN_ID]) == 3
        assert uow.quoting.ledger_defaults(WALLET, [CHAIN_ID, CHAIN_ID + 1]) == 4
        assert uow.quoting.ledger_defaults(WALLET, [CHAIN_ID + 2]) == 0
        assert uow.quoting.ledger_defaults("0x" + "ef" * 20, [CHAIN_ID]) == 0
