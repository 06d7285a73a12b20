"""The Bank Secrecy Act keeps a borrower's identifying information 5 years after each loan closes (31 CFR
1020.220(a)(3)(ii)), on SQLite and real PostgreSQL: erasure is refused while any loan is open (active or in
default), however long ago it opened, and counts 5 years from a closed loan's newest chain fact (its closing event),
not from its opening; another chain's facts under the same on-chain loan id do not count."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from aggregator.borrower_accounts import BorrowerAccounts
from aggregator.borrowers import BSA_RETENTION, BorrowerFiles
from api.auth import ensure_bootstrap_admin
from chain.devnet import free_port
from compliance.errors import ErasureRefused
from compliance.kyc import IdentityDocument, IdentityProfile, LocalKycProvider
from store.aggregator import LoanRow
from store.borrowers import SqlBorrowerStore
from store.db import Database
from store.keystore import SqlKeyStore
from store.ledger import ChainFactRow
from tests.support.kyc_api import kyc_app

pytestmark = pytest.mark.integration

ADMIN = "cm_admin_" + "r" * 40
NOW = datetime.now(UTC)
SIX_YEARS_AGO = NOW - timedelta(days=6 * 365)
IDENTITY = IdentityProfile("Augusta", "Byron-King", date(1985, 12, 10), "US-FL")
DOCUMENT = IdentityDocument("passport", "P7654321", "Augusta", "Byron-King", date(1985, 12, 10), "US", date(2031, 1, 1))


@pytest.fixture(params=["sqlite", "postgresql"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BorrowerFiles, Database]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    else:
        schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        url = schema("erasure_loan_retention")
    database = Database(url)
    database.migrate()
    keys = SqlKeyStore(f"sqlite:///{tmp_path / 'subject-keys.db'}", os.urandom(32))
    yield BorrowerFiles(SqlBorrowerStore(database), keys), database
    database.dispose()
    keys.dispose()


async def _verified(files: BorrowerFiles, database: Database, wallet_byte: str) -> str:
    borrower_id = BorrowerAccounts(SqlBorrowerStore(database)).register("0x" + wallet_byte * 20, "us-fl").id
    await files.verify_identity(borrower_id, IDENTITY, DOCUMENT, LocalKycProvider(b"kyc-secret"))
    return borrower_id


def _loan(
    database: Database, borrower_id: str, status: str, onchain_id: int, facts: list[tuple[int, str, datetime]]
) -> None:
    """A loan opened six years ago on chain 31337, and its chain facts: (chain id, event, recorded at)."""
    with database.unit_of_work() as uow:
        uow.session.add(
            LoanRow(
                id=str(uuid.uuid4()),
                borrower_id=borrower_id,
                chain_name="ethereum-local",
                chain_id=31337,
                contract="0x" + "a1" * 20,
                onchain_loan_id=onchain_id,
                status=status,
                asset="USDC",
                principal=1_000_000_000,
                created_at=SIX_YEARS_AGO,
                offer_digest="0x" + uuid.uuid4().hex * 2,
            )
        )
        for n, (chain_id, event, recorded_at) in enumerate(facts):
            uow.session.add(
                ChainFactRow(
                    chain_id=chain_id,
                    contract="CreditAggregator",
                    address="0x" + "a1" * 20,
                    event=event,
                    args={"loanId": str(onchain_id)},
                    loan_ref=onchain_id,
                    block_number=n + 1,
                    block_hash="0x" + uuid.uuid4().hex * 2,
                    tx_hash="0x" + uuid.uuid4().hex * 2,
                    log_index=0,
                    source="indexer",
                    recorded_at=recorded_at,
                )
            )
        uow.commit()


@pytest.mark.parametrize("status", ["active", "defaulted"])
async def test_a_loan_still_open_holds_the_identity_however_old(
    files: tuple[BorrowerFiles, Database], status: str
) -> None:
    borrower_files, database = files
    borrower_id = await _verified(borrower_files, database, "ab")
    _loan(database, borrower_id, status, 7, [(31337, "LoanOpened", SIX_YEARS_AGO)])
    with pytest.raises(ErasureRefused, match=r"1020\.220") as refused:
        borrower_files.erase_identity(borrower_id, NOW)
    assert refused.value.retain_until is None  # open: no end yet
    file = borrower_files.load(borrower_id)
    assert file is not None
    assert file.identity == IDENTITY


async def test_a_closed_loan_holds_the_identity_five_years_from_its_close(
    files: tuple[BorrowerFiles, Database],
) -> None:
    borrower_files, database = files
    borrower_id = await _verified(borrower_files, database, "cd")
    closed = NOW - timedelta(days=2 * 365)
    _loan(
        database,
        borrower_id,
        "repaid",
        8,
        [(31337, "LoanOpened", SIX_YEARS_AGO), (31337, "LoanClosed", closed), (31338, "LoanOpened", NOW)],
    )
    with pytest.raises(ErasureRefused, match=r"1020\.220") as refused:
        borrower_files.erase_identity(borrower_id, NOW)
    assert refused.value.retain_until is not None
    assert abs(refused.value.retain_until - (closed + BSA_RETENTION)) < timedelta(seconds=1)  # not from NOW's fact

    later = await _verified(borrower_files, database, "ef")  # closed (written off) more than five years ago
    _loan(
        database,
        later,
        "written_off",
        9,
        [(31337, "LoanOpened", SIX_YEARS_AGO - timedelta(days=30)), (31337, "LoanWrittenOff", SIX_YEARS_AGO)],
    )
    borrower_files.erase_identity(later, NOW)
    file = borrower_files.load(later)
    assert file is not None
    assert file.identity is None


async def test_the_api_refuses_the_erasure_of_a_borrower_with_an_open_loan(
    files: tuple[BorrowerFiles, Database], tmp_path: Path
) -> None:
    _, database = files
    ensure_bootstrap_admin(database, ADMIN)
    app = kyc_app(database, tmp_path, free_port(), "kyc-secret-loan-retention")
    borrower_id = await _verified(app.state.platform.borrowers, database, "0a")
    _loan(database, borrower_id, "active", 10, [])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        answer = await client.delete(f"/v1/borrowers/{borrower_id}/identity", headers={"X-API-Key": ADMIN})
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"].endswith("/erasure-refused")
    assert problem["retain_until"] is None
    assert "open" in problem["detail"]
