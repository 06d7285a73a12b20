"""Persistence for the sanctions review queue: one row per borrower identity (``identity_fingerprint``) and version of
an SDN entry a name screen hit, and one per identity of a borrower whose name could not be screened in Latin script
(no entry: ``ent_num`` NULL, the identity's keyed fingerprint in ``entry_fingerprint``).

No personal data is stored here: the borrower is referenced by id and the query is read from the sealed identity
when a reviewer looks. Rows become ``aggregator.sanctions_review_store.SanctionsReview`` values here and never leave
``store``. Repositories take a Session and never commit; the unit of work does."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, Select, String, Text, UniqueConstraint, and_, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from aggregator.sanctions_review_store import SanctionsReview
from compliance.decisions import DecisionRecord
from compliance.sanctions.review import (
    NOT_SCREENED_OUTCOME,
    PriorReview,
    ReviewKind,
    ReviewState,
    ReviewVerdict,
    ScreeningOutcome,
)
from compliance.sanctions.screening import NameHit
from store.api import lock_borrower
from store.base import Base
from store.compliance import SqlDecisionRepository
from store.db import Database
from store.types import UtcDateTime

#: the rows of an identity whose name was not screened: no SDN entry
_ENTRY_LESS = text("ent_num IS NULL")


class SanctionsReviewRow(Base):
    __tablename__ = "sanctions_reviews"
    __table_args__ = (
        UniqueConstraint(
            "borrower_id", "ent_num", "entry_fingerprint", "identity_fingerprint", name="uq_sanctions_reviews_entry"
        ),
        Index("ix_sanctions_reviews_queue", "state", "created_at", "id"),
        # one review per identity whose name was not screened (NULLs are distinct to the constraint above)
        Index(
            "uq_sanctions_reviews_identity",
            "borrower_id",
            "entry_fingerprint",
            unique=True,
            sqlite_where=_ENTRY_LESS,
            postgresql_where=_ENTRY_LESS,
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    borrower_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(  # sdn-entry or name-not-screened
        String(24), default=ReviewKind.SDN_ENTRY.value, server_default=ReviewKind.SDN_ENTRY.value
    )
    ent_num: Mapped[int | None] = mapped_column(Integer, nullable=True)  # NULL: a name not screened
    entry_fingerprint: Mapped[str] = mapped_column(String(64))  # the entry's, or the identity's
    # the identity screened (name and date of birth, keyed): a verdict holds for it only; NULL on rows stored before
    # reviews were tied to an identity (0033), whose clearances clear nothing
    identity_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    list_version: Mapped[str] = mapped_column(String(128))  # the name list the hit was made with
    listed_name: Mapped[str | None] = mapped_column(String(512), nullable=True)  # the listed name that scored best
    primary_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    program: Mapped[str | None] = mapped_column(String(256), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # possible-match, match or not-screened
    state: Mapped[str] = mapped_column(String(16))
    decision_id: Mapped[str] = mapped_column(String(36))  # the screening decision that opened it
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reviewer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    review_decision_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


_FIELDS = tuple(field.name for field in fields(SanctionsReview))


def _review(row: SanctionsReviewRow) -> SanctionsReview:
    return SanctionsReview(**{name: getattr(row, name) for name in _FIELDS})


class SqlSanctionsReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def prior_for(self, borrower_id: str) -> list[PriorReview]:
        """The borrower's decided reviews (cleared or confirmed), one per entry version and identity, or identity."""
        rows = self.session.scalars(
            select(SanctionsReviewRow).where(
                SanctionsReviewRow.borrower_id == borrower_id, SanctionsReviewRow.state != ReviewState.PENDING.value
            )
        )
        return [PriorReview(r.ent_num, r.entry_fingerprint, ReviewState(r.state), r.identity_fingerprint) for r in rows]

    def open(
        self,
        borrower_id: str,
        hit: NameHit,
        outcome: ScreeningOutcome,
        decision_id: str,
        list_version: str,
        now: datetime,
        identity: str,
    ) -> SanctionsReview:
        """The review of this borrower's identity (``identity``: its ``identity_fingerprint``) and entry version,
        opened now unless one exists (then it is returned)."""
        same = select(SanctionsReviewRow).where(
            SanctionsReviewRow.borrower_id == borrower_id,
            SanctionsReviewRow.ent_num == hit.ent_num,
            SanctionsReviewRow.entry_fingerprint == hit.entry_fingerprint,
            SanctionsReviewRow.identity_fingerprint == identity,
        )
        existing = self.session.scalars(same).one_or_none()
        if existing is not None:
            return _review(existing)
        row = SanctionsReviewRow(
            id=str(uuid.uuid4()),
            borrower_id=borrower_id,
            kind=ReviewKind.SDN_ENTRY.value,
            ent_num=hit.ent_num,
            entry_fingerprint=hit.entry_fingerprint,
            identity_fingerprint=identity,
            list_version=list_version,
            listed_name=hit.listed_name[:512],
            primary_name=hit.primary_name[:512],
            program=hit.program[:256],
            score=hit.score,
            outcome=outcome.value,
            state=ReviewState.PENDING.value,
            decision_id=decision_id,
            created_at=now,
        )
        return self._insert_once(
            row, same, ["borrower_id", "ent_num", "entry_fingerprint", "identity_fingerprint"], None
        )

    def open_unscreened(
        self, borrower_id: str, fingerprint: str, decision_id: str, list_version: str, now: datetime
    ) -> SanctionsReview:
        """The review of this borrower's identity (``fingerprint``) whose name could not be screened, opened now
        unless one exists (then it is returned)."""
        same = select(SanctionsReviewRow).where(
            SanctionsReviewRow.borrower_id == borrower_id,
            SanctionsReviewRow.ent_num.is_(None),
            SanctionsReviewRow.entry_fingerprint == fingerprint,
        )
        existing = self.session.scalars(same).one_or_none()
        if existing is not None:
            return _review(existing)
        row = SanctionsReviewRow(
            id=str(uuid.uuid4()),
            borrower_id=borrower_id,
            kind=ReviewKind.NAME_NOT_SCREENED.value,
            ent_num=None,
            entry_fingerprint=fingerprint,
            identity_fingerprint=fingerprint,
            list_version=list_version,
            outcome=NOT_SCREENED_OUTCOME,
            state=ReviewState.PENDING.value,
            decision_id=decision_id,
            created_at=now,
        )
        return self._insert_once(row, same, ["borrower_id", "entry_fingerprint"], _ENTRY_LESS)

    def _insert_once(
        self, row: SanctionsReviewRow, same: Select[SanctionsReviewRow], key: list[str], where: Any
    ) -> SanctionsReview:
        """``row`` inserted, unless a screening of the same borrower and entry (or identity) at the same moment
        inserted its own first: then that one (INSERT … ON CONFLICT DO NOTHING on ``key``, not a refused INSERT, a
        500; not a savepoint either, which pysqlite would commit on its own)."""
        insert = pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        values = {column.key: getattr(row, column.key) for column in SanctionsReviewRow.__table__.columns}
        statement = insert(SanctionsReviewRow).values(**values)
        self.session.execute(statement.on_conflict_do_nothing(index_elements=key, index_where=where))
        return _review(self.session.scalars(same).one())

    def _row(self, review_id: str, *, for_update: bool = False) -> SanctionsReviewRow | None:
        statement = select(SanctionsReviewRow).where(SanctionsReviewRow.id == review_id)
        if for_update:
            statement = statement.with_for_update()
        return self.session.scalars(statement).one_or_none()

    def get(self, review_id: str, *, for_update: bool = False) -> SanctionsReview | None:
        row = self._row(review_id, for_update=for_update)
        return None if row is None else _review(row)

    def for_borrower(self, borrower_id: str) -> list[SanctionsReview]:
        rows = self.session.scalars(
            select(SanctionsReviewRow)
            .where(SanctionsReviewRow.borrower_id == borrower_id)
            .order_by(SanctionsReviewRow.created_at.desc(), SanctionsReviewRow.id.desc())
        )
        return [_review(row) for row in rows]

    def page(self, state: ReviewState | None, after: tuple[datetime, str] | None, limit: int) -> list[SanctionsReview]:
        """Newest first, starting strictly after ``after`` (created_at, id); ``limit`` rows at most."""
        statement = select(SanctionsReviewRow)
        if state is not None:
            statement = statement.where(SanctionsReviewRow.state == state.value)
        if after is not None:
            created_at, row_id = after
            statement = statement.where(
                or_(
                    SanctionsReviewRow.created_at < created_at,
                    and_(SanctionsReviewRow.created_at == created_at, SanctionsReviewRow.id < row_id),
                )
            )
        statement = statement.order_by(SanctionsReviewRow.created_at.desc(), SanctionsReviewRow.id.desc())
        return [_review(row) for row in self.session.scalars(statement.limit(limit))]

    def record_verdict(self, review_id: str, verdict: ReviewVerdict, decision_id: str) -> SanctionsReview:
        row = self._row(review_id)
        if row is None:
            raise LookupError(f"no sanctions review {review_id}")
        row.state = verdict.state.value
        row.reviewer = verdict.reviewer
        row.note = verdict.note
        row.reviewed_at = verdict.decided_at
        row.review_decision_id = decision_id
        return _review(row)


def record_screening(
    session: Session, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
) -> dict[int | None, SanctionsReview]:
    """Store screening decision records and open a review for each SDN entry that held or blocked them (and for a
    name they held as not screened: key None), in the caller's unit of work (the credit request's refusal, the
    acceptance's re-screen)."""
    lock_borrower(session, borrower_id, exclusive=False)  # an erasure of the borrower waits for these records
    SqlDecisionRepository(session).insert_all(records)  # Core INSERTs, run now: nothing is read back
    return open_reviews(session, records, borrower_id, list_version, now)


def open_reviews(
    session: Session, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
) -> dict[int | None, SanctionsReview]:
    """One review per SDN entry that held or blocked these screening decisions (for the identity they screened), and
    one (key None) for the identity whose name they held as not screened in Latin script (in the caller's unit of
    work)."""
    repository = SqlSanctionsReviewRepository(session)
    opened: dict[int | None, SanctionsReview] = {}
    for record in records:
        for hit, outcome in record.name_hits:
            if hit.ent_num not in opened:
                if record.screened_identity is None:
                    raise ValueError(f"decision {record.decision_id} has name hits but no screened identity")
                opened[hit.ent_num] = repository.open(
                    borrower_id, hit, outcome, record.decision_id, list_version, now, record.screened_identity
                )
        if record.unscreened_identity is not None and None not in opened:
            opened[None] = repository.open_unscreened(
                borrower_id, record.unscreened_identity, record.decision_id, list_version, now
            )
    return opened


class SqlSanctionsReviewUnitOfWork:
    def __init__(self, session: Session, commit: Callable[[], None]) -> None:
        self.reviews = SqlSanctionsReviewRepository(session)
        self.decisions = SqlDecisionRepository(session)
        self._commit = commit

    def commit(self) -> None:
        self._commit()


class SqlSanctionsReviewStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlSanctionsReviewUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlSanctionsReviewUnitOfWork(uow.session, uow.commit)
