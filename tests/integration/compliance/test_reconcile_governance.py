"""Governance calls sent directly, outside the Timelock, against a real devnet and PostgreSQL: the guardian's pause
through ``creditmesh admin pause`` is persisted as a governance action (audited, with its reason) and the reconciler
matches its ``Paused`` events by transaction; the guardian's key used outside the platform is on-chain but not
recorded; a recorded action whose transaction the chain does not have is recorded but not on-chain."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.bootstrap import write_chains_file
from api.cli import main
from api.reconcile_jobs import ReconciledChain, reconcile
from chain.client import ChainClient
from chain.signers import devnet_account
from compliance.reconcile import Category
from store.compliance import AuditEntryRow
from store.db import Database
from store.governance import ActionRecord, GovernanceActionRow, GovernanceProposalRow, SqlActionRepository
from tests.support.devnet import DeployedChain

pytestmark = pytest.mark.integration

GUARDIAN = devnet_account(5).address
STRANGER = "0x" + "5e" * 20


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_gov_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def test_a_guardian_pause_through_the_cli_is_matched_and_one_sent_outside_is_not(
    database: Database, ethereum_local: DeployedChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = ethereum_local
    start = chain.w3.eth.block_number + 1
    write_chains_file(tmp_path / "chains.json", [chain.config])
    chain.record.save(tmp_path / "deployments" / f"{chain.name}.json")
    capsys.readouterr()
    main(
        [
            "admin",
            "--chains",
            chain.name,
            "--chains-file",
            str(tmp_path / "chains.json"),
            "--deployments-dir",
            str(tmp_path / "deployments"),
            "--database-url",
            database.url,
            "pause",
            "--reason",
            "incident drill",
        ]
    )
    paused = re.findall(r"(\w[\w:]*)\.pause: tx (0x[0-9a-f]{64})", capsys.readouterr().out)
    assert len(paused) >= 3  # the aggregator, the collateral manager and every pool
    # the guardian's key used directly, outside the platform
    outside = chain.contract("CollateralManager").functions.pauseLiquidations().transact({"from": GUARDIAN})
    chain.w3.eth.wait_for_transaction_receipt(outside)
    # and an action recorded whose transaction the chain never had
    never = "0x" + "ef" * 32
    with database.unit_of_work() as uow:
        aggregator = chain.record.address("CreditAggregator")
        SqlActionRepository(uow.session).add(
            ActionRecord(chain.chain_id, chain.name, "pause", "CreditAggregator", aggregator, GUARDIAN, never, start)
        )
        uow.commit()

    client = await ChainClient(chain.config).connect()
    try:
        outcome = await reconcile(database, [ReconciledChain(client, chain.record)], "test", from_block=start)
    finally:
        await client.close()
    result = outcome.results[0]
    found = sorted((item.category.value, item.what, item.tx_hash or item.record_ref) for item in result.items)
    assert found == [
        (Category.ONCHAIN_NOT_RECORDED.value, "LiquidationPauseChanged", outside.to_0x_hex()),
        (Category.RECORDED_NOT_ONCHAIN.value, "pause", never),
    ]
    assert result.counts[Category.MATCHED.value] == len(paused)  # every Paused, by its recorded transaction

    with database.unit_of_work() as uow:
        audited = uow.session.scalars(select(AuditEntryRow).where(AuditEntryRow.kind == "governance")).all()
    recorded = {entry.data["txHash"]: entry.data for entry in audited}
    assert {tx for _, tx in paused} <= set(recorded)
    assert {recorded[tx]["reason"] for _, tx in paused} == {"incident drill"}
    assert {recorded[tx]["sender"] for _, tx in paused} == {GUARDIAN}


async def test_a_proposal_or_pause_recorded_otherwise_than_the_chain_is_reported_by_field(
    database: Database, ethereum_local: DeployedChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A proposal's salt, predecessor, delay, proposer and decoded calls, and a pause's sender, are what an auditor
    reconciles governance with (docs/governance.md); altered in the database, the run matched them all the same."""
    chain = ethereum_local
    start = chain.w3.eth.block_number + 1
    write_chains_file(tmp_path / "chains.json", [chain.config])
    chain.record.save(tmp_path / "deployments" / f"{chain.name}.json")
    admin = ["admin", "--chains", chain.name, "--chains-file", str(tmp_path / "chains.json")]
    admin += ["--deployments-dir", str(tmp_path / "deployments"), "--database-url", database.url]
    salt = "0x" + "5a" * 32
    proposal = str(tmp_path / "grace.json")  # through the Safe (2 of 3 owners): the Safe is the proposer
    main([*admin, "propose", "grace-period", "172800", "--salt", salt, "--out", proposal])
    for owner in ("12", "14"):
        main([*admin, "sign", proposal, "--account", owner, "--out", str(tmp_path / f"{owner}.json")])
    main([*admin, "submit", proposal, str(tmp_path / "12.json"), str(tmp_path / "14.json")])
    main([*admin, "pause", "--reason", "drill"])
    capsys.readouterr()

    async def run() -> list[tuple[str, str, str]]:
        client = await ChainClient(chain.config).connect()
        try:
            outcome = await reconcile(database, [ReconciledChain(client, chain.record)], "test", from_block=start)
        finally:
            await client.close()
        return sorted((item.category.value, item.what, item.detail) for item in outcome.results[0].items)

    assert await run() == []  # as recorded: salt, delay, proposer, decoded calls and senders all agree
    with database.unit_of_work() as uow:
        (row,) = uow.session.scalars(select(GovernanceProposalRow))
        true = (row.proposer, row.delay_seconds, row.calls[0]["decoded"])
        assert true[0] == chain.record.address("Safe")
        row.salt, row.predecessor, row.delay_seconds = "0x" + "00" * 32, "0x" + "11" * 32, 1
        row.proposer = STRANGER
        row.calls = [row.calls[0] | {"decoded": "CreditAggregator.setGracePeriod(newGracePeriod=1)"}]
        action = uow.session.scalars(select(GovernanceActionRow).order_by(GovernanceActionRow.id)).first()
        assert action is not None
        action.sender = STRANGER
        uow.commit()

    found = await run()

    operation = [
        f"salt: recorded 0x{'00' * 32}, on-chain {salt}",
        f"predecessor: recorded 0x{'11' * 32}, on-chain 0x{'00' * 32}",
        f"delay: recorded 1 s, on-chain {true[1]} s",
        f"proposer: recorded {STRANGER}, the scheduling transaction's is {true[0]}",
        "call 0 decoded: recorded 'CreditAggregator.setGracePeriod(newGracePeriod=1)', its calldata decodes as "
        f"{true[2]!r}",
    ]
    assert found == sorted(
        [
            (
                Category.FIELD_MISMATCH.value,
                "Paused",
                f"sender: recorded {STRANGER}, on-chain {GUARDIAN.lower()} (Paused)",
            ),
            (Category.PROPOSAL_MISMATCH.value, "proposal", "; ".join(operation)),
        ]
    )
