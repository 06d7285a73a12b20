"""The credit request's write as Core INSERTs stores exactly what the ORM-entity INSERTs it replaced stored: a quoted
request (its outcomes, quotes, risk decision, compliance decision records and their audit entries) written both
ways on SQLite and on PostgreSQL, every column of every row compared."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import psycopg
import pytest
from psycopg.errors import LockNotAvailable
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from aggregator.quote_store import FIRST_OFFER_NONCE, InMemoryQuotingStore, OfferNonceKey, QuotedRequest
from compliance import ComplianceService, DecisionRecord
from compliance.jurisdiction import load_rules
from compliance.sanctions.lists import AddressList, ListVersion, NameList
from compliance.sanctions.screening import SanctionsScreen
from risk.repository import StoredDecision
from store.aggregator import CreditRequestRow, ProviderOutcomeRow, QuoteRow
from store.api import BorrowerRow
from store.base import Base
from store.compliance import AuditEntryRow, ComplianceDecisionRow, audit_columns, decision_rows
from store.db import Database
from store.prepared import PreparedInsert
from store.quoting import (
    _INSERT_AUDIT_ENTRIES,
    _INSERT_DECISIONS,
    _INSERT_QUOTES,
    _INSERT_REQUEST,
    OFFER_NONCE_BLOCK,
    SqlQuotingRepository,
    SqlQuotingStore,
    quote_columns,
)
from store.records import columns
from store.risk import RiskDecisionRow, risk_rows
from store.types import UtcDateTime
from tests.integration.aggregator.quoted_copies import renamed, variants
from tests.support.quoting import SPEC, WALLET, borrower_file, quoting_service

pytestmark = pytest.mark.integration

TABLES = (CreditRequestRow, ProviderOutcomeRow, QuoteRow, RiskDecisionRow, ComplianceDecisionRow, AuditEntryRow)


def _orm_write(
    session: Session, quoted: QuotedRequest, decision: StoredDecision, records: Sequence[DecisionRecord]
) -> None:
    """The writer before the Core statements: INSERTs of the ORM entities, in the same order."""
    request_id = quoted.request.id
    session.execute(insert(CreditRequestRow), [columns(quoted.request)])
    session.execute(insert(ProviderOutcomeRow), [columns(o) | {"request_id": request_id} for o in quoted.outcomes])
    session.execute(insert(QuoteRow), [quote_columns(quote) for quote in quoted.quotes])
    risk, risk_audit = risk_rows(decision)
    session.execute(insert(RiskDecisionRow), [risk])
    session.execute(insert(AuditEntryRow), [audit_columns(*risk_audit)])
    session.flush()
    decisions, audits = decision_rows(records, request_id)
    session.execute(insert(ComplianceDecisionRow), decisions)
    session.execute(insert(AuditEntryRow), [audit_columns(*audit) for audit in audits])


def _core_write(
    session: Session, quoted: QuotedRequest, decision: StoredDecision, records: Sequence[DecisionRecord]
) -> None:
    SqlQuotingRepository(session).add_quoted(quoted, decision, records)


def _stored(engine: Engine, write: Callable[..., None], written: tuple[Any, ...]) -> dict[str, list[tuple[Any, ...]]]:
    tables = [cast(Table, row.__table__) for row in TABLES]
    Base.metadata.create_all(engine, tables=[cast(Table, BorrowerRow.__table__), *tables])
    with Session(engine) as session:
        session.add(BorrowerRow(id="b1", wallet_address=WALLET, jurisdiction="US-FL", created_at=datetime.now(UTC)))
        session.flush()
        write(session, *written)
        session.commit()
    with engine.connect() as connection:
        return {
            table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key))]
            for table in tables
        }


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    """Real compliance with empty sanctions lists (the shipped ones cost seconds to load and index; nobody here is
    listed)."""
    version = ListVersion("test", datetime(2026, 11, 1, tzinfo=UTC), "test.csv", "00" * 32)
    screen = SanctionsScreen(AddressList(version, MappingProxyType({})), NameList(version, ()))
    return ComplianceService(screen, load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32)))


@pytest.fixture(scope="module")
def written(compliance: ComplianceService) -> tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]:
    """A request quoted by the quoting service (real compliance and signers, in-process lenders): what it wrote."""
    store = InMemoryQuotingStore()
    quoted = asyncio.run(quoting_service(store, compliance).request_credit(borrower_file(), SPEC))
    assert quoted.quotes
    assert quoted.outcomes
    records = store.tables.decision_records
    assert {record.kind.value for record in records} >= {"offer"}
    return quoted, store.tables.risk_decisions[0], records


def _compare(old: Engine, new: Engine, written: tuple[Any, ...]) -> None:
    before, after = _stored(old, _orm_write, written), _stored(new, _core_write, written)
    quoted, _decision, records = written
    assert len(after["quotes"]) == len(quoted.quotes)
    assert len(after["audit_entries"]) == 1 + len(records)
    assert after == before
    # every table went through its statement compiled once (store.prepared), none fell back to Core's execute
    for prepared, row in (
        (_INSERT_REQUEST, columns(quoted.request)),
        (_INSERT_QUOTES, quote_columns(quoted.quotes[0])),
        (_INSERT_DECISIONS, decision_rows(records, quoted.request.id)[0][0]),
        (_INSERT_AUDIT_ENTRIES, audit_columns(*decision_rows(records, quoted.request.id)[1][0])),
    ):
        assert prepared.prepared(new.dialect, list(row))


def test_a_prepared_insert_stores_what_core_stores(tmp_path: Path) -> None:
    """Rows go through the statement compiled once with their columns' bind processors; rows that leave out a column
    with a Python-side default go through Core's execute, which fills the default."""
    engine = create_engine(f"sqlite:///{tmp_path / 'prepared.db'}")
    table = Table(
        "things",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("note", String(20), nullable=True),
        Column("flag", Boolean, default=True),
    )
    table.create(engine)
    prepared = PreparedInsert(table)
    try:
        with engine.begin() as connection:
            for first, second in ((1, 2), (3, 4)):
                given: list[dict[str, Any]] = [
                    {"id": first, "note": str(first), "flag": False},
                    {"id": second, "note": None, "flag": True},
                ]
                prepared.execute(connection, given)
            prepared.execute(connection, [{"id": 5, "note": "e"}])  # flag left out: its default applies
        assert prepared.prepared(engine.dialect, ["id", "note", "flag"])
        assert not prepared.prepared(engine.dialect, ["id", "note"])
        with engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(select(table).order_by(table.c.id))]
        assert rows == [(1, "1", False), (2, None, True), (3, "3", False), (4, None, True), (5, "e", True)]
    finally:
        engine.dispose()


def test_on_postgresql_several_rows_go_as_one_json_array_and_store_what_executemany_stored(
    postgres_schema: Callable[[str], str],
) -> None:
    """Several rows on PostgreSQL are one ``json_populate_recordset`` INSERT (one row at a time takes executemany):
    random rows of text (quotes, backslashes, non-ASCII, NUL-free), integers up to 2^63-1, booleans, JSON documents
    (nested, big integers, strings), aware timestamps in several zones, bytes and NULLs store exactly what
    executemany stored, in the rows' order; a row whose JSON column is None takes executemany (SQLAlchemy writes the
    JSON null there)."""
    rng = random.Random(18)
    metadata = MetaData()
    table = Table(
        "mixed",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("tag", String(200), nullable=True),
        Column("big", BigInteger, nullable=True),
        Column("flag", Boolean, nullable=True),
        Column("doc", JSON, nullable=False),
        Column("at", UtcDateTime(), nullable=True),
        Column("blob", LargeBinary, nullable=True),
    )
    engine = create_engine(postgres_schema("prepared_recordset"))
    metadata.create_all(engine)
    prepared = PreparedInsert(table)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _k, statement, *_: statements.append(statement))

    def text_value() -> str | None:
        return rng.choice([None, "", "plain", 'quo"te', "back\\slash\\x00", "ünï€ødé ✓", "multi\nline\ttab"])

    def random_row() -> dict[str, Any]:
        zone = timezone(timedelta(minutes=rng.choice([0, 330, -480])))
        return {
            "tag": text_value(),
            "big": rng.choice([None, 0, -1, 2**63 - 1, rng.randrange(-(2**40), 2**40)]),
            "flag": rng.choice([None, True, False]),
            "doc": rng.choice(
                [{"a": [1, 2, {"b": text_value()}], "n": 2**200}, [], "just a string", 0, {"x": None, "é": "\\"}]
            ),
            "at": rng.choice([None, datetime(2026, 11, 27, 9, 0, 0, rng.randrange(10**6), tzinfo=zone)]),
            "blob": rng.choice([None, b"", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))]),
        }

    def stored(connection: Connection) -> list[tuple[Any, ...]]:
        return [tuple(row)[1:] for row in connection.execute(select(table).order_by(table.c.seq))]

    batches = [[random_row() for _ in range(rng.randrange(1, 6))] for _ in range(40)]
    expected = [(r["tag"], r["big"], r["flag"], r["doc"], r["at"], r["blob"]) for batch in batches for r in batch]
    try:
        with engine.begin() as connection:
            for batch in batches:
                prepared.execute(connection, batch)
            as_arrays = stored(connection)
        assert sum("json_populate_recordset" in s for s in statements) == sum(len(b) > 1 for b in batches)
        statements.clear()
        with engine.begin() as connection:
            connection.execute(table.delete())
            for batch in batches:
                for row in batch:
                    prepared.execute(connection, [row])
            one_by_one = stored(connection)
        assert not any("json_populate_recordset" in s for s in statements)
        assert as_arrays == one_by_one == expected

        statements.clear()
        with engine.begin() as connection:
            prepared.execute(connection, [random_row() | {"doc": {"k": 1}}, random_row() | {"doc": None}])
        assert statements
        assert not any("json_populate_recordset" in s for s in statements), "a JSON None: executemany"
    finally:
        engine.dispose()


def test_the_core_write_stores_what_the_orm_stored_on_sqlite(tmp_path: Path, written: tuple[Any, ...]) -> None:
    old, new = create_engine(f"sqlite:///{tmp_path / 'old.db'}"), create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        _compare(old, new, written)
    finally:
        old.dispose()
        new.dispose()


def test_the_core_write_stores_what_the_orm_stored_on_postgresql(
    postgres_schema: Callable[[str], str], written: tuple[Any, ...]
) -> None:
    old, new = create_engine(postgres_schema("quote_write_old")), create_engine(postgres_schema("quote_write_new"))
    try:
        _compare(old, new, written)
    finally:
        old.dispose()
        new.dispose()


def test_quote_writes_take_turns_on_sqlite(tmp_path: Path) -> None:
    """SQLite's busy handler makes a second writer sleep and retry; the store's writes take turns on a lock instead."""
    database = Database(f"sqlite:///{tmp_path / 'turns.db'}")
    store, entered = SqlQuotingStore(database), threading.Event()

    def second() -> None:
        with store.writing():
            entered.set()

    waiting = threading.Thread(target=second)
    try:
        with store.writing():
            waiting.start()
            assert not entered.wait(0.3), "the second writer got in while the first held its turn"
        assert entered.wait(10), "the second writer never got its turn"
    finally:
        waiting.join(10)
        database.dispose()


KEY = OfferNonceKey(31337, "0x" + "a0" * 20, "0x" + "51" * 20)


def _probe(database: Database) -> list[int] | str:
    """What a second connection finds when it tries to lock every offer-nonce counter row without waiting: their
    next nonces, or ``"locked"`` when a transaction holds one of them."""
    with database.engine.connect() as connection:
        try:
            return list(
                connection.execute(text("SELECT next_nonce FROM offer_nonces ORDER BY 1 FOR UPDATE NOWAIT")).scalars()
            )
        except OperationalError as err:
            if not isinstance(err.orig, LockNotAvailable):
                raise
            return "locked"


@pytest.fixture
def postgres_database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    database = Database(postgres_schema("offer_nonce_hold"))
    Base.metadata.create_all(database.engine)
    with database.unit_of_work() as uow:
        uow.session.add(BorrowerRow(id="b1", wallet_address=WALLET, jurisdiction="US-FL", created_at=datetime.now(UTC)))
        uow.commit()
    yield database
    database.dispose()


def test_on_postgresql_the_nonces_are_committed_before_the_write_and_its_rows_are_free_during_it(
    postgres_database: Database, written: tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]
) -> None:
    database, store = postgres_database, SqlQuotingStore(postgres_database)
    store.reserve_offer_nonces([KEY])  # the counter's first nonce, committed
    with database.unit_of_work() as uow:  # the probe sees a lock where there is one: the old order held it here
        SqlQuotingRepository(uow.session).reserve_offer_nonces([KEY])
        assert _probe(database) == "locked"
    assert _probe(database) == [FIRST_OFFER_NONCE + 1]  # rolled back: not spent

    def failing() -> None:
        with store.writing([KEY]) as (uow, nonces):
            assert nonces == {KEY: FIRST_OFFER_NONCE + 1}
            uow.quoting.add_quoted(*written)
            raise RuntimeError("signing failed")  # nothing of the request is written; its nonce is skipped

    with pytest.raises(RuntimeError, match="signing failed"):
        failing()
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM credit_requests")).scalar_one() == 0
    with store.writing([KEY]) as (write, nonces):
        assert nonces == {KEY: FIRST_OFFER_NONCE + 2}
        assert _probe(database) == [FIRST_OFFER_NONCE + 3]  # reserved, committed and free while the request is signed
        write.quoting.add_quoted(*written)
        assert _probe(database) == [FIRST_OFFER_NONCE + 3]  # and while its rows are written, until the commit
        write.commit()
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM credit_requests")).scalar_one() == 1


def test_a_credit_request_leaves_the_counter_rows_unlocked_while_it_signs_and_writes_on_postgresql(
    postgres_database: Database, compliance: ComplianceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quoting service end to end on PostgreSQL: at the write, the counters already hold the request's nonces
    (one per chain with quotes) and no transaction holds their rows."""
    seen: list[list[int] | str] = []
    store = SqlQuotingStore(postgres_database)
    writing = store.writing

    @contextmanager
    def probed(nonce_keys: Iterable[OfferNonceKey] = ()) -> Iterator[tuple[Any, dict[OfferNonceKey, int]]]:
        with writing(nonce_keys) as (uow, nonces):
            add_quoted = uow.quoting.add_quoted

            def add_and_probe(*args: Any) -> None:
                seen.append(_probe(postgres_database))
                add_quoted(*args)
                seen.append(_probe(postgres_database))

            monkeypatch.setattr(uow.quoting, "add_quoted", add_and_probe)
            yield uow, nonces

    monkeypatch.setattr(store, "writing", probed)
    quoted = asyncio.run(quoting_service(store, compliance).request_credit(borrower_file(), SPEC))
    nonces = {quote.chain_id: int(quote.offer["nonce"]) for quote in quoted.quotes}
    assert len(nonces) > 1
    expected = sorted(nonce + OFFER_NONCE_BLOCK for nonce in nonces.values())  # the block reserved ahead
    assert seen == [expected, expected]
    assert _probe(postgres_database) == expected


def test_on_postgresql_the_request_s_nonces_are_reserved_while_the_lenders_answer_and_on_sqlite_in_the_write(
    postgres_database: Database, compliance: ComplianceService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On PostgreSQL the offer nonces of the request's chains are reserved ahead of the write (at the first answer
    with offers, in their own transaction), so the write reserves none; on SQLite nothing is reserved ahead."""
    asked: list[list[OfferNonceKey]] = []
    store = SqlQuotingStore(postgres_database)
    writing = store.writing

    def recorded(nonce_keys: Iterable[OfferNonceKey] = ()) -> Any:
        asked.append(list(nonce_keys))
        return writing(nonce_keys)

    monkeypatch.setattr(store, "writing", recorded)
    quoted = asyncio.run(quoting_service(store, compliance).request_credit(borrower_file(), SPEC))
    nonces = {quote.chain_id: int(quote.offer["nonce"]) for quote in quoted.quotes}
    assert len(nonces) > 1
    assert asked == [[]]  # every chain with quotes was reserved ahead
    assert _probe(postgres_database) == sorted(nonce + OFFER_NONCE_BLOCK for nonce in nonces.values())
    sqlite = Database(f"sqlite:///{tmp_path / 'ahead.db'}")
    try:
        assert SqlQuotingStore(sqlite).reserve_ahead([KEY]) == {}
    finally:
        sqlite.dispose()


def test_on_postgresql_the_write_s_inserts_go_in_one_pipeline_and_a_failure_is_sqlalchemy_s_with_nothing_kept(
    postgres_database: Database, written: tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]
) -> None:
    """The request's six INSERTs are sent in one psycopg pipeline (one round trip); an error the server reports at
    its end (here the same request written twice) is SQLAlchemy's IntegrityError and the transaction keeps nothing."""
    database = postgres_database
    pipelined: list[bool] = []

    arrays: list[bool] = []  # outcomes, quotes, decisions, audit entries: json_populate_recordset or not

    def record(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT"):
            status = connection.connection.driver_connection.info.pipeline_status
            pipelined.append(status == psycopg.pq.PipelineStatus.ON)
            if not statement.startswith(("INSERT INTO credit_requests", "INSERT INTO risk_decisions")):
                arrays.append("json_populate_recordset" in statement)

    event.listen(database.engine, "before_cursor_execute", record)
    with database.unit_of_work() as uow:
        SqlQuotingRepository(uow.session).add_quoted(*written)
        uow.commit()
    assert len(pipelined) == 6
    assert all(pipelined)
    quoted, _decision, records = written
    several = [len(quoted.outcomes), len(quoted.quotes), len(records), 1 + len(records)]
    assert arrays == [count > 1 for count in several], "each table with several rows: one JSON-array INSERT"

    def again() -> None:
        with database.unit_of_work() as uow:
            SqlQuotingRepository(uow.session).add_quoted(*written)  # the same request's rows again
            uow.commit()

    with pytest.raises(IntegrityError):
        again()
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM credit_requests")).scalar_one() == 1
        assert connection.execute(text("SELECT count(*) FROM quotes")).scalar_one() == len(written[0].quotes)
    with database.unit_of_work() as uow:  # the pool's connection still serves
        assert uow.session.execute(text("SELECT 1")).scalar_one() == 1


def _as_text(database: Database) -> dict[str, list[str]]:
    """Every row of the write's tables as PostgreSQL's text of the whole row (a ``json`` column's text as stored)."""
    tables = [cast(Table, row.__table__).name for row in TABLES]
    with database.engine.connect() as connection:
        return {
            table: sorted(connection.exec_driver_sql(f"SELECT t::text FROM {table} AS t").scalars())  # noqa: S608
            for table in tables
        }


def test_on_postgresql_the_write_is_one_statement_in_autocommit_storing_what_the_pipeline_stored(
    postgres_schema: Callable[[str], str], written: tuple[QuotedRequest, StoredDecision, list[DecisionRecord]]
) -> None:
    """``SqlQuotingStore.writing`` on PostgreSQL sends a request's rows at the commit as ONE statement in autocommit
    (``store.prepared.as_one_statement``), which stores the same text in every column of every row as the six
    pipelined INSERTs in a transaction did; leaving without the commit sends nothing; a failure is SQLAlchemy's
    IntegrityError and keeps nothing; done after anything else in its unit of work, it goes into the transaction."""
    databases = []
    for name in ("write_pipelined", "write_one_statement"):
        database = Database(postgres_schema(name))
        Base.metadata.create_all(database.engine)
        with database.unit_of_work() as uow:
            uow.session.add(
                BorrowerRow(id="b1", wallet_address=WALLET, jurisdiction="US-FL", created_at=datetime.now(UTC))
            )
            uow.commit()
        databases.append(database)
    pipelined, one = databases
    statements: list[str] = []
    event.listen(one.engine, "before_cursor_execute", lambda _c, _k, statement, *_: statements.append(statement))
    store = SqlQuotingStore(one)
    try:
        for variant in variants(written):
            with pipelined.unit_of_work() as transaction:
                SqlQuotingRepository(transaction.session).add_quoted(*variant)
                transaction.commit()
            statements.clear()
            with store.writing() as (write, _nonces):
                write.quoting.add_quoted(*variant)
                assert statements == []  # sent at the commit
                write.commit()
            assert len(statements) == 1
            assert statements[0].startswith("WITH w0 AS (INSERT INTO credit_requests")
        assert _as_text(one) == _as_text(pipelined)
        assert len(_as_text(one)["quotes"]) == len(written[0].quotes) + 1 + 3

        with store.writing() as (write, _nonces):
            write.quoting.add_quoted(*variants(written)[1])  # staged, never committed: nothing sent

        def again() -> None:
            with store.writing() as (write, _nonces):
                write.quoting.add_quoted(*written)  # the same request again
                write.commit()

        with pytest.raises(IntegrityError):
            again()
        assert _as_text(one) == _as_text(pipelined)

        fourth = renamed(written, 4, 2, "fourth")
        with store.writing() as (write, _nonces):
            assert write.quoting.get_request(fourth[0].request.id) is None  # something else first: one transaction
            write.quoting.add_quoted(*fourth)
            write.quoting.get_quote(fourth[0].quotes[0].id)
            write.commit()
        assert write.quoting.staged is None
        with one.unit_of_work() as read:
            found = SqlQuotingRepository(read.session).get_request(fourth[0].request.id)
        assert found is not None
        assert found[0].request == fourth[0].request
        assert [quote.id for quote in found[0].quotes] == [quote.id for quote in fourth[0].quotes]
    finally:
        for database in databases:
            database.dispose()


def test_on_postgresql_a_block_of_nonces_is_reserved_ahead_and_the_next_requests_take_theirs_at_hand(
    postgres_database: Database, compliance: ComplianceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first credit request reserves a block of offer nonces per chain in a worker thread while its lenders answer
    (``reserve_ahead``); the next ones take the following nonces at hand (no hop, no I/O before the write), their
    screening's records made in the write instead. A block used up is followed by a new one; two stores (processes)
    never hand out one nonce twice."""
    store = SqlQuotingStore(postgres_database)
    service = quoting_service(store, compliance)
    hops: list[str] = []
    during = service._during_the_wait

    def counted(*args: Any) -> Any:
        hops.append("during the wait")
        return during(*args)

    monkeypatch.setattr(service, "_during_the_wait", counted)

    async def requests(count: int) -> list[QuotedRequest]:
        return [await service.request_credit(borrower_file(), SPEC) for _ in range(count)]

    first, second, third = asyncio.run(requests(3))
    assert hops == ["during the wait"]
    nonces = [
        {quote.chain_id: int(quote.offer["nonce"]) for quote in quoted.quotes} for quoted in (first, second, third)
    ]
    assert len(nonces[0]) > 1
    assert nonces[1] == {chain: nonce + 1 for chain, nonce in nonces[0].items()}
    assert nonces[2] == {chain: nonce + 2 for chain, nonce in nonces[0].items()}
    assert _probe(postgres_database) == sorted(nonce + OFFER_NONCE_BLOCK for nonce in nonces[0].values())
    with postgres_database.engine.connect() as connection:
        screened = connection.execute(
            text("SELECT request_id, count(*) FROM compliance_decisions WHERE kind = 'credit-request' GROUP BY 1")
        ).all()
    assert sorted(screened) == sorted((quoted.request.id, 2) for quoted in (first, second, third))

    key = OfferNonceKey(1, "0x" + "ee" * 20, "0x" + "51" * 20)
    other = SqlQuotingStore(postgres_database)  # another process's store
    assert store.nonces_at_hand([key]) is None  # nothing reserved for this key yet
    drawn = [store.reserve_ahead([key])[key], other.reserve_ahead([key])[key]]
    for _ in range(OFFER_NONCE_BLOCK + 3):
        for each in (store, other):
            taken = each.nonces_at_hand([key])
            drawn.append(taken[key] if taken is not None else each.reserve_ahead([key])[key])
        drawn.append(store.reserve_offer_nonces([key])[key])  # one at a time (the write's own), beside the blocks
    assert len(set(drawn)) == len(drawn)
    assert sorted(drawn)[0] == FIRST_OFFER_NONCE
