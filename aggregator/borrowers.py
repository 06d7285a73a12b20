"""A borrower's file as the aggregator needs it: account, identity (compliance owns it; stored sealed), KYC status
and credit profile (risk owns it). The services receive a loaded ``BorrowerFile``; ``BorrowerFiles`` loads and
changes files through the ``BorrowerStore`` repository (``aggregator.borrower_store``), owning each unit of work.

``Borrowers`` is the interface the API and the services depend on (the quoting and acceptance services through the
``BorrowerFile`` it loads, the sanctions review queue for the name a reviewer sees): a wrapper — a cache — implements
it around ``BorrowerFiles``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from aggregator.borrower_store import BorrowerStore, SealedIdentity, StoredFile
from compliance import BorrowerFacts
from compliance.audit import AuditKind
from compliance.errors import KycProviderError, SubjectKeyMissing, UnusableKycEvent
from compliance.kyc import IdentityDocument, IdentityProfile, KycProvider, KycStatus, review_of, verify_webhook
from compliance.pii import KeyProvider, PiiVault, RetentionHold, erase_subject
from compliance.sanctions.review import PriorReview
from risk.profile import CreditProfile

log = logging.getLogger(__name__)
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
        """What compliance screens: wallet, name, jurisdiction and the sanctions verdicts already given, the date of
        birth (with the name, the identity a verdict on a name not screened in Latin script is for; the age of
        majority) and the identity's country of residence."""
        return BorrowerFacts(
            self.id,
            self.wallet,
            self.full_name,
            self.jurisdiction,
            self.sanctions_reviews,
            None if self.identity is None else self.identity.date_of_birth,
            None if self.identity is None else self.identity.country,
        )

    @property
    def full_name(self) -> str:
        return "" if self.identity is None else f"{self.identity.first_name} {self.identity.last_name}"


class Borrowers(Protocol):
    """Borrower files: loaded for a request, and every change that alters one (a cache in front of ``BorrowerFiles``
    drops its copy on these)."""

    def load(self, borrower_id: str) -> BorrowerFile | None: ...

    def stored(self, borrower_id: str) -> StoredFile | None:
        """The file as stored, its identity still sealed (no key-store read): for what does not use the identity."""
        ...

    def file_of(self, stored: StoredFile) -> BorrowerFile:
        """The file of one read with something else (the caller's API key: ``api.auth.authenticate_with_file``)."""
        ...

    def save_profile(self, borrower_id: str, profile: CreditProfile) -> None: ...

    def erase_identity(self, borrower_id: str, now: datetime) -> None: ...

    async def verify_identity(
        self,
        borrower_id: str,
        identity: IdentityProfile,
        document: IdentityDocument,
        provider: KycProvider,
        military_id: str | None = None,
    ) -> KycStatus: ...

    def apply_kyc_review(self, body: bytes, headers: Mapping[str, str], secret: bytes, now: datetime) -> KycStatus: ...

    def forget(self, borrower_id: str) -> None:
        """The borrower's file changed elsewhere (a reviewer's sanctions verdict): a copy kept of it is stale."""
        ...


class BorrowerFiles:
    """``keys``: the key store of the subjects' data keys, apart from ``store`` (which holds only ciphertext)."""

    def __init__(self, store: BorrowerStore, keys: KeyProvider) -> None:
        self._store = store
        self._keys = keys

    def load(self, borrower_id: str) -> BorrowerFile | None:
        stored = self.stored(borrower_id)
        return None if stored is None else self.file_of(stored)

    def stored(self, borrower_id: str) -> StoredFile | None:
        with self._store.unit_of_work() as uow:
            return uow.borrowers.stored_file(borrower_id)

    def file_of(self, stored: StoredFile) -> BorrowerFile:
        """The file as the services need it, from the file as stored: the identity unsealed (None once erased).

        Raises:
            PiiError: the key store failed (unreachable, throttled, or its master key changed): the identity cannot
                be opened now, which is not an erasure.
        """
        identity, military_id = None, None
        if stored.identity is not None:
            identity, military_id = self._unseal(PiiVault(self._keys), stored.account.id, stored.identity.sealed)
        return BorrowerFile(
            id=stored.account.id,
            wallet=to_checksum_address(stored.account.wallet_address),
            jurisdiction=stored.account.jurisdiction,
            identity=identity,
            kyc=stored.kyc,
            profile=stored.profile or CreditProfile(),
            military_id=military_id,
            sanctions_reviews=stored.sanctions_reviews,
        )

    def forget(self, borrower_id: str) -> None:
        """Nothing kept here: every ``load`` reads the store."""

    def _unseal(self, vault: PiiVault, borrower_id: str, sealed: bytes) -> tuple[IdentityProfile | None, str | None]:
        """The identity and military id, or None once erased (its key destroyed)."""
        try:
            identity, military_id = _identity_from_json(vault.decrypt(borrower_id, "identity", sealed))
        except SubjectKeyMissing:
            return None, None
        return identity, military_id

    def erase_identity(self, borrower_id: str, now: datetime) -> None:
        """Erase the borrower's personal data, unless a record-retention period still runs (ErasureRefused):
        Regulation B keeps credit-decision records 25 months; the Bank Secrecy Act keeps the identity while any loan
        is open (active or in default) and 5 years after each one closed (repaid, liquidated, written off,
        cancelled).

        The subject's key is destroyed in the key store first (crypto-shredding: every sealed copy — the identity,
        the screened names in decision records — is unreadable from then on, backups included), then what is derived
        from the identity is deleted: the sealed identity and its country, the credit profile, the KYC applicants and
        their reasons. Decision records stay (their hashes still verify; their sealed PII cannot be opened). Deleted
        rows are overwritten (SQLite ``secure_delete``) and the write-ahead log truncated.

        The account is held first (``lock_for_erasure``), so the retention check and the deletion are one step
        against decisions being written about the borrower: a decision committed before is seen (and holds the
        erasure), one written after finds the key gone and seals no name (``PiiVault.encrypt`` never creates a key
        but for a new identity)."""
        with self._store.unit_of_work() as uow:
            uow.borrowers.lock_for_erasure(borrower_id)
            holds = [
                RetentionHold("Regulation B record retention (12 CFR 1002.12)", decided, REG_B_RETENTION)
                for decided in uow.borrowers.decision_times(borrower_id)
            ] + [
                # the identifying information is kept 5 years after the account closes, 31 CFR 1020.220(a)(3)(ii):
                # none of it may go while a loan is open (since None), whenever it was opened
                RetentionHold(
                    "Bank Secrecy Act record retention (31 CFR 1020.220(a)(3)(ii)): 5 years after each loan closes",
                    loan.closed_at,
                    BSA_RETENTION,
                )
                for loan in uow.borrowers.loans_on_file(borrower_id)
            ]
            erase_subject(self._keys, borrower_id, holds, now)
            uow.borrowers.erase(borrower_id)
            uow.audit.append(
                AuditKind.PII_ERASURE,
                borrower_id,
                {"erased": ["subject key", "identity", "credit profile", "KYC applicants"]},
                now,
            )
            uow.commit()
        self._store.flush_deleted()

    def save_profile(self, borrower_id: str, profile: CreditProfile) -> None:
        with self._store.unit_of_work() as uow:
            uow.borrowers.save_profile(borrower_id, profile, datetime.now(UTC))
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
    ) -> SealedIdentity | None:
        """Store the applicant and the sealed identity; the identity stored before, if any."""
        vault = PiiVault(self._keys)  # a new identity: the one seal that creates the subject's key when it has none
        sealed = vault.encrypt(borrower_id, "identity", _identity_to_json(identity, military_id), create_key=True)
        with self._store.unit_of_work() as uow:
            before = uow.borrowers.identity(borrower_id)
            # the identity names its applicant: that applicant's verdict, and no other's, is the borrower's KYC status
            current = SealedIdentity(identity.country, sealed, applicant.updated_at, applicant.applicant_id)
            uow.borrowers.put_identity(borrower_id, current)
            uow.kyc.save(applicant)
            uow.commit()
        return before

    def _withdraw_applicant(self, borrower_id: str, applicant_id: str, before: SealedIdentity | None) -> None:
        """Undo ``_store_applicant``: the applicant gone, the identity as it was (none, or the one stored before)."""
        with self._store.unit_of_work() as uow:
            uow.kyc.remove(applicant_id)
            on_file = uow.borrowers.identity(borrower_id)
            # erased meanwhile: nothing to put back; replaced meanwhile by another submission: that one stays
            if on_file is not None and on_file.applicant_id == applicant_id:
                if before is None:
                    uow.borrowers.remove_identity(borrower_id)
                else:
                    uow.borrowers.put_identity(borrower_id, before)
            uow.commit()

    def _applicant(self, applicant_id: str) -> KycStatus | None:
        with self._store.unit_of_work() as uow:
            return uow.kyc.get(applicant_id)

    def apply_kyc_review(self, body: bytes, headers: Mapping[str, str], secret: bytes, now: datetime) -> KycStatus:
        """Apply a KYC provider's signed webhook: verified (signature, freshness, event id not seen before), for an
        applicant we created for the same subject. The only way a KYC tier is set.

        The verdict is kept with its applicant; it is the borrower's KYC status only while that applicant is the one
        the identity on file was submitted with (``SealedIdentity.applicant_id``). A late verdict on an applicant the
        borrower has since replaced (a new ``POST /me/kyc`` with another identity) verified the identity submitted
        then, not the one on file: it is recorded, and the file's status stays the current applicant's.

        A verdict reached before the one stored for its applicant (``KycReview.older_than``: a late redelivery of
        an approval after a re-review rejected the applicant) is taken — its event id remembered, the delivery
        answered 2xx so the provider stops retrying — and ignored, logged; the answer is the status stored.

        Raises:
            WebhookRejected: the delivery does not verify or is a replay; ``UnusableKycEvent`` (one of them) when it
                verifies but names an applicant we do not know, is not an applicant review, or dates its verdict
                ahead of now.
        """
        with self._store.unit_of_work() as uow:
            review = review_of(verify_webhook(body, headers, secret, now, uow.replays), now)
            known = uow.kyc.get(review.applicant_id)
            if known is None or known.subject_id != review.subject_id:
                raise UnusableKycEvent(f"unknown applicant {review.applicant_id}")
            if review.older_than(known):
                uow.commit()  # the event id: a redelivery of it is a replay
                log.warning(
                    "KYC verdict %s on applicant %s ignored: reviewed at %s, before the %s verdict stored (reviewed "
                    "at %s)",
                    review.event_id,
                    review.applicant_id,
                    review.reviewed_at,
                    known.state.value,
                    known.reviewed_at,
                )
                return known
            status = review.status(now)
            uow.kyc.save(status)
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
