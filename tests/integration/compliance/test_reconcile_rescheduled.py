"""The documented cancel-and-propose-again (the same calls and salt: the same operation id) through ``creditmesh
admin`` on a real devnet and PostgreSQL: the proposal keeps each scheduling's transactions and reconciliation
matches the operation. The first cancel stood beside the second scheduling in one merged set and every
CallScheduled was compared with the one recorded schedule: a false PROPOSAL_MISMATCH. A record rewritten
afterwards is still reported."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.bootstrap import write_chains_file
from api.cli import main
from compliance.reconcile import Category
from store.db import Database
from store.governance import GovernanceProposalRow
from tests.support.devnet import DeployedChain
from tests.support.reconcile import reconciled

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"rescheduled_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_an_operation_cancelled_and_proposed_again_reconciles(
    database: Database, devnet_chains: dict[str, DeployedChain], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = devnet_chains["ethereum-local"]
    write_chains_file(tmp_path / "chains.json", [chain.config])
    chain.record.save(tmp_path / "deployments" / f"{chain.name}.json")

    def admin(*argv: str) -> str:
        files = ["--chains-file", str(tmp_path / "chains.json"), "--deployments-dir", str(tmp_path / "deployments")]
        main(["admin", "--chains", chain.name, *files, "--database-url", database.url, *argv])
        return capsys.readouterr().out

    propose = ("propose", "grace-period", "3600", "--via", "key", "--salt", "0x" + os.urandom(32).hex())
    with chain.snapshot():
        start = chain.w3.eth.block_number + 1
        first = re.search(r"scheduled (0x[0-9a-f]{64}): tx (0x[0-9a-f]{64})", admin(*propose))
        assert first is not None
        operation_id = first.group(1)
        cancel = re.search(r"cancelled 0x[0-9a-f]{64}: tx (0x[0-9a-f]{64})", admin("cancel", operation_id))
        assert cancel is not None
        second = re.search(r"scheduled (0x[0-9a-f]{64}): tx (0x[0-9a-f]{64})", admin(*propose))
        assert second is not None
        assert second.group(1) == operation_id

        matched = await reconciled(chain, database, start)

        with database.unit_of_work() as uow:
            (row,) = uow.session.scalars(select(GovernanceProposalRow)).all()
            assert (row.state, row.tx_hashes) == (
                "pending",
                {
                    "schedule": second.group(2),
                    "schedule.1": first.group(2),
                    "cancel.1": cancel.group(1),
                    "delay.1": "2",  # the first scheduling's, kept beside its transactions
                    "proposer.1": row.proposer,
                },
            )
            row.tx_hashes = row.tx_hashes | {"cancel.1": "0x" + "ee" * 32}  # rewritten afterwards
            uow.commit()
        rewritten = await reconciled(chain, database, start)
    assert [item for item in matched.items if item.subject == operation_id] == []
    (item,) = [item for item in rewritten.items if item.subject == operation_id]
    assert item.category is Category.PROPOSAL_MISMATCH
    assert f"cancel transaction of an earlier scheduling: recorded 0x{'ee' * 32}, on-chain {cancel.group(1)}" in (
        item.detail
    )
