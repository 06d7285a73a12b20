"""The compliance repositories against a real PostgreSQL, schema built by the Alembic history."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from compliance.decisions import DecisionKind, decide
from compliance.errors import ErasureRefused, SubjectKeyMissing, WebhookRejected
from compliance.jurisdiction import Reason
from compliance.kyc import KycState, KycStatus, KycTier, sign_webhook, verify_webhook
from compliance.pii import REGULATION_B, PiiVault, RetentionHold, erase_subject
from store.compliance import SqlDecisionRepository, SqlKycRepository, SqlReplayGuard
from store.db import Database
from store.keystore import SqlKeyStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
MASTER = os.urandom(32)


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("compliance_store"))
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def keys(postgres_schema: Callable[[str], str]) -> Iterator[SqlKeyStore]:
    """The key store on a PostgreSQL schema of its own, apart from the ciphertext's."""
    store = SqlKeyStore(postgres_schema("compliance_keys"), MASTER)
    yield store
    store.dispose()


def test_decision_round_trip_and_erasure_keeps_hashes(database: Database, keys: SqlKeyStore) -> None:
    subject = f"b-{os.urandom(4).hex()}"
    with database.unit_of_work() as uow:
        vault = PiiVault(keys)
        sealed = vault.encrypt(subject, "screened-name", "Jane Doe", create_key=True)
        inputs = {"borrowerId": subject, "amount": Decimal("1500.00")}
        record = decide(
            DecisionKind.CREDIT_REQUEST,
            subject,
            inputs,
            [Reason("kyc.not-approved", "KYC is not approved")],
            {"jurisdictions": "jurisdictions@2026-11-01"},
            NOW,
            pii_sealed=sealed,
        )
        SqlDecisionRepository(uow.session).add(record)
        uow.commit()
    with database.unit_of_work() as uow:
        repo = SqlDecisionRepository(uow.session)
        loaded = repo.get(record.decision_id)
        assert loaded == record
        assert loaded is not None
        assert repo.stored_hash(record.decision_id) == loaded.record_hash() == record.record_hash()
        assert PiiVault(keys).decrypt(subject, "screened-name", loaded.pii_sealed or b"") == "Jane Doe"
        hold = RetentionHold("Regulation B", NOW, REGULATION_B)
        with pytest.raises(ErasureRefused):
            erase_subject(keys, subject, [hold], NOW + timedelta(days=1))
        erase_subject(keys, subject, [hold], NOW + REGULATION_B + timedelta(seconds=1))
        uow.commit()
    with database.unit_of_work() as uow:
        loaded = SqlDecisionRepository(uow.session).for_subject(subject)[0]
        with pytest.raises(SubjectKeyMissing):
            PiiVault(keys).decrypt(subject, "screened-name", loaded.pii_sealed or b"")
        assert loaded.record_hash() == record.record_hash()
        loaded.verify_inputs(inputs)


def test_kyc_status_persisted(database: Database) -> None:
    subject = f"b-{os.urandom(4).hex()}"
    with database.unit_of_work() as uow:
        repo = SqlKycRepository(uow.session)
        repo.save(KycStatus("app-" + subject, subject, KycState.PENDING, KycTier.NONE, (), NOW))
        repo.save(
            KycStatus("app-" + subject, subject, KycState.APPROVED, KycTier.STANDARD, (), NOW + timedelta(minutes=1))
        )
        uow.commit()
    with database.unit_of_work() as uow:
        status = SqlKycRepository(uow.session).latest_for_subject(subject)
        assert status is not None
        assert (status.state, status.tier) == (KycState.APPROVED, KycTier.STANDARD)


def test_replayed_webhook_refused_across_sessions(database: Database) -> None:
    body = f'{{"eventId": "{os.urandom(8).hex()}", "state": "approved"}}'.encode()
    headers = sign_webhook(body, b"secret", NOW)
    with database.unit_of_work() as uow:
        assert verify_webhook(body, headers, b"secret", NOW, SqlReplayGuard(uow.session))["state"] == "approved"
        uow.commit()
    with database.unit_of_work() as uow, pytest.raises(WebhookRejected, match="already delivered"):
        verify_webhook(body, headers, b"secret", NOW, SqlReplayGuard(uow.session))


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_a_delivery_rolled_back_is_not_remembered(engine: str, database: Database, tmp_path: Path) -> None:
    """A webhook whose handling failed (its unit of work rolled back) is accepted when the sender retries it."""
    db = database if engine == "postgresql" else Database(f"sqlite:///{tmp_path}/replays.db")
    if engine == "sqlite":
        db.migrate()
    event_id = os.urandom(8).hex()
    try:
        with db.unit_of_work() as uow:
            assert SqlReplayGuard(uow.session).remember(event_id, NOW)  # left without commit: rolled back
        with db.unit_of_work() as uow:
            assert SqlReplayGuard(uow.session).remember(event_id, NOW)
            uow.commit()
        with db.unit_of_work() as uow:
            assert not SqlReplayGuard(uow.session).remember(event_id, NOW)
    finally:
        if engine == "sqlite":
            db.dispose()
