"""A borrower's file as the aggregator needs it: account, identity (compliance owns it; stored sealed), KYC status
and credit profile (risk owns it). I/O at this edge only: the services receive a loaded ``BorrowerFile``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from sqlalchemy import delete, select

from compliance import BorrowerFacts
from compliance.audit import AuditKind
from compliance.errors import KycProviderError, SubjectKeyMissing, WebhookRejected
from compliance.kyc import IdentityDocument, IdentityProfile, KycProvider, KycStatus, review_of, verify_webhook
from compliance.pii import KeyProvider, PiiVault, RetentionHold, erase_subject
from compliance.sanctions.review import PriorReview
from risk.profile import CreditProfile
from store.aggregator import LoanRow
from store.api import BorrowerRow
from store.compliance import (
    BorrowerIdentityRow,
    ComplianceDecisionRow,
    KycApplicantRow,
    SqlAuditLog,
    SqlKycRepository,
    SqlReplayGuard,
)
from store.db import Database
from store.risk import CreditProfileRow
from store.sanctions_reviews import SqlSanctionsReviewRepository

REG_B_RETENTION = timedelta(days=25 * 30 + 10)  # 25 months, rounded up
BSA_RETENTION = timedelta(days=5 * 366)


@dataclass(frozen=True, slots=True)
class BorrowerFile:
    id: str
    wallet: ChecksumAddress
    jurisdiction: str
    identity: IdentityProfile | None
    kyc: KycStatus | None
    profile: CreditProfile
    military_id: str | None = None  # SSN or DoD ID for the MLA status check; kept sealed with the identity
    sanctions_reviews: tuple[PriorReview, ...] = ()  # reviewers' verdicts on past sanctions name hits

    def facts(self) -> BorrowerFacts:
        """What compliance screens: wallet, name, jurisdiction and the sanctions verdicts already given."""
        return BorrowerFacts(self.id, self.wallet, self.full_name, self.jurisdiction, self.sanctions_reviews)

    @property
    def full_name(self) -> str:
        return "" if self.identity is None else f"{self.identity.first_name} {self.identity.last_name}"


@dataclass(frozen=True, slots=True)
class _SealedIdentity:
    """A borrower's identity as stored (sealed), kept to put it back."""

    country: str
    sealed: bytes
    updated_at: datetime


class BorrowerFiles:
    """``keys``: the key store of the subjects' data keys, apart from ``database`` (which holds only ciphertext)."""

    def __init__(self, database: Database, keys: KeyProvider) -> None:
        self._db = database
        self._keys = keys

    def load(self, borrower_id: str) -> BorrowerFile | None:
        with self._db.unit_of_work() as uow:
            account = uow.session.get(BorrowerRow, borrower_id)
            if account is None:
                return None
            profile_row = uow.session.get(CreditProfileRow, borrower_id)
            identity_row = uow.session.get(BorrowerIdentityRow, borrower_id)
            identity, military_id = None, None
            if identity_row is not None:
                identity, military_id = self._unseal(PiiVault(self._keys), borrower_id, identity_row.sealed_identity)
            return BorrowerFile(
                id=account.id,
                wallet=to_checksum_address(account.wallet_address),
                jurisdiction=account.jurisdiction,
                identity=identity,
                kyc=SqlKycRepository(uow.session).latest_for_subject(borrower_id),
                profile=CreditProfile.model_validate(profile_row.profile) if profile_row else CreditProfile(),
                military_id=military_id,
                sanctions_reviews=tuple(SqlSanctionsReviewRepository(uow.session).prior_for(borrower_id)),
            )

    def _unseal(self, vault: PiiVault, borrower_id: str, sealed: bytes) -> tuple[IdentityProfile | None, str | None]:
        """The identity and military id, or None once erased (its key destroyed)."""
        try:
            identity, military_id = _identity_from_json(vault.decrypt(borrower_id, "identity", sealed))
        except SubjectKeyMissing:
            return None, None
        return identity, military_id

    def erase_identity(self, borrower_id: str, now: datetime) -> None:
        """Erase the borrower's personal data, unless a record-retention period still runs (ErasureRefused):
        Regulation B keeps credit-decision records 25 months; loans are kept 5 years (BSA).

        The subject's key is destroyed in the key store first (crypto-shredding: every sealed copy — the identity,
        the screened names in decision records — is unreadable from then on, backups included), then what is derived
        from the identity is deleted: the sealed identity and its country, the credit profile, the KYC applicants and
        their reasons. Decision records stay (their hashes still verify; their sealed PII cannot be opened). Deleted
        rows are overwritten (SQLite ``secure_delete``) and the write-ahead log truncated."""
        with self._db.unit_of_work() as uow:
            holds = [
                RetentionHold("Regulation B record retention (12 CFR 1002.12)", decided, REG_B_RETENTION)
                for decided in uow.session.scalars(
                    select(ComplianceDecisionRow.decided_at).where(ComplianceDecisionRow.subject_ref == borrower_id)
                )
            ] + [
                RetentionHold("Bank Secrecy Act record retention (31 CFR 1010.430)", opened, BSA_RETENTION)
                for opened in uow.session.scalars(select(LoanRow.created_at).where(LoanRow.borrower_id == borrower_id))
            ]
            erase_subject(self._keys, borrower_id, holds, now)
            uow.session.execute(delete(BorrowerIdentityRow).where(BorrowerIdentityRow.subject_id == borrower_id))
            uow.session.execute(delete(CreditProfileRow).where(CreditProfileRow.borrower_id == borrower_id))
            uow.session.execute(delete(KycApplicantRow).where(KycApplicantRow.subject_id == borrower_id))
            SqlAuditLog(uow.session).append(
                AuditKind.PII_ERASURE,
                borrower_id,
                {"erased": ["subject key", "identity", "credit profile", "KYC applicants"]},
                now,
            )
            uow.commit()
        self._db.flush_deleted()

    def save_profile(self, borrower_id: str, profile: CreditProfile) -> None:
        with self._db.unit_of_work() as uow:
            row = uow.session.get(CreditProfileRow, borrower_id)
            document = profile.model_dump(mode="json")
            if row is None:
                uow.session.add(
                    CreditProfileRow(borrower_id=borrower_id, profile=document, updated_at=datetime.now(UTC))
                )
            else:
                row.profile, row.updated_at = document, datetime.now(UTC)
            uow.commit()

    async def verify_identity(
        self,
        borrower_id: str,
        identity: IdentityProfile,
        document: IdentityDocument,
        provider: KycProvider,
        military_id: str | None = None,
    ) -> KycStatus:
        """Create the KYC applicant, persist it (PENDING) with the sealed identity, open the verification session with
        the document. The verdict and tier arrive later in the provider's signed webhook (``apply_kyc_review``);
        the answer is the applicant's status as stored when the session opened.

        The applicant is stored before the session opens (the provider's webhook may arrive before the session's
        answer does, and names only applicants we know). When the session cannot be opened, that applicant is
        withdrawn and the identity stored before is put back, so the borrower's KYC status is what it was (a
        verified borrower trying again while the provider is down keeps their tier).

        Raises:
            KycProviderError: the provider could not be reached or answered something unusable; nothing is kept.
        """
        now = datetime.now(UTC)
        applicant = await provider.create_applicant(borrower_id, identity, now)
        before = await asyncio.to_thread(self._store_applicant, borrower_id, identity, military_id, applicant)
        try:
            await provider.submit_document(applicant.applicant_id, document, now)
        except KycProviderError:
            await asyncio.to_thread(self._withdraw_applicant, borrower_id, applicant.applicant_id, before)
            raise
        stored = await asyncio.to_thread(self._applicant, applicant.applicant_id)
        return stored or applicant

    def _store_applicant(
        self, borrower_id: str, identity: IdentityProfile, military_id: str | None, applicant: KycStatus
    ) -> _SealedIdentity | None:
        """Store the applicant and the sealed identity; the identity stored before, if any."""
        with self._db.unit_of_work() as uow:
            sealed = PiiVault(self._keys).encrypt(borrower_id, "identity", _identity_to_json(identity, military_id))
            row = uow.session.get(BorrowerIdentityRow, borrower_id)
            before = None if row is None else _SealedIdentity(row.country, row.sealed_identity, row.updated_at)
            if row is None:
                uow.session.add(
                    BorrowerIdentityRow(
                        subject_id=borrower_id,
                        country=identity.country,
                        sealed_identity=sealed,
                        updated_at=applicant.updated_at,
                    )
                )
            else:
                row.country, row.sealed_identity, row.updated_at = identity.country, sealed, applicant.updated_at
            SqlKycRepository(uow.session).save(applicant)
            uow.commit()
        return before

    def _withdraw_applicant(self, borrower_id: str, applicant_id: str, before: _SealedIdentity | None) -> None:
        """Undo ``_store_applicant``: the applicant gone, the identity as it was (none, or the one stored before)."""
        with self._db.unit_of_work() as uow:
            SqlKycRepository(uow.session).remove(applicant_id)
            row = uow.session.get(BorrowerIdentityRow, borrower_id)
            if row is not None and before is None:  # (erased meanwhile: nothing to put back)
                uow.session.delete(row)
            elif row is not None and before is not None:
                row.country, row.sealed_identity, row.updated_at = before.country, before.sealed, before.updated_at
            uow.commit()

    def _applicant(self, applicant_id: str) -> KycStatus | None:
        with self._db.unit_of_work() as uow:
            return SqlKycRepository(uow.session).get(applicant_id)

    def apply_kyc_review(self, body: bytes, headers: Mapping[str, str], secret: bytes, now: datetime) -> KycStatus:
        """Apply a KYC provider's signed webhook: verified (signature, freshness, event id not seen before), for an
        applicant we created for the same subject. The only way a KYC tier is set.

        Raises:
            WebhookRejected: the delivery does not verify, is a replay, or names an applicant we do not know.
        """
        with self._db.unit_of_work() as uow:
            review = review_of(verify_webhook(body, headers, secret, now, SqlReplayGuard(uow.session)))
            repository = SqlKycRepository(uow.session)
            known = repository.get(review.applicant_id)
            if known is None or known.subject_id != review.subject_id:
                raise WebhookRejected(f"unknown applicant {review.applicant_id}")
            status = review.status(now)
            repository.save(status)
            uow.commit()
        return status


def _identity_to_json(identity: IdentityProfile, military_id: str | None) -> str:
    return json.dumps(
        {
            "first_name": identity.first_name,
            "last_name": identity.last_name,
            "date_of_birth": identity.date_of_birth.isoformat(),
            "country": identity.country,
            "military_id": military_id,
        }
    )


def _identity_from_json(text: str) -> tuple[IdentityProfile, str | None]:
    raw = json.loads(text)
    identity = IdentityProfile(
        raw["first_name"], raw["last_name"], date.fromisoformat(raw["date_of_birth"]), raw["country"]
    )
    return identity, raw.get("military_id")
