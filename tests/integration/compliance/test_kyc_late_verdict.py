"""A KYC verdict sets the borrower's status only for the identity it verified, on SQLite and real PostgreSQL: a
borrower who submits a genuine document and then, before its verdict, a second identity that does not pass, is not
approved under the second identity when the first verdict lands late (it is kept with its applicant, not made
current); the verdict on the identity on file is. And of two verdicts on one applicant, the one the provider reached
last stands, whichever is delivered last (``reviewedAt``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from aggregator.borrower_accounts import BorrowerAccounts
from aggregator.borrowers import BorrowerFiles
from compliance.kyc import (
    IdentityDocument,
    IdentityProfile,
    KycReview,
    KycState,
    KycTier,
    LocalKycProvider,
    review_of,
    sign_webhook,
)
from store.borrowers import SqlBorrowerStore
from store.compliance import SqlKycRepository
from store.db import MIGRATIONS_DIR, Database
from store.keystore import SqlKeyStore

pytestmark = pytest.mark.integration

SECRET = b"kyc-secret"
GENUINE = IdentityProfile("Augusta", "Byron-King", date(1985, 12, 10), "US-FL")
GENUINE_DOCUMENT = IdentityDocument(
    "passport", "P7654321", "Augusta", "Byron-King", date(1985, 12, 10), "US", date(2031, 1, 1)
)
OTHER = IdentityProfile("Someone", "Else", date(1970, 1, 1), "US-FL")
# no document number: the provider rejects it
OTHER_DOCUMENT = IdentityDocument("passport", "", "Someone", "Else", date(1970, 1, 1), "US", date(2031, 1, 1))


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'creditmesh.db'}")
    schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
    return Database(schema("kyc_late_verdict"))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = _database(request, tmp_path)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BorrowerFiles, Database]]:
    database = _database(request, tmp_path)
    database.migrate()
    keys = SqlKeyStore(f"sqlite:///{tmp_path / 'subject-keys.db'}", os.urandom(32))
    yield BorrowerFiles(SqlBorrowerStore(database), keys), database
    database.dispose()
    keys.dispose()


@pytest.mark.parametrize("second_verdict_first", [False, True])
async def test_a_late_verdict_on_a_replaced_identity_does_not_verify_the_identity_on_file(
    files: tuple[BorrowerFiles, Database], second_verdict_first: bool
) -> None:
    borrower_files, database = files
    borrower_id = BorrowerAccounts(SqlBorrowerStore(database)).register("0x" + "ab" * 20, "us-fl").id
    kyc = LocalKycProvider(SECRET)
    first = await borrower_files.verify_identity(borrower_id, GENUINE, GENUINE_DOCUMENT, kyc)
    second = await borrower_files.verify_identity(borrower_id, OTHER, OTHER_DOCUMENT, kyc)  # the identity on file now
    (first_body, first_headers), (second_body, second_headers) = kyc.outbox[0], kyc.outbox[1]
    now = datetime.now(UTC)
    if second_verdict_first:
        rejected = borrower_files.apply_kyc_review(second_body, second_headers, SECRET, now + timedelta(seconds=1))
        assert rejected.state is KycState.REJECTED
    late = borrower_files.apply_kyc_review(first_body, first_headers, SECRET, now + timedelta(seconds=2))
    assert (late.applicant_id, late.state, late.tier) == (first.applicant_id, KycState.APPROVED, KycTier.STANDARD)

    file = borrower_files.load(borrower_id)
    assert file is not None
    assert file.identity == OTHER
    assert file.kyc is not None
    assert file.kyc.applicant_id == second.applicant_id  # the identity on file's applicant, not the newest verdict
    assert file.kyc.state is (KycState.REJECTED if second_verdict_first else KycState.PENDING)
    assert file.kyc.tier is KycTier.NONE
    with database.unit_of_work() as uow:  # the late verdict is kept, with its own applicant
        kept = SqlKycRepository(uow.session).get(first.applicant_id)
    assert kept is not None
    assert (kept.state, kept.tier) == (KycState.APPROVED, KycTier.STANDARD)

    if not second_verdict_first:  # the verdict on the identity on file is the file's status when it lands
        borrower_files.apply_kyc_review(second_body, second_headers, SECRET, now + timedelta(seconds=3))
        file = borrower_files.load(borrower_id)
        assert file is not None
        assert file.kyc is not None
        assert (file.kyc.applicant_id, file.kyc.state) == (second.applicant_id, KycState.REJECTED)


async def test_the_verdict_on_the_identity_on_file_sets_its_tier(files: tuple[BorrowerFiles, Database]) -> None:
    """The other way round: a rejected identity replaced by a genuine one is approved by the genuine one's verdict,
    and the old rejection arriving after it does not take the approval away."""
    borrower_files, database = files
    borrower_id = BorrowerAccounts(SqlBorrowerStore(database)).register("0x" + "cd" * 20, "us-fl").id
    kyc = LocalKycProvider(SECRET)
    await borrower_files.verify_identity(borrower_id, OTHER, OTHER_DOCUMENT, kyc)
    genuine = await borrower_files.verify_identity(borrower_id, GENUINE, GENUINE_DOCUMENT, kyc)
    now = datetime.now(UTC)
    borrower_files.apply_kyc_review(*kyc.outbox[1], SECRET, now + timedelta(seconds=1))
    borrower_files.apply_kyc_review(*kyc.outbox[0], SECRET, now + timedelta(seconds=2))  # the old rejection, late
    file = borrower_files.load(borrower_id)
    assert file is not None
    assert file.identity == GENUINE
    assert file.kyc is not None
    assert (file.kyc.applicant_id, file.kyc.state, file.kyc.tier) == (
        genuine.applicant_id,
        KycState.APPROVED,
        KycTier.STANDARD,
    )


def test_the_migration_ties_an_identity_on_file_to_its_subject_s_newest_applicant(fresh: Database) -> None:
    """Identities stored before 0031 keep the status they were read with: their subject's newest applicant."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with fresh.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0030_sanctions_review_identity")
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        for subject, applicants in (("b-1", ("a-old", "a-new")), ("b-2", ())):
            connection.execute(
                text(
                    "INSERT INTO compliance_identities (subject_id, country, sealed_identity, updated_at) "
                    "VALUES (:subject, 'US-FL', :sealed, :at)"
                ),
                {"subject": subject, "sealed": b"sealed", "at": t0},
            )
            for n, applicant in enumerate(applicants):
                connection.execute(
                    text(
                        "INSERT INTO compliance_kyc_applicants (applicant_id, subject_id, state, tier, reasons, "
                        "updated_at) VALUES (:applicant, :subject, 'approved', 1, '[]', :at)"
                    ),
                    {"applicant": applicant, "subject": subject, "at": t0 + timedelta(minutes=n)},
                )
    fresh.migrate()
    with fresh.engine.connect() as connection:
        rows = connection.execute(text("SELECT subject_id, applicant_id FROM compliance_identities")).all()
    tied: dict[str, str | None] = {subject: applicant for subject, applicant in rows}
    assert tied == {"b-1": "a-new", "b-2": None}


async def test_a_verdict_reached_before_the_one_stored_is_ignored(files: tuple[BorrowerFiles, Database]) -> None:
    borrower_files, database = files
    borrower_id = BorrowerAccounts(SqlBorrowerStore(database)).register("0x" + "ef" * 20, "us-fl").id
    kyc = LocalKycProvider(SECRET)
    applicant = await borrower_files.verify_identity(borrower_id, GENUINE, GENUINE_DOCUMENT, kyc)
    approval = review_of(json.loads(kyc.outbox[0][0]))
    assert approval.reviewed_at is not None
    # the provider's re-review, reached 30 s after the approval and delivered first
    rejection = replace(
        approval,
        event_id="re-review",
        state=KycState.REJECTED,
        tier=KycTier.NONE,
        reviewed_at=approval.reviewed_at + timedelta(seconds=30),
    )
    now = datetime.now(UTC)

    def deliver(review: KycReview, at: datetime) -> None:
        body = json.dumps(review.payload()).encode()
        borrower_files.apply_kyc_review(body, sign_webhook(body, SECRET, at), SECRET, at)

    deliver(rejection, now + timedelta(seconds=1))
    deliver(approval, now + timedelta(seconds=2))  # held up in transit, retried
    file = borrower_files.load(borrower_id)
    assert file is not None
    assert file.kyc is not None
    assert (file.kyc.applicant_id, file.kyc.state, file.kyc.tier) == (
        applicant.applicant_id,
        KycState.REJECTED,
        KycTier.NONE,
    )
    with database.unit_of_work() as uow:
        stored = SqlKycRepository(uow.session).get(applicant.applicant_id)
    assert stored is not None
    assert stored.reviewed_at == rejection.reviewed_at


def test_the_migration_dates_the_verdicts_stored_before_when_they_were_received(fresh: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with fresh.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0034_decision_screened_identity")
        for applicant, state in (("a-approved", "approved"), ("a-pending", "pending")):
            connection.execute(
                text(
                    "INSERT INTO compliance_kyc_applicants (applicant_id, subject_id, state, tier, reasons, "
                    "updated_at) VALUES (:applicant, 'b-1', :state, 0, '[]', :at)"
                ),
                {"applicant": applicant, "state": state, "at": t0},
            )
    fresh.migrate()
    with fresh.unit_of_work() as uow:
        repository = SqlKycRepository(uow.session)
        approved, pending = repository.get("a-approved"), repository.get("a-pending")
    assert approved is not None
    assert pending is not None
    assert (approved.reviewed_at, pending.reviewed_at) == (t0, None)
