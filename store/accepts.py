"""The accept saga's records in SQL (``aggregator.accept_saga`` describes them) and the quote, credit request and
loan changes the saga makes, each as a compare-and-set so concurrent accepts — threads or processes — cannot both
win."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    null,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from aggregator.accept_saga import (
    CANCEL_FAILED,
    FINAL,
    FUND_REFUSED,
    FUNDING_SETTLED,
    IN_FLIGHT,
    POOL,
    WITHDRAWN,
    AcceptRecord,
    AcceptStep,
    LoanFacts,
    LockRefused,
    QuoteView,
    Screening,
)
from aggregator.ledger import ACTIVE, DEFAULTED
from aggregator.loans import LoanRecord
from aggregator.owed import Exposure
from aggregator.sanctions_reviews import borrower_reasons
from compliance.audit import AuditKind
from compliance.decisions import DecisionRecord
from providers.webhooks import OFFER_WITHDRAWN
from store.accept_rows import AcceptRow
from store.aggregator import CreditRequestRow, LoanRow, QuoteRow
from store.api import BorrowerRow
from store.compliance import SqlAuditLog
from store.db import Database
from store.loan_ledger import apply_accepted_receipt
from store.loans import COLUMNS as LOAN_COLUMNS
from store.loans import loan_record
from store.providers import ProviderRegistrationRow, ProviderWebhookEventRow
from store.sanctions_reviews import record_screening

#: loan statuses whose outstanding principal is still owed: a defaulted loan is owed until it is liquidated or
#: written off
OWING = (ACTIVE, DEFAULTED)

_FIELDS = (
    "quote_id",
    "request_id",
    "borrower_id",
    "kind",
    "chain_name",
    "attempt",
    "owner",
    "lease_until",
    "updated_at",
    "error",
    "tx_hash",
    "loan_id",
    "lender_state",
)


def _record(row: AcceptRow) -> AcceptRecord:
    return AcceptRecord(step=AcceptStep(row.step), **{name: getattr(row, name) for name in _FIELDS})


def _values(record: AcceptRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _FIELDS}
    if values["error"] is not None:
        values["error"] = values["error"][:512]
    return values | {"step": record.step.value}


def _view(row: QuoteRow, risk: dict[str, Any]) -> QuoteView:
    return QuoteView(
        id=row.id,
        request_id=row.request_id,
        borrower_id=row.borrower_id,
        provider_id=row.provider_id,
        kind=row.kind,
        chain_name=row.chain_name,
        chain_id=row.chain_id,
        contract=row.contract,
        offer=dict(row.offer),
        offer_digest=row.offer_digest,
        offer_signature=row.offer_signature,
        attestation=dict(row.attestation),
        attestation_signature=row.attestation_signature,
        disclosure=dict(row.disclosure),
        status=row.status,
        expires_at=row.expires_at,
        risk_max_amount=str(risk.get("max_amount", "0")),
    )


_ACCEPTS = cast(Table, AcceptRow.__table__)
#: is_done's complement: a recorded traditional loan is unfinished until funded, unless its lender refused
#: (fund-refused: an operator takes it up; the instruction is not sent again)
_STEPS_IN_FLIGHT = [step.value for step in IN_FLIGHT]
_UNFINISHED = or_(
    and_(
        AcceptRow.step.not_in([step.value for step in FINAL]),
        or_(
            AcceptRow.step != AcceptStep.RECORDED.value,
            and_(AcceptRow.kind != POOL, func.coalesce(AcceptRow.lender_state, "") != FUND_REFUSED),
        ),
    ),
    and_(AcceptRow.step == AcceptStep.CANCELLED.value, AcceptRow.lender_state == CANCEL_FAILED),
)
_QUOTES = cast(Table, QuoteRow.__table__)
#: the quote as the accept sees it (``QuoteView`` but its request's risk) and its accept record, if any: one read
_VIEW_COLUMNS = tuple(name for name in QuoteView.__dataclass_fields__ if name != "risk_max_amount")
_QUOTE_AND_RECORD = (
    select(
        *(_QUOTES.c[name] for name in _VIEW_COLUMNS),
        CreditRequestRow.risk,
        *(_ACCEPTS.c[name].label("a_" + name) for name in (*_FIELDS, "step")),
    )
    .join(CreditRequestRow, CreditRequestRow.id == _QUOTES.c.request_id)
    .outerjoin(_ACCEPTS, _ACCEPTS.c.quote_id == _QUOTES.c.id)
    .where(_QUOTES.c.id == bindparam("quote_id"))
)

_QUOTE_ACCEPTED = update(QuoteRow).where(QuoteRow.id == bindparam("quote_id")).values(status="accepted")
_REQUEST_ACCEPTED = (
    update(CreditRequestRow).where(CreditRequestRow.id == bindparam("request_id")).values(status="accepted")
)
_REQUEST_ACCEPTING = (
    update(CreditRequestRow)
    .where(CreditRequestRow.id == bindparam("request_id"), CreditRequestRow.status == "quoted")
    .values(status="accepting")
)
_QUOTES_LOCKED = (
    update(QuoteRow)
    .where(QuoteRow.request_id == bindparam("of_request"), QuoteRow.status == "offered")
    .values(status=case((QuoteRow.id == bindparam("quote_id"), "accepting"), else_="superseded"))
    .returning(QuoteRow.id)
)
#: the record written whole (the SET clause is the parameters' columns), fenced on its owner
_SAVE_RECORD = update(_ACCEPTS).where(
    _ACCEPTS.c.quote_id == bindparam("b_quote_id"), _ACCEPTS.c.owner == bindparam("b_owner")
)
_SETTLE_FUNDING = _SAVE_RECORD.where(func.coalesce(_ACCEPTS.c.lender_state, "").not_in(FUNDING_SETTLED))

# the borrower's exposure: its row locked with what its loans still owe (one row with no loan when nothing is owed;
# none when the borrower has no row), then its accepts in flight
_LOCK_BORROWER_OWED = (
    select(LoanRow.asset, LoanRow.outstanding_principal, LoanRow.principal)
    .select_from(BorrowerRow)
    .outerjoin(LoanRow, and_(LoanRow.borrower_id == BorrowerRow.id, LoanRow.status.in_(OWING)))
    .where(BorrowerRow.id == bindparam("borrower_id"))
    .with_for_update(of=BorrowerRow)
)
# an accept in flight whose loan the ledger has recorded already (the indexer ahead of the saga, or an accept that
# failed after another transaction spent its offer) is counted once, as the loan
_ACCEPTING = and_(
    QuoteRow.borrower_id == bindparam("borrower_id"),
    QuoteRow.status == "accepting",
    ~exists().where(LoanRow.quote_id == QuoteRow.id),
)
_IN_FLIGHT = select(QuoteRow.disclosure, QuoteRow.offer).where(_ACCEPTING, QuoteRow.id != bindparam("excluding_quote"))
# the same open principal read as ONE statement locking nothing (one snapshot, one round trip), for a credit request
# (``open_principal``): its loans owing (no disclosure, no offer), then its accepts in flight (no loan columns)
_OPEN_PRINCIPAL = union_all(
    select(
        LoanRow.asset,
        LoanRow.outstanding_principal,
        LoanRow.principal,
        type_coerce(null(), JSON).label("disclosure"),
        type_coerce(null(), JSON).label("offer"),
    ).where(LoanRow.borrower_id == bindparam("borrower_id"), LoanRow.status.in_(OWING)),
    select(null(), null(), null(), QuoteRow.disclosure, QuoteRow.offer).where(_ACCEPTING),
)


def open_principal(connection: Connection, borrower_id: str) -> Exposure:
    """The borrower's open principal as ``SqlAcceptRepository.exposure`` counts it, in one statement on
    ``connection`` without its lock: what a credit request is quoted under (``aggregator.quote_exposure``)."""
    totals: dict[str, int] = {}
    for asset, outstanding, principal, disclosure, offer in connection.execute(
        _OPEN_PRINCIPAL, {"borrower_id": borrower_id}
    ):
        owed = principal if outstanding is None else outstanding  # a loan owing
        if disclosure is not None:  # an accept in flight
            asset, owed = str(disclosure["asset"]), int(offer["principal"])
        totals[asset] = totals.get(asset, 0) + int(owed)
    return Exposure(totals)


def _upsert_record(insert: Any) -> Any:
    statement = insert(_ACCEPTS)
    columns = {name: statement.excluded[name] for name in (*_FIELDS, "step") if name != "quote_id"}
    return statement.on_conflict_do_update(index_elements=[AcceptRow.quote_id], set_=columns)


_UPSERT_RECORD = {"postgresql": _upsert_record(pg_insert), "sqlite": _upsert_record(sqlite_insert)}


class SqlAcceptRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._recorded: dict[str, LoanRecord] = {}  # loans recorded in this unit of work, as recorded

    def quote(self, quote_id: str) -> QuoteView | None:
        row = self.session.get(QuoteRow, quote_id, populate_existing=True)
        if row is None:
            return None
        request = self.session.get(CreditRequestRow, row.request_id)
        assert request is not None
        return _view(row, request.risk)

    def quote_and_record(self, quote_id: str) -> tuple[QuoteView, AcceptRecord | None] | None:
        found = self.session.execute(_QUOTE_AND_RECORD, {"quote_id": quote_id}).one_or_none()
        if found is None:
            return None
        values = found._mapping
        view = QuoteView(
            **{name: values[name] for name in _VIEW_COLUMNS},
            risk_max_amount=str(values["risk"].get("max_amount", "0")),
        )
        if values["a_quote_id"] is None:
            return view, None
        step = AcceptStep(values["a_step"])
        return view, AcceptRecord(step=step, **{name: values["a_" + name] for name in _FIELDS})

    def record(self, quote_id: str) -> AcceptRecord | None:
        row = self.session.get(AcceptRow, quote_id, populate_existing=True)
        return None if row is None else _record(row)

    def _cas_quote(self, quote_id: str, from_status: str, to_status: str) -> bool:
        result = self.session.execute(
            update(QuoteRow).where(QuoteRow.id == quote_id, QuoteRow.status == from_status).values(status=to_status)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def _status_of_quote(self, quote_id: str) -> str:
        return str(self.session.execute(select(QuoteRow.status).where(QuoteRow.id == quote_id)).scalar_one())

    def lock(self, quote: QuoteView, record: AcceptRecord) -> None:
        # Lock order: the credit request first, then its quotes, then (exposure) the borrower — so two accepts of
        # one request queue on the request row instead of deadlocking on each other's quotes.
        moved = self.session.execute(_REQUEST_ACCEPTING, {"request_id": quote.request_id})
        if getattr(moved, "rowcount", 0) != 1:
            current = self._status_of_quote(quote.id)
            if current in ("accepting", "accepted"):
                raise LockRefused("status", current)
            raise LockRefused("superseded", current)
        # the quote to accepting and the request's other offered quotes superseded, in one statement; a quote no
        # longer offered is refused (the unit of work is rolled back, the others with it)
        locked = self.session.scalars(_QUOTES_LOCKED, {"of_request": quote.request_id, "quote_id": quote.id}).all()
        if quote.id not in locked:
            current = self._status_of_quote(quote.id)
            raise LockRefused("superseded" if current == "superseded" else "status", current)
        # a quote written after its lender was deregistered (a fan-out under way then, or a process yet to see it)
        # was not withdrawn with the others: refused as they are (the unit of work is rolled back)
        made = self.session.execute(select(QuoteRow.created_at).where(QuoteRow.id == quote.id)).scalar_one()
        if self._lender_gone(quote.provider_id, made):
            raise LockRefused("status", WITHDRAWN)
        # written whole, a cancelled accept retried included (same row, next attempt)
        self.session.execute(_UPSERT_RECORD[self.session.get_bind().dialect.name], _values(record))

    def withdraw(self, quote_id: str) -> None:
        self._cas_quote(quote_id, "offered", WITHDRAWN)

    def exposure(self, borrower_id: str, excluding_quote: str) -> Exposure:
        # Lock the borrower's row: two accepts of one borrower's different requests check exposure one at a time
        # (its loans read in the same statement).
        totals: dict[str, int] = {}
        for asset, outstanding, principal in self.session.execute(_LOCK_BORROWER_OWED, {"borrower_id": borrower_id}):
            if asset is None:  # the borrower's row, no loan owing
                continue
            owed = principal if outstanding is None else outstanding
            totals[asset] = totals.get(asset, 0) + int(owed)
        params = {"borrower_id": borrower_id, "excluding_quote": excluding_quote}
        for disclosure, offer in self.session.execute(_IN_FLIGHT, params):
            asset = str(disclosure["asset"])
            totals[asset] = totals.get(asset, 0) + int(offer["principal"])
        return Exposure(totals)

    def save(self, record: AcceptRecord) -> bool:
        # fenced on the owner: a process whose accept was taken over writes nothing
        params = _values(record) | {"b_quote_id": record.quote_id, "b_owner": record.owner}
        return bool(getattr(self.session.execute(_SAVE_RECORD, params), "rowcount", 0) == 1)

    def settle_funding(self, record: AcceptRecord) -> bool:
        # fenced on the owner, and on the funding not settled yet: the lender's offer.funding_failed may have come first
        params = _values(record) | {"b_quote_id": record.quote_id, "b_owner": record.owner}
        return bool(getattr(self.session.execute(_SETTLE_FUNDING, params), "rowcount", 0) == 1)

    def renew(self, quote_ids: Sequence[str], owner: str, lease_until: datetime) -> set[str]:
        if not quote_ids:
            return set()
        renewed = self.session.scalars(
            update(AcceptRow)
            .where(AcceptRow.quote_id.in_(list(quote_ids)), AcceptRow.owner == owner)
            .values(lease_until=lease_until)
            .returning(AcceptRow.quote_id)
        )
        return set(renewed)

    def release(self, record: AcceptRecord, now: datetime) -> None:
        quote = self.session.get(QuoteRow, record.quote_id)
        assert quote is not None
        self.session.execute(  # the request first, as lock() takes them
            update(CreditRequestRow)
            .where(CreditRequestRow.id == quote.request_id, CreditRequestRow.status == "accepting")
            .values(status="quoted")
        )
        # back to offered first: the row lock taken, an offer.withdrawn stored since (aggregator.offer_events locks the
        # quote before it reads its status) is read below, and one stored after finds the quote offered
        self._cas_quote(record.quote_id, "accepting", "offered")
        if self._withdrawn_by_lender(quote):
            self._cas_quote(record.quote_id, "offered", WITHDRAWN)
        self.session.execute(
            update(QuoteRow)
            .where(
                QuoteRow.request_id == quote.request_id,
                QuoteRow.status == "superseded",
                QuoteRow.expires_at > now,
            )
            .values(status="offered")
        )
        self.save(record)

    def _lender_gone(self, provider_id: str, quote_made: datetime) -> bool:
        """Whether the lender was deregistered since a quote made at ``quote_made``: its registration disabled, or
        made again after the quote (``providers.registry.ProviderRegistry.deregister``)."""
        registration = self.session.get(ProviderRegistrationRow, provider_id)
        return registration is not None and (not registration.enabled or registration.created_at > quote_made)

    def _withdrawn_by_lender(self, quote: QuoteRow) -> bool:
        """Whether the quote's lender withdrew its offer (an ``offer.withdrawn`` stored), or was deregistered since
        the quote was made (its registration disabled, or made again after the quote): either way the quote is not
        offered again (``providers.registry.ProviderRegistry.deregister``)."""
        if self._lender_gone(quote.provider_id, quote.created_at):
            return True
        found = self.session.execute(
            select(ProviderWebhookEventRow.id)
            .where(
                ProviderWebhookEventRow.provider_id == quote.provider_id,
                ProviderWebhookEventRow.offer_ref == str(quote.offer.get("providerRef")),
                ProviderWebhookEventRow.event_type == OFFER_WITHDRAWN,
            )
            .limit(1)
        ).first()
        return found is not None

    def record_screening(self, screening: Screening) -> None:
        record_screening(self.session, screening.records, screening.borrower_id, screening.list_version, screening.at)

    def record_loan(self, loan: LoanFacts, record: AcceptRecord) -> str | None:
        # The fenced step first: it takes the accept's row lock, and an accept taken over writes nothing.
        if not self.save(replace(record, loan_id=loan.id)):
            return None
        # The ledger applies the receipt's facts once (the indexer applies the same facts later: nothing new then).
        linked = None if loan.quote_link is None else (loan.offer_digest, loan.quote_link, loan.offer)
        state = apply_accepted_receipt(self.session, loan.ledger_chain, loan.events, loan.id, linked)
        if state is None:
            raise LookupError(f"the receipt {loan.tx_hash} opened no loan {loan.id}")
        self.session.execute(_QUOTE_ACCEPTED, {"quote_id": loan.quote_id})
        self.session.execute(_REQUEST_ACCEPTED, {"request_id": record.request_id})
        data = {
            "quoteId": loan.quote_id,
            "loanId": loan.id,
            "chain": record.chain_name,
            "offerDigest": loan.offer_digest or state.offer_digest,
            "txHash": loan.tx_hash,
        }
        SqlAuditLog(self.session).insert_all([(AuditKind.ACCEPT, record.borrower_id, data, datetime.now(UTC))])
        self._recorded[loan.id] = LoanRecord(**{name: getattr(state, name) for name in LOAN_COLUMNS})
        return loan.id

    def claimable(self, now: datetime, limit: int, chains: Collection[str]) -> list[AcceptRecord]:
        rows = self.session.scalars(
            select(AcceptRow)
            .where(
                _UNFINISHED,
                AcceptRow.lease_until <= now,
                or_(AcceptRow.step.not_in(_STEPS_IN_FLIGHT), AcceptRow.chain_name.in_(list(chains))),
            )
            .order_by(AcceptRow.updated_at)
            .limit(limit)
        )
        return [_record(row) for row in rows]

    def in_flight_chains(self) -> set[str]:
        return set(
            self.session.scalars(select(AcceptRow.chain_name).where(AcceptRow.step.in_(_STEPS_IN_FLIGHT)).distinct())
        )

    def claim(self, record: AcceptRecord, owner: str, lease_until: datetime, now: datetime) -> AcceptRecord | None:
        result = self.session.execute(
            update(AcceptRow)
            .where(
                AcceptRow.quote_id == record.quote_id,
                AcceptRow.owner == record.owner,
                AcceptRow.lease_until <= now,
            )
            .values(owner=owner, lease_until=lease_until, updated_at=now)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return AcceptRecord(
            **(_values(record) | {"owner": owner, "lease_until": lease_until, "updated_at": now, "step": record.step})
        )

    def loan(self, loan_id: str) -> LoanRecord | None:
        recorded = self._recorded.get(loan_id)  # as this unit of work recorded it: not read back
        if recorded is not None:
            return recorded
        row = self.session.get(LoanRow, loan_id)
        return None if row is None else loan_record(row)

    def loan_of_quote(self, quote_id: str) -> str | None:
        found = self.session.execute(select(LoanRow.id).where(LoanRow.quote_id == quote_id)).scalar_one_or_none()
        return None if found is None else str(found)

    def count_steps(self) -> dict[str, int]:
        return {
            str(step): int(count)
            for step, count in self.session.execute(select(AcceptRow.step, func.count()).group_by(AcceptRow.step))
        }


class SqlAcceptUnitOfWork:
    def __init__(self, session: Session, commit: Any) -> None:
        self.accepts = SqlAcceptRepository(session)
        self._commit = commit

    def commit(self) -> None:
        self._commit()


class SqlAcceptStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlAcceptUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlAcceptUnitOfWork(uow.session, uow.commit)


class SqlScreeningLog:
    """The acceptance's re-screening recorded as the credit request's is: decision records, and a sanctions review
    opened for each name hit that held or blocked them."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def record(
        self, records: Sequence[DecisionRecord], borrower_id: str, list_version: str, now: datetime
    ) -> list[tuple[str, str]]:
        with self._db.unit_of_work() as uow:
            reviews = record_screening(uow.session, records, borrower_id, list_version, now)
            uow.commit()
        refused = [record for record in records if not record.allowed]
        return borrower_reasons(refused, [review.id for review in reviews.values()])
