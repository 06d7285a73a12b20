"""Migrations on SQLite (the platform's engine: ``PRAGMA foreign_keys=ON``) that rebuild a parent table in batch mode
(copy, ``DROP TABLE``, rename): the drop's implicit ``DELETE`` fired the children's ``ON DELETE`` actions — 0022's
downgrade deleted every outbox delivery — or failed (0032's, with a loan of a quote). They run with the foreign keys
off now, checked after (``store.db.foreign_keys_checked_after``): a row left naming no row rolls the migration back
with a clear error, and the connection's foreign keys are on again after."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, MetaData, Table, text

from store.db import Database, ForeignKeysBroken
from tests.support.migrations import downgrade, upgrade

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _insert(connection: Connection, table: str, **values: Any) -> None:
    """A row of ``table`` as the schema of the revision at hand has it: each NOT NULL column without a default given
    a value of its type, ``values`` over them."""
    reflected = Table(table, MetaData(), autoload_with=connection)
    row: dict[str, Any] = {}
    for column in reflected.columns:
        if column.nullable or column.server_default is not None or column.autoincrement is True:
            continue
        kind = str(column.type).upper()
        if "INT" in kind:
            row[column.name] = 1
        elif "TIME" in kind or "DATE" in kind:
            row[column.name] = AT
        elif "JSON" in kind:
            row[column.name] = {}
        elif "BOOL" in kind:
            row[column.name] = False
        else:
            row[column.name] = f"{column.name}-x"[: getattr(column.type, "length", None) or 64]
    connection.execute(reflected.insert().values(**(row | values)))


def _count(database: Database, table: str) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608 (constants)


def _foreign_keys_on(database: Database) -> bool:
    with database.engine.connect() as connection:
        return bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar())


@pytest.fixture
def sqlite(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'creditmesh.db'}")
    yield database
    database.dispose()


def test_0022s_downgrade_keeps_the_outbox_deliveries(sqlite: Database) -> None:
    with sqlite.engine.begin() as connection:
        upgrade(connection, "0022_outbox_retractions")
        _insert(connection, "outbox_events", id="e-1")
        _insert(connection, "outbox_deliveries", event_id="e-1")
    with sqlite.engine.begin() as connection:
        downgrade(connection, "0021_offchain_payments")
    assert (_count(sqlite, "outbox_events"), _count(sqlite, "outbox_deliveries")) == (1, 1)
    assert _foreign_keys_on(sqlite)


def test_0032s_downgrade_with_a_loan_of_a_quote_keeps_both(sqlite: Database) -> None:
    with sqlite.engine.begin() as connection:
        upgrade(connection, "0032_quote_provider_ref")
        _insert(connection, "borrowers", id="b-1")
        _insert(connection, "credit_requests", id="r-1", borrower_id="b-1")
        _insert(connection, "quotes", id="q-1", request_id="r-1", borrower_id="b-1", offer={"providerRef": "x"},
                offer_digest="0x01")  # fmt: skip
        _insert(connection, "loans", id="l-1", quote_id="q-1", offer_digest="0x01")
    with sqlite.engine.begin() as connection:
        downgrade(connection, "0031_identity_kyc_applicant")
    assert (_count(sqlite, "quotes"), _count(sqlite, "loans")) == (1, 1)
    assert _foreign_keys_on(sqlite)


def test_a_migration_leaving_a_row_that_names_no_row_is_rolled_back(sqlite: Database) -> None:
    with sqlite.engine.begin() as connection:
        upgrade(connection, "0037_intent_keys_name_contract")
    with sqlite.engine.connect() as connection:  # a delivery of no event, written with the keys off
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        _insert(connection, "outbox_deliveries", event_id="e-gone")
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")

    with pytest.raises(ForeignKeysBroken, match=r"1 row\(s\) whose foreign key names no row \(outbox_deliveries"):
        sqlite.migrate()
    with sqlite.engine.connect() as connection:  # all of it: 0038's batch rebuild left no table behind
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == (
            "0037_intent_keys_name_contract"
        )
        columns = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(offchain_payments)")}
        assert "contract" not in columns
        assert connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE name LIKE '%alembic_tmp%'").all() == []
    assert _foreign_keys_on(sqlite)
