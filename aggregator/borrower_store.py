"""Where borrower files are kept, as the aggregator sees it: a small repository interface over plain values (the
account, the sealed identity, the credit profile, KYC applicants, past sanctions verdicts and the dates that hold a
record under retention), opened a unit of work at a time. The SQL implementation is ``store.borrowers``;
``InMemoryBorrowerStore`` is the fake for unit tests. Repositories never commit; the services do, through the unit of
work."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from aggregator.errors import BorrowerAlreadyRegistered
from aggregator.snapshots import SnapshotUnitOfWork, rolled_back_on_exit
from compliance.audit import AuditLog, InMemoryAuditLog
from compliance.kyc import InMemoryReplayGuard, KycStatus, ReplayGuard
from compliance.sanctions.review import PriorReview
from risk.profile import CreditProfile


@dataclass(frozen=True, slots=True)
class BorrowerAccount:
    """A registered borrower: who registered which wallet, and where its loan events go."""

    id: str
    wallet_address: str  # checksummed
    jurisdiction: str
    created_at: datetime
    webhook_url: str | None = None
    webhook_secret_sealed: str | None = None  # the events' HMAC secret, sealed (``providers.secrets``)


@dataclass(frozen=True, slots=True)
class SealedIdentity:
    """A borrower's identity as stored: sealed under the subject's key, with its country in the clear, and the KYC
    applicant it was submitted with (whose verdict, and no other applicant's, is the borrower's KYC status)."""

    country: str
    sealed: bytes
    updated_at: datetime
    applicant_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoanOnFile:
    """One of the borrower's loans as record retention sees it: when it opened, and when it closed (None: still open
    — active or in default). The Bank Secrecy Act keeps the identity 5 years after the close."""

    opened_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A borrower's file as stored, read at once: the account, the credit profile given (None: none yet), the sealed
    identity, the KYC applicant it was submitted with (the current KYC status; None without an identity) and the
    decided sanctions reviews. ``BorrowerFiles.file_of`` opens it."""

    account: BorrowerAccount
    profile: CreditProfile | None
    identity: SealedIdentity | None
    kyc: KycStatus | None
    sanctions_reviews: tuple[PriorReview, ...]


class KycRepository(Protocol):
    """The KYC applicants (``compliance.kyc.KycStatus``), one per verification session."""

    def save(self, status: KycStatus) -> None: ...

    def remove(self, applicant_id: str) -> None: ...

    def get(self, applicant_id: str) -> KycStatus | None: ...

    def latest_for_subject(self, subject_id: str) -> KycStatus | None: ...


class BorrowerRepository(Protocol):
    def account(self, borrower_id: str) -> BorrowerAccount | None: ...

    def stored_file(self, borrower_id: str) -> StoredFile | None:
        """The borrower's whole file as stored (None: no such account), in as few reads as the store allows."""
        ...

    def account_by_wallet(self, wallet_address: str) -> BorrowerAccount | None: ...

    def add_account(self, account: BorrowerAccount) -> None:
        """Raises BorrowerAlreadyRegistered when the wallet is registered already (also by a concurrent writer)."""
        ...

    def set_webhook(self, borrower_id: str, url: str | None, secret_sealed: str | None) -> None: ...

    def profile(self, borrower_id: str) -> CreditProfile | None: ...

    def save_profile(self, borrower_id: str, profile: CreditProfile, now: datetime) -> None: ...

    def identity(self, borrower_id: str) -> SealedIdentity | None: ...

    def put_identity(self, borrower_id: str, identity: SealedIdentity) -> None: ...

    def remove_identity(self, borrower_id: str) -> None: ...

    def prior_reviews(self, borrower_id: str) -> list[PriorReview]:
        """The borrower's decided sanctions reviews (cleared or confirmed), one per entry version."""
        ...

    def decision_times(self, borrower_id: str) -> list[datetime]:
        """When each compliance decision about the borrower was made (Regulation B keeps them 25 months)."""
        ...

    def loans_on_file(self, borrower_id: str) -> list[LoanOnFile]:
        """Each of the borrower's loans, open or closed, with when it closed (kept 5 years after, under the Bank
        Secrecy Act): a repaid, liquidated, written-off or cancelled loan is closed at its newest chain fact (the
        closing event, or a later one), an active or defaulted one is open."""
        ...

    def lock_for_erasure(self, borrower_id: str) -> None:
        """Hold the borrower's account for an erasure until the unit of work ends: decisions about the borrower being
        written are waited for (the retention check then sees them), and those begun later wait for the erasure."""
        ...

    def erase(self, borrower_id: str) -> None:
        """Delete what is derived from the identity: the sealed identity and its country, the credit profile, the
        KYC applicants and their reasons."""
        ...


class BorrowerUnitOfWork(Protocol):
    @property
    def borrowers(self) -> BorrowerRepository: ...

    @property
    def kyc(self) -> KycRepository: ...

    @property
    def replays(self) -> ReplayGuard: ...

    @property
    def audit(self) -> AuditLog: ...

    def commit(self) -> None: ...


class BorrowerStore(Protocol):
    """Opens units of work (one database transaction each; leaving without ``commit`` rolls back)."""

    def unit_of_work(self) -> AbstractContextManager[BorrowerUnitOfWork]: ...

    def flush_deleted(self) -> None:
        """After an erasure: make sure deleted rows leave no readable trace (SQLite's write-ahead log)."""
        ...


# ---------------------------------------------------------------------------------------------- in-memory fake


@dataclass
class _Tables:
    accounts: dict[str, BorrowerAccount] = field(default_factory=dict)
    profiles: dict[str, CreditProfile] = field(default_factory=dict)
    identities: dict[str, SealedIdentity] = field(default_factory=dict)
    applicants: dict[str, KycStatus] = field(default_factory=dict)
    prior_reviews: dict[str, list[PriorReview]] = field(default_factory=dict)
    decision_times: dict[str, list[datetime]] = field(default_factory=dict)
    loans: dict[str, list[LoanOnFile]] = field(default_factory=dict)
    audit: InMemoryAuditLog = field(default_factory=InMemoryAuditLog)
    replays: InMemoryReplayGuard = field(default_factory=InMemoryReplayGuard)


class InMemoryKycRepository:
    def __init__(self, tables: _Tables) -> None:
        self.tables = tables

    def save(self, status: KycStatus) -> None:
        self.tables.applicants[status.applicant_id] = status

    def remove(self, applicant_id: str) -> None:
        self.tables.applicants.pop(applicant_id, None)

    def get(self, applicant_id: str) -> KycStatus | None:
        return self.tables.applicants.get(applicant_id)

    def latest_for_subject(self, subject_id: str) -> KycStatus | None:
        own = [status for status in self.tables.applicants.values() if status.subject_id == subject_id]
        return max(own, key=lambda status: status.updated_at, default=None)


class InMemoryBorrowerRepository:
    def __init__(self, tables: _Tables) -> None:
        self.tables = tables

    def account(self, borrower_id: str) -> BorrowerAccount | None:
        return self.tables.accounts.get(borrower_id)

    def stored_file(self, borrower_id: str) -> StoredFile | None:
        account = self.tables.accounts.get(borrower_id)
        if account is None:
            return None
        identity = self.tables.identities.get(borrower_id)
        current = None if identity is None or identity.applicant_id is None else identity.applicant_id
        return StoredFile(
            account,
            self.tables.profiles.get(borrower_id),
            identity,
            None if current is None else self.tables.applicants.get(current),
            tuple(self.tables.prior_reviews.get(borrower_id, [])),
        )

    def account_by_wallet(self, wallet_address: str) -> BorrowerAccount | None:
        found = (a for a in self.tables.accounts.values() if a.wallet_address == wallet_address)
        return next(found, None)

    def add_account(self, account: BorrowerAccount) -> None:
        if self.account_by_wallet(account.wallet_address) is not None:
            raise BorrowerAlreadyRegistered(account.wallet_address)
        self.tables.accounts[account.id] = account

    def set_webhook(self, borrower_id: str, url: str | None, secret_sealed: str | None) -> None:
        account = self.tables.accounts[borrower_id]
        self.tables.accounts[borrower_id] = replace(account, webhook_url=url, webhook_secret_sealed=secret_sealed)

    def profile(self, borrower_id: str) -> CreditProfile | None:
        return self.tables.profiles.get(borrower_id)

    def save_profile(self, borrower_id: str, profile: CreditProfile, now: datetime) -> None:
        self.tables.profiles[borrower_id] = profile

    def identity(self, borrower_id: str) -> SealedIdentity | None:
        return self.tables.identities.get(borrower_id)

    def put_identity(self, borrower_id: str, identity: SealedIdentity) -> None:
        self.tables.identities[borrower_id] = identity

    def remove_identity(self, borrower_id: str) -> None:
        self.tables.identities.pop(borrower_id, None)

    def prior_reviews(self, borrower_id: str) -> list[PriorReview]:
        return list(self.tables.prior_reviews.get(borrower_id, []))

    def decision_times(self, borrower_id: str) -> list[datetime]:
        return list(self.tables.decision_times.get(borrower_id, []))

    def loans_on_file(self, borrower_id: str) -> list[LoanOnFile]:
        return list(self.tables.loans.get(borrower_id, []))

    def lock_for_erasure(self, borrower_id: str) -> None:
        """One process, one unit of work at a time: nothing to hold."""

    def erase(self, borrower_id: str) -> None:
        self.tables.identities.pop(borrower_id, None)
        self.tables.profiles.pop(borrower_id, None)
        gone: Iterable[str] = [a for a, s in self.tables.applicants.items() if s.subject_id == borrower_id]
        for applicant_id in gone:
            del self.tables.applicants[applicant_id]


class InMemoryBorrowerUnitOfWork(SnapshotUnitOfWork):
    def __init__(self, tables: _Tables) -> None:
        super().__init__(tables)
        self.borrowers = InMemoryBorrowerRepository(tables)
        self.kyc = InMemoryKycRepository(tables)
        self.tables = tables

    @property
    def replays(self) -> InMemoryReplayGuard:
        return self.tables.replays

    @property
    def audit(self) -> InMemoryAuditLog:
        return self.tables.audit


class InMemoryBorrowerStore:
    """The fake for unit tests: one process, transactions as snapshots."""

    def __init__(self) -> None:
        self.tables = _Tables()
        self.flushes = 0  # how many times an erasure asked for deleted rows to be flushed

    def unit_of_work(self) -> AbstractContextManager[InMemoryBorrowerUnitOfWork]:
        return rolled_back_on_exit(InMemoryBorrowerUnitOfWork(self.tables))

    def flush_deleted(self) -> None:
        self.flushes += 1
