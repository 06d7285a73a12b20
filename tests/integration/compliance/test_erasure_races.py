"""Erasure racing a credit request, on SQLite and real PostgreSQL: a request that read the borrower's file before the
erasure and records its decisions after it seals no name under a new key (the key store keeps no key for the erased
borrower, and nothing opens the name); and the erasure's retention check and deletion are one step against a
decision being written (it waits for the decision, then refuses for Regulation B, instead of erasing under it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from aggregator.borrower_accounts import BorrowerAccounts
from aggregator.borrowers import BorrowerFiles
from api.bootstrap import _compliance
from api.settings import Settings
from compliance.decisions import DecisionKind, decide
from compliance.errors import ErasureRefused, SubjectKeyMissing
from compliance.jurisdiction import Product
from compliance.kyc import IdentityDocument, IdentityProfile, LocalKycProvider
from store.borrowers import SqlBorrowerStore
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.keystore import SqlKeyStore
from store.sanctions_reviews import record_screening

pytestmark = pytest.mark.integration

SECRET = b"kyc-secret"
IDENTITY = IdentityProfile("Augusta", "Byron-King", date(1985, 12, 10), "US-FL")
DOCUMENT = IdentityDocument("passport", "P7654321", "Augusta", "Byron-King", date(1985, 12, 10), "US", date(2031, 1, 1))


class _Platform:
    def __init__(self, database: Database, keys: SqlKeyStore, data_dir: Path) -> None:
        self.database, self.keys, self.data_dir = database, keys, data_dir
        self.files = BorrowerFiles(SqlBorrowerStore(database), keys)

    async def verified(self, wallet_byte: str) -> str:
        borrower_id = BorrowerAccounts(SqlBorrowerStore(self.database)).register("0x" + wallet_byte * 20, "us-fl").id
        kyc = LocalKycProvider(SECRET)
        await self.files.verify_identity(borrower_id, IDENTITY, DOCUMENT, kyc)
        self.files.apply_kyc_review(*kyc.outbox[-1], SECRET, datetime.now(UTC))
        return borrower_id


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Platform]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'creditmesh.db'}"
    else:
        schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        url = schema("erasure_races")
    database = Database(url)
    database.migrate()
    keys = SqlKeyStore(f"sqlite:///{tmp_path / 'subject-keys.db'}", os.urandom(32))
    yield _Platform(database, keys, tmp_path)
    database.dispose()
    keys.dispose()


async def test_a_request_that_read_the_file_before_an_erasure_seals_no_name_after_it(platform: _Platform) -> None:
    borrower_id = await platform.verified("ab")
    compliance = _compliance(Settings(data_dir=platform.data_dir), platform.database, platform.keys)
    loaded = platform.files.load(borrower_id)  # the credit request reads the file ...
    assert loaded is not None
    screened = compliance.screen_credit_request_outcomes(loaded.facts(), [Product.DEFI], Decimal("100"), loaded.kyc)
    platform.files.erase_identity(borrower_id, datetime.now(UTC))  # ... no decision yet: the erasure goes through
    records = compliance.credit_request_records(screened)  # ... and the request records its decisions
    with platform.database.unit_of_work() as uow:
        for record in records.values():
            SqlDecisionRepository(uow.session).add(record)
        uow.commit()

    with pytest.raises(SubjectKeyMissing):
        platform.keys.data_key(borrower_id)  # no key came back for the erased borrower
    with platform.database.unit_of_work() as uow:
        (kept,) = SqlDecisionRepository(uow.session).for_subject(borrower_id)
        stored_hash = SqlDecisionRepository(uow.session).stored_hash(kept.decision_id)
    assert kept.pii_sealed is None  # the record keeps no name rather than one sealed under a new key
    assert stored_hash == kept.record_hash()  # and still verifies
    file = platform.files.load(borrower_id)
    assert file is not None
    assert file.identity is None
    with pytest.raises(ErasureRefused):  # the decision recorded is kept for Regulation B's 25 months
        platform.files.erase_identity(borrower_id, datetime.now(UTC))


async def test_an_erasure_waits_for_a_decision_being_written_and_then_is_refused(platform: _Platform) -> None:
    borrower_id = await platform.verified("cd")
    record = decide(
        DecisionKind.ACCEPTANCE, borrower_id, {"borrowerId": borrower_id}, [], {"rules": "test"}, datetime.now(UTC)
    )
    outcome: list[BaseException | None] = []

    def erase() -> None:
        try:
            platform.files.erase_identity(borrower_id, datetime.now(UTC))
            outcome.append(None)
        except BaseException as err:  # handed to the test's thread
            outcome.append(err)

    with platform.database.unit_of_work() as uow:
        record_screening(uow.session, [record], borrower_id, "sdn-test", datetime.now(UTC))  # written, not committed
        eraser = threading.Thread(target=erase)
        eraser.start()
        eraser.join(1.0)
        assert eraser.is_alive(), "the erasure went ahead while a decision about the borrower was being written"
        uow.commit()
    eraser.join(30)
    assert not eraser.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ErasureRefused)  # it saw the decision: Regulation B keeps the identity
    assert platform.keys.data_key(borrower_id)  # the key is still there
    file = platform.files.load(borrower_id)
    assert file is not None
    assert file.identity == IDENTITY
