"""The one-statement reads of the request path (``store.borrower_file``) return exactly what the separate ORM reads
return, on SQLite and on real PostgreSQL: a borrower's file (account, credit profile, sealed identity, the KYC
applicant it was submitted with, decided sanctions reviews) alone, and behind an API key (by hash and by id) — for
random files, keys of every role (a provider key whose subject id is a borrower's reads no file) and keys without an
account."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.borrower_store import BorrowerAccount, SealedIdentity, StoredFile
from api.auth import ApiKeyInfo, Role, hash_key, issue_key
from compliance.jurisdiction import Reason
from compliance.kyc import KycState, KycStatus, KycTier
from compliance.sanctions.review import ReviewState
from risk.profile import CreditProfile, Housing
from store.api import ApiKeyRepository
from store.base import Base
from store.borrower_file import read_caller, stored_file
from store.borrowers import SqlBorrowerRepository
from store.compliance import SqlKycRepository
from store.db import Database
from store.risk import CreditProfileRow
from store.sanctions_reviews import SanctionsReviewRow

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROFILES: tuple[dict[str, object], ...] = (
    {"savings": "2000", "employment_years": "8", "housing": "own"},
    {"checking": "no_account", "monthly_disposable_income": "1234.56", "existing_credits": 2},
    {},
)


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('file-read') / 'files.sqlite'}"
    else:
        schema: Callable[[str], str] = request.getfixturevalue("postgres_schema")
        url = schema("borrower_file_read")
    database = Database(url)
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _random_files(database: Database, rng: random.Random, count: int) -> list[str]:
    """``count`` borrowers, each with a random share of a file; their ids."""
    ids = []
    with database.unit_of_work() as uow:
        borrowers, kyc = SqlBorrowerRepository(uow.session), SqlKycRepository(uow.session)
        for n in range(count):
            borrower_id = str(uuid.UUID(int=rng.getrandbits(128)))
            ids.append(borrower_id)
            webhook = rng.random() < 0.5
            borrowers.add_account(
                BorrowerAccount(
                    borrower_id,
                    "0x" + rng.randbytes(20).hex(),
                    rng.choice(("US-CA", "US-NY", "DE")),
                    T0 + timedelta(seconds=n),
                    "https://hooks.example/b" if webhook else None,
                    "sealed-secret" if webhook else None,
                )
            )
            if rng.random() < 0.6:
                profile = CreditProfile.model_validate(rng.choice(PROFILES))
                borrowers.save_profile(borrower_id, profile, T0)
            applicants: list[str] = []
            for k in range(rng.randrange(4)):
                reasons = tuple(
                    Reason(f"kyc.r{r}", "a reason", rng.choice((None, "31 CFR 1020.220"))) for r in range(2)
                )
                status = KycStatus(
                    f"app-{borrower_id[:8]}-{k}",
                    borrower_id,
                    rng.choice(list(KycState)),
                    rng.choice(list(KycTier)),
                    reasons[: rng.randrange(3)],
                    T0 + timedelta(hours=rng.randrange(1000), seconds=k),
                )
                kyc.save(status)
                applicants.append(status.applicant_id)
            if rng.random() < 0.6:  # submitted with one of the applicants (its status is the file's), or none
                applicant_id = rng.choice([None, *applicants])
                sealed = SealedIdentity(
                    rng.choice(("US", "DE")), rng.randbytes(40), T0 + timedelta(minutes=n), applicant_id
                )
                borrowers.put_identity(borrower_id, sealed)
            # entries, and now and then an identity whose name was not screened (no entry)
            unscreened: list[int | None] = [None] * (rng.random() < 0.4)
            for ent_num in [*rng.sample(range(1, 50), rng.randrange(4)), *unscreened]:
                uow.session.add(
                    SanctionsReviewRow(
                        id=str(uuid.uuid4()),
                        borrower_id=borrower_id,
                        kind="sdn-entry" if ent_num is not None else "name-not-screened",
                        ent_num=ent_num,
                        entry_fingerprint=rng.randbytes(8).hex(),
                        list_version="sdn-1",
                        listed_name="LISTED",
                        primary_name="LISTED",
                        program="SDGT",
                        score=0.9,
                        outcome="possible-match",
                        state=rng.choice(list(ReviewState)).value,
                        decision_id=str(uuid.uuid4()),
                        created_at=T0,
                    )
                )
        uow.commit()
    return ids


def _separate_reads(database: Database, borrower_id: str) -> StoredFile | None:
    """The file as the five reads before the one statement read it (reviews in the statement's order)."""
    with database.unit_of_work() as uow:
        borrowers = SqlBorrowerRepository(uow.session)
        account = borrowers.account(borrower_id)
        if account is None:
            return None
        reviews = sorted(
            borrowers.prior_reviews(borrower_id), key=lambda r: (r.ent_num is None, r.ent_num or 0, r.entry_fingerprint)
        )
        identity = borrowers.identity(borrower_id)
        kyc = None
        if identity is not None and identity.applicant_id is not None:
            kyc = SqlKycRepository(uow.session).get(identity.applicant_id)
        return StoredFile(account, borrowers.profile(borrower_id), identity, kyc, tuple(reviews))


def _key_info(database: Database, key: str) -> ApiKeyInfo | None:
    with database.unit_of_work() as uow:
        row = ApiKeyRepository(uow.session).by_hash(hash_key(key))
        return None if row is None else ApiKeyInfo.of(row)


def test_the_one_statement_reads_return_what_the_separate_reads_did(database: Database, tmp_path: Path) -> None:
    rng = random.Random(20261127)
    ids = _random_files(database, rng, 24)
    keys: dict[str, str | None] = {issue_key(database, Role.BORROWER, b, "test"): b for b in ids}
    keys[issue_key(database, Role.BORROWER, "no-such-borrower", "test")] = None  # a key without an account
    keys[issue_key(database, Role.PROVIDER, ids[0], "test")] = None  # not a borrower's key: no file
    keys[issue_key(database, Role.ADMIN, None, "test")] = None
    files = unscreened = 0
    for file_id in [*ids, "no-such-borrower"]:
        expected = _separate_reads(database, file_id)
        with database.engine.connect() as connection:
            assert stored_file(connection, file_id) == expected
        with database.unit_of_work() as uow:
            assert SqlBorrowerRepository(uow.session).stored_file(file_id) == expected
        files += expected is not None and expected.kyc is not None and len(expected.sanctions_reviews) > 1
        unscreened += expected is not None and any(r.ent_num is None for r in expected.sanctions_reviews)
    assert files > 0  # some files had a KYC status and several decided reviews
    assert unscreened > 0  # and some a verdict on a name not screened (no entry: read all the same)
    for key, borrower_id in keys.items():
        info = _key_info(database, key)
        assert info is not None
        expected = None if borrower_id is None else _separate_reads(database, borrower_id)
        for found in (
            read_caller(database, key_hash=hash_key(key), with_file=True),
            read_caller(database, key_id=info.key_id, with_file=True),
        ):
            assert found is not None
            record, stored = found
            assert ApiKeyInfo.of(record) == info
            assert stored == expected
        found = read_caller(database, key_hash=hash_key(key))
        assert found is not None
        assert ApiKeyInfo.of(found[0]) == info
        assert found[1] is None
    assert read_caller(database, key_hash=hash_key("not-a-key"), with_file=True) is None
    assert read_caller(database, key_id="key_unknown", with_file=True) is None


def test_the_kyc_status_read_is_the_identity_s_applicant_not_the_newest(database: Database) -> None:
    """The file's KYC status is the verdict on the applicant the identity on file was submitted with: an older
    applicant's verdict stored later (a late webhook) is kept but is not read as the file's status, by either read."""
    borrower_id = "identity-applicant"
    with database.unit_of_work() as uow:
        borrowers, kyc = SqlBorrowerRepository(uow.session), SqlKycRepository(uow.session)
        borrowers.add_account(BorrowerAccount(borrower_id, f"0x{77:040x}", "US-FL", T0, None, None))
        kyc.save(KycStatus("first", borrower_id, KycState.APPROVED, KycTier.STANDARD, (), T0 + timedelta(hours=1)))
        kyc.save(KycStatus("second", borrower_id, KycState.REJECTED, KycTier.NONE, (), T0))
        borrowers.put_identity(borrower_id, SealedIdentity("US-FL", b"sealed", T0, "second"))
        uow.commit()
    expected = _separate_reads(database, borrower_id)
    assert expected is not None
    assert expected.kyc is not None
    assert (expected.kyc.applicant_id, expected.kyc.state) == ("second", KycState.REJECTED)
    with database.engine.connect() as connection:
        assert stored_file(connection, borrower_id) == expected
    with database.unit_of_work() as uow:
        assert SqlBorrowerRepository(uow.session).stored_file(borrower_id) == expected


def test_a_profile_stored_with_a_count_past_today_s_bound_is_read_with_it_unknown(database: Database) -> None:
    """A profile saved before ``existing_credits`` was bounded (2^53 + 1 credits, stored as is) is read by both
    reads with the count unknown: the borrower's file still loads and its credit requests are still scored."""
    borrower_id = "unbounded-credits"
    with database.unit_of_work() as uow:
        SqlBorrowerRepository(uow.session).add_account(
            BorrowerAccount(borrower_id, f"0x{78:040x}", "US-FL", T0, None, None)
        )
        stored = {"housing": "own", "existing_credits": 2**53 + 1}
        uow.session.add(CreditProfileRow(borrower_id=borrower_id, profile=stored, updated_at=T0))
        uow.commit()
    with database.unit_of_work() as uow:
        borrowers = SqlBorrowerRepository(uow.session)
        assert uow.session.get_one(CreditProfileRow, borrower_id).profile == stored  # kept exactly as stored
        assert borrowers.profile(borrower_id) == CreditProfile(housing=Housing.OWN)
        file = borrowers.stored_file(borrower_id)
    with database.engine.connect() as connection:
        assert stored_file(connection, borrower_id) == file
    assert file is not None
    assert file.profile == CreditProfile(housing=Housing.OWN)
