"""The borrower files and accounts on the in-memory store: loading a file, the KYC flow (stored before the session
opens, withdrawn when the provider fails, set only by a verified webhook), erasure under retention holds, and the
one-wallet-one-borrower rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from eth_utils.address import to_checksum_address

from aggregator.borrower_accounts import BorrowerAccounts
from aggregator.borrower_store import InMemoryBorrowerStore, LoanOnFile
from aggregator.borrowers import BSA_RETENTION, BorrowerFiles
from aggregator.errors import BorrowerAlreadyRegistered, BorrowerNotFound
from compliance.audit import AuditKind
from compliance.errors import ErasureRefused, KycProviderError, SubjectKeyMissing, WebhookRejected
from compliance.kyc import IdentityDocument, IdentityProfile, KycState, KycStatus, KycTier, LocalKycProvider
from compliance.pii import InMemoryKeyProvider, PiiVault
from compliance.sanctions.review import PriorReview, ReviewState
from risk.profile import CreditProfile

SECRET = b"kyc-secret"
WALLET = "0x" + "aB" * 20
IDENTITY = IdentityProfile("Augusta", "Byron-King", date(1985, 12, 10), "US-FL")
DOCUMENT = IdentityDocument("passport", "P7654321", "Augusta", "Byron-King", date(1985, 12, 10), "US", date(2031, 1, 1))
PROFILE = CreditProfile.model_validate({"savings": "2000", "employment_years": "8", "housing": "own"})


class _Down(LocalKycProvider):
    """Creates applicants but cannot open a verification session."""

    async def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus:
        raise KycProviderError("the identity provider did not answer")


@pytest.fixture
def store() -> InMemoryBorrowerStore:
    return InMemoryBorrowerStore()


@pytest.fixture
def keys() -> InMemoryKeyProvider:
    return InMemoryKeyProvider()


def _registered(store: InMemoryBorrowerStore) -> str:
    return BorrowerAccounts(store).register(WALLET.lower(), "us-fl").id


async def _verified(files: BorrowerFiles, borrower_id: str) -> KycStatus:
    kyc = LocalKycProvider(SECRET)
    await files.verify_identity(borrower_id, IDENTITY, DOCUMENT, kyc, military_id="123456789")
    body, headers = kyc.outbox[-1]
    return files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))


async def test_a_verified_borrower_s_file_carries_identity_kyc_profile_and_past_verdicts(
    store: InMemoryBorrowerStore, keys: InMemoryKeyProvider
) -> None:
    files = BorrowerFiles(store, keys)
    assert files.load("nobody") is None
    borrower_id = _registered(store)
    bare = files.load(borrower_id)
    assert bare is not None
    assert (bare.identity, bare.kyc, bare.profile, bare.full_name) == (None, None, CreditProfile(), "")
    assert bare.jurisdiction == "US-FL"
    assert bare.wallet == to_checksum_address(WALLET)

    status = await _verified(files, borrower_id)
    files.save_profile(borrower_id, PROFILE)
    verdict = PriorReview(7, "fp", ReviewState.CLEARED)
    store.tables.prior_reviews[borrower_id] = [verdict]

    loaded = files.load(borrower_id)
    assert loaded is not None
    assert status.state is KycState.APPROVED
    assert loaded.kyc == status
    assert (loaded.identity, loaded.military_id, loaded.full_name) == (IDENTITY, "123456789", "Augusta Byron-King")
    assert loaded.profile == PROFILE
    assert loaded.facts().sanctions_reviews == (verdict,)
    sealed = store.tables.identities[borrower_id].sealed
    assert b"Byron-King" not in sealed, "stored sealed, never in the clear"


async def test_a_provider_that_fails_leaves_the_kyc_status_and_identity_as_they_were(
    store: InMemoryBorrowerStore, keys: InMemoryKeyProvider
) -> None:
    files = BorrowerFiles(store, keys)
    first = "b-first"
    with pytest.raises(KycProviderError):
        await files.verify_identity(first, IDENTITY, DOCUMENT, _Down(SECRET))
    assert store.tables.identities == {}, "nothing kept"
    assert store.tables.applicants == {}

    borrower_id = _registered(store)
    verified = await _verified(files, borrower_id)
    before = store.tables.identities[borrower_id]
    other = IdentityProfile("Ada", "Lovelace", date(1985, 12, 10), "US-NY")
    with pytest.raises(KycProviderError):
        await files.verify_identity(borrower_id, other, DOCUMENT, _Down(SECRET))
    loaded = files.load(borrower_id)
    assert loaded is not None
    assert verified.tier is not KycTier.NONE
    assert loaded.kyc == verified, "a verified borrower keeps their tier"
    assert store.tables.identities[borrower_id] == before
    assert loaded.identity == IDENTITY


async def test_a_failed_submission_does_not_undo_another_submitted_meanwhile(
    store: InMemoryBorrowerStore, keys: InMemoryKeyProvider
) -> None:
    """Two KYC submissions at once: while the first one's session is being opened, the second stores its identity
    and opens its own; the first then fails. Withdrawing the first must not put back the identity from before it over
    the second's (whose verdict would then never be current)."""
    files = BorrowerFiles(store, keys)
    borrower_id = _registered(store)
    await _verified(files, borrower_id)
    second = IdentityProfile("Ada", "Lovelace", date(1985, 12, 10), "US-NY")
    meanwhile = LocalKycProvider(SECRET)

    class _RacedThenDown(LocalKycProvider):
        async def submit_document(self, applicant_id: str, document: IdentityDocument, now: datetime) -> KycStatus:
            await files.verify_identity(borrower_id, second, DOCUMENT, meanwhile)  # the other submission lands
            raise KycProviderError("the identity provider did not answer")

    with pytest.raises(KycProviderError):
        await files.verify_identity(borrower_id, IDENTITY, DOCUMENT, _RacedThenDown(SECRET))
    loaded = files.load(borrower_id)
    assert loaded is not None
    assert loaded.identity == second, "the second submission's identity stays on file"
    body, headers = meanwhile.outbox[-1]
    files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))
    reloaded = files.load(borrower_id)
    assert reloaded is not None
    assert reloaded.kyc is not None
    assert reloaded.kyc.applicant_id == store.tables.identities[borrower_id].applicant_id, "its verdict is current"


async def test_a_kyc_webhook_is_applied_once_and_only_for_an_applicant_we_created(
    store: InMemoryBorrowerStore, keys: InMemoryKeyProvider
) -> None:
    files = BorrowerFiles(store, keys)
    kyc = LocalKycProvider(SECRET)
    await files.verify_identity("b-1", IDENTITY, DOCUMENT, kyc)
    body, headers = kyc.outbox[-1]
    files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))
    with pytest.raises(WebhookRejected):  # the same delivery again: a replay
        files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))

    stranger = LocalKycProvider(SECRET)  # an applicant this platform never stored
    await stranger.create_applicant("b-2", IDENTITY, datetime.now(UTC))
    applicant = next(iter(stranger._applicants))
    await stranger.submit_document(applicant, DOCUMENT, datetime.now(UTC))
    body, headers = stranger.outbox[-1]
    with pytest.raises(WebhookRejected, match="unknown applicant"):
        files.apply_kyc_review(body, headers, SECRET, datetime.now(UTC))
    assert all(status.subject_id == "b-1" for status in store.tables.applicants.values())


async def test_erasure_waits_for_every_retention_period_then_shreds_and_deletes(
    store: InMemoryBorrowerStore, keys: InMemoryKeyProvider
) -> None:
    files = BorrowerFiles(store, keys)
    borrower_id = _registered(store)
    await _verified(files, borrower_id)
    files.save_profile(borrower_id, PROFILE)
    decided = datetime(2026, 1, 5, tzinfo=UTC)
    store.tables.decision_times[borrower_id] = [decided]
    opened = decided - timedelta(days=6 * 365)  # a long loan opened six years before: the opening counts for nothing
    store.tables.loans[borrower_id] = [LoanOnFile(opened, None)]
    sealed = store.tables.identities[borrower_id].sealed

    with pytest.raises(ErasureRefused, match="Bank Secrecy Act") as refused:  # open: refused, no end in sight
        files.erase_identity(borrower_id, decided + timedelta(days=800))
    assert refused.value.retain_until is None
    store.tables.loans[borrower_id] = [LoanOnFile(opened, decided + timedelta(days=30))]  # closed: 5 years from then
    with pytest.raises(ErasureRefused, match="Bank Secrecy Act") as refused:  # the longest hold is named
        files.erase_identity(borrower_id, decided + timedelta(days=800))
    assert refused.value.retain_until == decided + timedelta(days=30) + BSA_RETENTION
    assert borrower_id in store.tables.identities, "refused: nothing deleted"
    assert store.flushes == 0

    store.tables.loans[borrower_id] = []
    files.erase_identity(borrower_id, decided + timedelta(days=800))  # after Regulation B's 25 months
    assert (store.tables.identities, store.tables.profiles, store.tables.applicants) == ({}, {}, {})
    assert store.flushes == 1
    assert [entry.kind for entry in store.tables.audit.pending] == [AuditKind.PII_ERASURE.value]
    with pytest.raises(SubjectKeyMissing):
        PiiVault(keys).decrypt(borrower_id, "identity", sealed)
    loaded = files.load(borrower_id)
    assert loaded is not None, "the account stays"
    assert (loaded.identity, loaded.kyc) == (None, None)


def test_a_wallet_is_registered_once_and_a_webhook_belongs_to_a_registered_borrower(
    store: InMemoryBorrowerStore,
) -> None:
    accounts = BorrowerAccounts(store)
    borrower_id = _registered(store)
    with pytest.raises(BorrowerAlreadyRegistered, match="already registered"):
        accounts.register(WALLET.lower(), "US-NY")
    assert len(store.tables.accounts) == 1
    assert accounts.exists(borrower_id)
    assert not accounts.exists("nobody")

    assert accounts.webhook_url(borrower_id) is None
    accounts.set_webhook(borrower_id, "https://borrower.example/events", "sealed")
    assert accounts.webhook_url(borrower_id) == "https://borrower.example/events"
    assert store.tables.accounts[borrower_id].webhook_secret_sealed == "sealed"
    accounts.set_webhook(borrower_id, None, None)
    assert accounts.webhook_url(borrower_id) is None
    with pytest.raises(BorrowerNotFound):
        accounts.set_webhook("nobody", "https://borrower.example/events", "sealed")
