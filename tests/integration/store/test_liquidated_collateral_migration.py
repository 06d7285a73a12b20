"""Migration 0026 corrects the loans recorded before the ledger took a liquidation's seized collateral off: their
collateral less what their recorded liquidations seized; a loan never liquidated is left as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import update

from store.aggregator import LoanRow
from store.db import MIGRATIONS_DIR, Database
from store.loan_ledger import apply_events
from tests.support.ledger_facts import CHAIN, COLLATERAL_MANAGER, LoanFacts

pytestmark = pytest.mark.integration

DEPOSIT, SEIZED = 10**18, 3 * 10**17


def _collateral(database: Database, loan_id: str) -> int | None:
    with database.unit_of_work() as uow:
        return uow.session.get_one(LoanRow, loan_id).collateral_amount


def test_loans_recorded_before_the_fix_lose_what_their_liquidations_seized(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    database.migrate()
    liquidated, untouched = LoanFacts(7_001), LoanFacts(7_002)
    opened = liquidated.opened()  # the facts' blocks in the order they are made
    seizure = liquidated.event(
        "LoanLiquidated", address=COLLATERAL_MANAGER, liquidator="0x" + "99" * 20, debtRepaid=1, collateralSeized=SEIZED
    )
    with database.unit_of_work() as uow:
        apply_events(uow.session, CHAIN, [opened, seizure, untouched.opened()])
        # as the ledger recorded it before the fix: the whole deposit still held
        uow.session.execute(update(LoanRow).where(LoanRow.id == liquidated.loan_id).values(collateral_amount=DEPOSIT))
        uow.commit()

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.stamp(config, "0025_chain_facts_event_index")
        command.upgrade(config, "0026_liquidated_collateral")
        command.stamp(config, "heads")  # the later migrations ran when the database was made

    assert _collateral(database, liquidated.loan_id) == DEPOSIT - SEIZED
    assert _collateral(database, untouched.loan_id) == DEPOSIT
    database.migrate()  # at head: nothing runs twice
    assert _collateral(database, liquidated.loan_id) == DEPOSIT - SEIZED
    database.dispose()
