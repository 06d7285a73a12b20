"""Erasure that erases: after it, the platform database file and the key store file yield no identity, even to
someone who holds the PII master key; and the KMS key store shreds a subject's key on moto's local KMS server."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from aggregator.borrowers import BorrowerFiles
from chain.devnet import free_port
from compliance.decisions import DecisionKind, decide
from compliance.errors import PiiError, SubjectKeyMissing
from compliance.kms import KmsKeyStore
from compliance.kyc import IdentityDocument, IdentityProfile, LocalKycProvider
from compliance.pii import PiiVault, unseal
from risk.profile import CreditProfile
from store.borrowers import SqlBorrowerStore
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.keystore import SqlKeyStore

pytestmark = pytest.mark.integration

MASTER = os.urandom(32)
SECRET = b"kyc-secret"
IDENTITY = IdentityProfile("Augusta", "Byron-King", date(1985, 12, 10), "US-FL")
DOCUMENT = IdentityDocument("passport", "P7654321", "Augusta", "Byron-King", date(1985, 12, 10), "US", date(2031, 1, 1))
PROFILE = CreditProfile.model_validate({"savings": "2000", "employment_years": "8", "housing": "own"})


def _files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.suffix in {".db", ".db-wal", ".db-journal"}]


def recover(directory: Path, master: bytes) -> list[str]:
    """What an attacker holding copies of both database files and the master key can read: every wrapped key in
    the key store unwrapped, and with it every blob in the platform database tried as a sealed field."""
    keys: dict[str, bytes] = {}
    with sqlite3.connect(directory / "subject-keys.db") as store:
        for subject, wrapped in store.execute("select subject_id, wrapped_key from subject_keys"):
            keys[subject] = unseal(master, wrapped, subject.encode())
    found = []
    with sqlite3.connect(directory / "creditmesh.db") as platform:
        tables = [name for (name,) in platform.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for row in platform.execute(f'select * from "{table}"'):  # noqa: S608 - table names from sqlite_master
                for value in row:
                    if not isinstance(value, bytes):
                        continue
                    for subject, key in keys.items():
                        for field in ("identity", "screened-name"):
                            with contextlib.suppress(PiiError):  # not this subject's field: try the next
                                found.append(unseal(key, value, f"{subject}/{field}".encode()).decode())
    return found


@pytest.fixture
def borrower_files(tmp_path: Path) -> Iterator[tuple[BorrowerFiles, Database, SqlKeyStore]]:
    database = Database(f"sqlite:///{tmp_path / 'creditmesh.db'}")
    database.migrate()
    keys = SqlKeyStore(f"sqlite:///{tmp_path / 'subject-keys.db'}", MASTER)
    yield BorrowerFiles(SqlBorrowerStore(database), keys), database, keys
    database.dispose()
    keys.dispose()


async def test_after_erasure_the_database_files_yield_no_identity_even_with_the_master_key(
    tmp_path: Path, borrower_files: tuple[BorrowerFiles, Database, SqlKeyStore]
) -> None:
    files, database, keys = borrower_files
    subject = "b-erased"
    kyc = LocalKycProvider(SECRET)
    await files.verify_identity(subject, IDENTITY, DOCUMENT, kyc, military_id="123456789")
    body, headers = kyc.outbox[-1]
    files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))
    files.save_profile(subject, PROFILE)
    decided = datetime.now(UTC)
    record = decide(
        DecisionKind.CREDIT_REQUEST,
        subject,
        {"borrowerId": subject, "amount": Decimal("1500")},
        [],
        {"jurisdictions": "test"},
        decided,
        pii_sealed=PiiVault(keys).encrypt(subject, "screened-name", "Augusta Byron-King"),
    )
    with database.unit_of_work() as uow:
        SqlDecisionRepository(uow.session).add(record)
        uow.commit()
    with sqlite3.connect(tmp_path / "subject-keys.db") as store:
        (wrapped,) = store.execute("select wrapped_key from subject_keys").fetchone()
    with sqlite3.connect(tmp_path / "creditmesh.db") as platform:
        (sealed_identity,) = platform.execute("select sealed_identity from compliance_identities").fetchone()

    # before: the attack works (the test can fail), though nothing is in the clear at rest
    before = recover(tmp_path, MASTER)
    assert "Augusta Byron-King" in before
    assert any("Byron-King" in text and "123456789" in text for text in before)
    assert not any(b"Byron-King" in path.read_bytes() for path in _files(tmp_path))

    files.erase_identity(subject, decided + timedelta(days=800))  # after Regulation B's 25 months

    assert recover(tmp_path, MASTER) == []
    raw = b"".join(path.read_bytes() for path in _files(tmp_path))
    assert wrapped not in raw, "the destroyed key's bytes are overwritten (secure_delete), not left in a free page"
    assert sealed_identity not in raw, "the sealed identity is gone from the database file and its WAL"
    assert b"Byron-King" not in raw
    with sqlite3.connect(tmp_path / "creditmesh.db") as platform:
        for table in ("compliance_identities", "credit_profiles", "compliance_kyc_applicants"):
            assert platform.execute(f'select count(*) from "{table}"').fetchone() == (0,), table  # noqa: S608
    assert files.load(subject) is None  # no account row in this test; the identity is unreadable either way
    with database.unit_of_work() as uow:
        kept = SqlDecisionRepository(uow.session).get(record.decision_id)
    assert kept is not None
    assert kept.record_hash() == record.record_hash(), "the decision record still verifies"
    with pytest.raises(SubjectKeyMissing):
        PiiVault(keys).decrypt(subject, "screened-name", kept.pii_sealed or b"")


@pytest.fixture(scope="module")
def kms() -> Iterator[object]:
    """A boto3 KMS client on moto's local KMS server (a real HTTP server on a free loopback port)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield boto3.client(
            "kms",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        server.stop()


def test_the_kms_key_store_creates_serves_and_shreds_subject_keys(kms: object) -> None:
    keys = KmsKeyStore(kms)
    keys.create_key("b-kms-1")
    keys.create_key("b-kms-1")  # idempotent
    keys.create_key("b-kms-2")
    first = keys.data_key("b-kms-1")
    assert len(first) == 32
    assert keys.data_key("b-kms-1") == first, "the same key every time"
    assert keys.data_key("b-kms-2") != first
    vault = PiiVault(keys)
    sealed = vault.encrypt("b-kms-1", "identity", "Augusta Byron-King")
    assert vault.decrypt("b-kms-1", "identity", sealed) == "Augusta Byron-King"
    key_id = kms.describe_key(KeyId="alias/creditmesh-subject/b-kms-1")["KeyMetadata"]["KeyId"]  # type: ignore[attr-defined]
    keys.destroy_key("b-kms-1")
    keys.destroy_key("b-kms-1")  # idempotent
    with pytest.raises(SubjectKeyMissing):
        vault.decrypt("b-kms-1", "identity", sealed)
    state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]  # type: ignore[attr-defined]
    assert state == "PendingDeletion", "KMS destroys the key material after its waiting period"
    assert vault.decrypt("b-kms-2", "identity", vault.encrypt("b-kms-2", "identity", "x")) == "x"
    with pytest.raises(PiiError, match="subject id"):
        keys.create_key("b/../other")
