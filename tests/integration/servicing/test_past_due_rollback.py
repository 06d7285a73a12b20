"""A past-due notice and its ``loan.past_due`` commit together or not at all, on SQLite and PostgreSQL: a default
job's round that fails after recording a bucket keeps neither, and the next round announces it. (On SQLite a
savepoint around the notice's INSERT opened the transaction, and its RELEASE committed the notice alone.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from aggregator.servicing.defaults import DefaultReport, OnChainLoan, announce_past_due
from aggregator.servicing.repository import OpenLoan
from store.aggregator import LoanRow
from store.db import Database
from store.loans import loan_columns
from store.outbox import OutboxEventRow
from store.servicing import PastDueNoticeRow, SqlServicingStore
from tests.support.relay_fakes import LOAN

pytestmark = pytest.mark.integration

DAY = 86_400
MATURITY = 1_900_000_000
OPEN = OpenLoan(LOAN.id, 1, "active", None, "sim-bank", None, None, 10**9)
ONCHAIN = {1: OnChainLoan(MATURITY, 1, 10**9)}


class RoundFailed(Exception):
    pass


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schema: Callable[[str], str]
) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'servicing.db'}" if request.param == "sqlite" else postgres_schema("past_due_rb")
    database = Database(url)
    database.migrate()
    with database.unit_of_work() as uow:
        uow.session.query(LoanRow).delete()  # a schema of a run before
        uow.session.add(LoanRow(**loan_columns(LOAN)))
        uow.commit()
    try:
        yield database
    finally:
        database.dispose()


def _failing_round(store: SqlServicingStore, now: int, report: DefaultReport) -> None:
    with store.unit_of_work() as uow:
        announce_past_due(uow.servicing, uow.outbox, [OPEN], ONCHAIN, now, report)
        raise RoundFailed("a later write of the round fails (or the process dies) before the commit")


def _kept(database: Database) -> tuple[list[str], list[str]]:
    with database.unit_of_work() as uow:
        notices = list(uow.session.scalars(select(PastDueNoticeRow.bucket)))
        events = list(uow.session.scalars(select(OutboxEventRow.event_type)))
    return notices, events


def test_a_failed_round_keeps_no_notice_and_the_next_round_announces_it(database: Database) -> None:
    store, now = SqlServicingStore(database), MATURITY + 3 * DAY
    report = DefaultReport(1, now)
    with pytest.raises(RoundFailed):
        _failing_round(store, now, report)
    assert [bucket.value for _, bucket in report.announced] == ["1-29"]
    assert _kept(database) == ([], [])  # the old code kept the notice (on SQLite) and no event

    with store.unit_of_work() as uow:
        report = DefaultReport(1, now + DAY)
        announce_past_due(uow.servicing, uow.outbox, [OPEN], ONCHAIN, now + DAY, report)
        uow.commit()
    assert [bucket.value for _, bucket in report.announced] == ["1-29"]
    assert _kept(database) == (["1-29"], ["loan.past_due"])

    with store.unit_of_work() as uow:  # announced once: a later round (or another process) writes nothing more
        assert uow.servicing.announce(LOAN.id, "1-29", 5, datetime.fromtimestamp(now, UTC)) is False
        report = DefaultReport(1, now + 2 * DAY)
        announce_past_due(uow.servicing, uow.outbox, [OPEN], ONCHAIN, now + 2 * DAY, report)
        uow.commit()
    assert report.announced == []
    assert _kept(database) == (["1-29"], ["loan.past_due"])
