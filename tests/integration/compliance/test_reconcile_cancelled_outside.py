"""A Timelock operation scheduled outside our commands (a proposer key used directly) stays reported after our Safe
cancels it, on a real devnet and PostgreSQL: the cancel's submit used to insert a proposal for it, as if it were
ours, and reconciliation then matched the rogue scheduling. The cancel is kept in the audit log."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import select

from api.bootstrap import write_chains_file
from api.cli import main
from compliance.reconcile import Category
from store.compliance import AuditEntryRow
from store.db import Database
from store.governance import GovernanceProposalRow
from tests.contracts.harness import DEPLOYER
from tests.support.devnet import DeployedChain
from tests.support.reconcile import reconciled

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"cancel_outside_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_an_operation_scheduled_outside_our_commands_stays_reported_after_our_safe_cancels_it(
    database: Database, devnet_chains: dict[str, DeployedChain], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = devnet_chains["ethereum-local"]
    write_chains_file(tmp_path / "chains.json", [chain.config])
    chain.record.save(tmp_path / "deployments" / f"{chain.name}.json")

    def admin(*argv: str) -> None:
        files = ["--chains-file", str(tmp_path / "chains.json"), "--deployments-dir", str(tmp_path / "deployments")]
        main(["admin", "--chains", chain.name, *files, "--database-url", database.url, *argv])
        capsys.readouterr()

    with chain.snapshot():
        start = chain.w3.eth.block_number + 1
        timelock, aggregator = chain.contract("Timelock"), chain.contract("CreditAggregator")
        data = aggregator.encode_abi("setGracePeriod", [12_345])
        salt = keccak(text=os.urandom(4).hex())
        # the deployer's proposer key used directly, outside creditmesh admin: nothing recorded
        sent = timelock.functions.schedule(aggregator.address, 0, data, b"\0" * 32, salt, 2).transact(
            {"from": DEPLOYER.address}
        )
        chain.w3.eth.wait_for_transaction_receipt(sent)
        operation_id = (
            "0x" + bytes(timelock.functions.hashOperation(aggregator.address, 0, data, b"\0" * 32, salt).call()).hex()
        )
        before = await reconciled(chain, database, start)
        assert (operation_id, Category.ONCHAIN_NOT_RECORDED) in {(i.subject, i.category) for i in before.items}

        # the runbook: the Safe cancels it (2 of 3 owners sign)
        cancellation = tmp_path / "cancel.json"
        admin("cancel", operation_id, "--via", "safe", "--out", str(cancellation))
        signatures = [str(tmp_path / f"{owner}.json") for owner in (12, 13)]
        for owner, path in zip((12, 13), signatures, strict=True):
            admin("sign", str(cancellation), "--account", str(owner), "--out", path)
        admin("submit", str(cancellation), *signatures)
        assert int(timelock.functions.getOperationState(bytes.fromhex(operation_id[2:])).call()) == 0  # cancelled

        after = await reconciled(chain, database, start)
    reported = [(i.subject, i.category) for i in after.items if i.subject == operation_id]
    assert reported == [(operation_id, Category.ONCHAIN_NOT_RECORDED)], "still scheduled outside our commands"
    with database.unit_of_work() as uow:
        assert uow.session.scalars(select(GovernanceProposalRow)).all() == [], "no proposal of ours made up for it"
        (entry,) = uow.session.scalars(select(AuditEntryRow).where(AuditEntryRow.subject.like(f"%{operation_id}")))
        assert (entry.data["state"], entry.data["scheduledOutside"]) == ("cancelled", True)
