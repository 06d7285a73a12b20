"""Borrower files in SQL (``aggregator.borrower_store.BorrowerStore``): the account (``store.api``), the sealed
identity and KYC applicants (``store.compliance``), the credit profile (``store.risk``) and past sanctions verdicts.
ORM rows become plain values here and never leave ``store``; repositories never commit, the unit of work does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.borrower_store import BorrowerAccount, LoanOnFile, SealedIdentity, StoredFile
from aggregator.errors import BorrowerAlreadyRegistered
from aggregator.projection import CANCELLED, LIQUIDATED, REPAID, WRITTEN_OFF
from compliance.sanctions.review import PriorReview
from risk.profile import CreditProfile
from store.aggregator import LoanRow
from store.api import BorrowerRow, lock_borrower
from store.borrower_file import stored_file
from store.compliance import (
    BorrowerIdentityRow,
    ComplianceDecisionRow,
    KycApplicantRow,
    SqlAuditLog,
    SqlKycRepository,
    SqlReplayGuard,
)
from store.db import Database
from store.ledger import ChainFactRow
from store.risk import CreditProfileRow
from store.sanctions_reviews import SqlSanctionsReviewRepository

#: the statuses of a loan that has ended (repaid, liquidated, written off, cancelled unfunded): its account is closed
CLOSED_STATUSES = (REPAID, LIQUIDATED, WRITTEN_OFF, CANCELLED)


def _account(row: BorrowerRow) -> BorrowerAccount:
    return BorrowerAccount(
        row.id, row.wallet_address, row.jurisdiction, row.created_at, row.webhook_url, row.webhook_secret_sealed
    )


class SqlBorrowerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def account(self, borrower_id: str) -> BorrowerAccount | None:
        row = self.session.get(BorrowerRow, borrower_id)
        return None if row is None else _account(row)

    def stored_file(self, borrower_id: str) -> StoredFile | None:
        """One statement (``store.borrower_file``) where ``account``, ``profile``, ``identity``, the KYC repository's
        ``get`` of the identity's applicant and ``prior_reviews`` are five."""
        return stored_file(self.session.connection(), borrower_id)

    def account_by_wallet(self, wallet_address: str) -> BorrowerAccount | None:
        row = self.session.scalar(select(BorrowerRow).where(BorrowerRow.wallet_address == wallet_address))
        return None if row is None else _account(row)

    def add_account(self, account: BorrowerAccount) -> None:
        self.session.add(
            BorrowerRow(
                id=account.id,
                wallet_address=account.wallet_address,
                jurisdiction=account.jurisdiction,
                created_at=account.created_at,
                webhook_url=account.webhook_url,
                webhook_secret_sealed=account.webhook_secret_sealed,
            )
        )
        try:
            self.session.flush()
        except IntegrityError as err:
            # a concurrent registration of the same wallet committed between the caller's check and this insert
            raise BorrowerAlreadyRegistered(account.wallet_address) from err

    def set_webhook(self, borrower_id: str, url: str | None, secret_sealed: str | None) -> None:
        row = self.session.get_one(BorrowerRow, borrower_id)
        row.webhook_url, row.webhook_secret_sealed = url, secret_sealed

    def profile(self, borrower_id: str) -> CreditProfile | None:
        row = self.session.get(CreditProfileRow, borrower_id)
        return None if row is None else CreditProfile.stored(row.profile)

    def save_profile(self, borrower_id: str, profile: CreditProfile, now: datetime) -> None:
        row = self.session.get(CreditProfileRow, borrower_id)
        document = profile.model_dump(mode="json")
        if row is None:
            self.session.add(CreditProfileRow(borrower_id=borrower_id, profile=document, updated_at=now))
        else:
            row.profile, row.updated_at = document, now

    def identity(self, borrower_id: str) -> SealedIdentity | None:
        row = self.session.get(BorrowerIdentityRow, borrower_id)
        if row is None:
            return None
        return SealedIdentity(row.country, row.sealed_identity, row.updated_at, row.applicant_id)

    def put_identity(self, borrower_id: str, identity: SealedIdentity) -> None:
        row = self.session.get(BorrowerIdentityRow, borrower_id)
        if row is None:
            row = BorrowerIdentityRow(subject_id=borrower_id)
            self.session.add(row)
        row.country, row.sealed_identity, row.updated_at = identity.country, identity.sealed, identity.updated_at
        row.applicant_id = identity.applicant_id

    def remove_identity(self, borrower_id: str) -> None:
        self.session.execute(delete(BorrowerIdentityRow).where(BorrowerIdentityRow.subject_id == borrower_id))

    def prior_reviews(self, borrower_id: str) -> list[PriorReview]:
        return SqlSanctionsReviewRepository(self.session).prior_for(borrower_id)

    def decision_times(self, borrower_id: str) -> list[datetime]:
        query = select(ComplianceDecisionRow.decided_at).where(ComplianceDecisionRow.subject_ref == borrower_id)
        return list(self.session.scalars(query))

    def loans_on_file(self, borrower_id: str) -> list[LoanOnFile]:
        """One statement: each loan with the time of its newest chain fact (its facts are the chain's events naming
        its on-chain id, the ledger's ``loan_ref``, emitted by its own CreditAggregator: another deployment's loan of
        the same number is another loan). A closed loan closed at that fact — the closing event (``LoanClosed``,
        ``LoanCancelled``, ``LoanWrittenOff``, all the aggregator's) or one after it, never before — or, were none
        kept, when its record was made."""
        newest = func.max(ChainFactRow.recorded_at)
        statement = (
            select(LoanRow.status, LoanRow.created_at, newest)
            .outerjoin(
                ChainFactRow,
                and_(
                    ChainFactRow.chain_id == LoanRow.chain_id,
                    ChainFactRow.loan_ref == LoanRow.onchain_loan_id,
                    func.lower(ChainFactRow.address) == func.lower(LoanRow.contract),
                ),
            )
            .where(LoanRow.borrower_id == borrower_id)
            .group_by(LoanRow.id, LoanRow.status, LoanRow.created_at)
        )
        return [
            LoanOnFile(created_at, (last_fact or created_at) if status in CLOSED_STATUSES else None)
            for status, created_at, last_fact in self.session.execute(statement)
        ]

    def lock_for_erasure(self, borrower_id: str) -> None:
        lock_borrower(self.session, borrower_id, exclusive=True)

    def erase(self, borrower_id: str) -> None:
        self.session.execute(delete(BorrowerIdentityRow).where(BorrowerIdentityRow.subject_id == borrower_id))
        self.session.execute(delete(CreditProfileRow).where(CreditProfileRow.borrower_id == borrower_id))
        self.session.execute(delete(KycApplicantRow).where(KycApplicantRow.subject_id == borrower_id))


class SqlBorrowerUnitOfWork:
    def __init__(self, session: Session, commit: Callable[[], None]) -> None:
        self.borrowers = SqlBorrowerRepository(session)
        self.kyc = SqlKycRepository(session)
        self.replays = SqlReplayGuard(session)
        self.audit = SqlAuditLog(session)
        self._commit = commit

    def commit(self) -> None:
        self._commit()


class SqlBorrowerStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlBorrowerUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlBorrowerUnitOfWork(uow.session, uow.commit)

    def flush_deleted(self) -> None:
        self._db.flush_deleted()
