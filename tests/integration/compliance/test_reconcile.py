"""The reconciler against real devnets and PostgreSQL: loans opened on-chain through the relayer with our records
(quote, accept, the ledger built by the indexer's path), then each category produced on purpose and detected — a
deleted loan record, an altered amount, a status that is not the chain's, a loan opened with the relayer key outside
the accept saga, a repayment recorded but never sent, a loan reorged away (anvil snapshot and revert), a contract at
our address replaced by another (``anvil_setCode``) and the unknown event it emits; a clean run over three chains
reports nothing but matches; the run is stored and audited, and its reports render."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import select, update

from api.reconcile_jobs import ReconciledChain, load_report, reconcile
from chain.artifacts import load_artifact
from chain.client import ChainClient
from compliance.reconcile import Category
from compliance.reconcile_report import to_csv, to_html, to_json
from store.aggregator import LoanRow
from store.chain import ChainIntentRow
from store.compliance import AuditEntryRow, SqlAuditLog
from store.db import Database
from store.ledger import ChainFactRow, LoanRepaymentRow
from tests.contracts.harness import DEPLOYER, USDC
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker, index

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/setup.sh


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


async def _run(database: Database, chains: list[DeployedChain], starts: dict[str, int]) -> Any:
    clients = [await ChainClient(chain.config).connect() for chain in chains]
    try:
        outcomes = []
        # one run per distinct start: the session devnets carry other tests' loans before ``starts``
        for chain, client in zip(chains, clients, strict=True):
            outcomes.append(
                await reconcile(
                    database, [ReconciledChain(client, chain.record)], "test", from_block=starts[chain.name]
                )
            )
        return outcomes
    finally:
        for client in clients:
            await client.close()


def _rpc(chain: DeployedChain, method: str, *params: Any) -> Any:
    return chain.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


async def test_a_clean_run_over_three_chains_reports_only_matches(
    database: Database, devnet_chains: dict[str, DeployedChain]
) -> None:
    chains = list(devnet_chains.values())
    starts: dict[str, int] = {}
    digests = set()
    for chain in chains:
        with chain.snapshot():
            maker = LoanMaker(chain, database)
            starts[chain.name] = maker.head() + 1
            loans = [maker.open(n) for n in range(4)]
            maker.repay(loans[0], 3 * USDC)
            maker.repay(loans[1], 20 * USDC)  # more than owed: closes it (repaid)
            await index(chain, database, starts[chain.name])
            (outcome,) = await _run(database, [chain], starts)
        result = outcome.results[0]
        assert result.items == [], result.items
        assert result.counts[Category.MATCHED.value] >= 4 + 2 + 1  # opened, repaid, closed
        digests.add(outcome.digest)
    with database.unit_of_work() as uow:
        audited = uow.session.scalars(select(AuditEntryRow).where(AuditEntryRow.kind == "reconciliation")).all()
        assert {entry.data["digest"] for entry in audited} == digests
        assert len(audited) == 3


async def _rendered(path: Path) -> tuple[list[list[str]], list[str], str]:
    """The discrepancy table's rows (cell texts), its transaction links and the verdict, as headless Chromium shows
    the report (Debian's browser, driven by Playwright; no network: the page is one file)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            await page.route(
                "**/*", lambda route: route.abort() if route.request.url.startswith("http") else route.continue_()
            )
            await page.goto(path.as_uri())
            rows = await page.locator("#discrepancies tbody tr").evaluate_all(
                "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))"
            )
            links = await page.locator("#discrepancies a").evaluate_all("links => links.map(a => a.href)")
            verdict = await page.locator("p.bad, p.ok").first.inner_text()
        finally:
            await browser.close()
    return rows, links, verdict


async def test_each_category_is_produced_and_detected(
    database: Database, ethereum_local: DeployedChain, tmp_path: Path
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loans = [maker.open(n) for n in range(6)]
    repaid_tx = maker.repay(loans[0], 2 * USDC)
    outside = maker.open(99, ours=False)  # the relayer's key, no quote or accept of ours
    await index(chain, database, start)

    # a loan reorged away after the ledger recorded it
    snapshot = _rpc(chain, "evm_snapshot")
    reorged = maker.open(7)
    await index(chain, database, maker.head())
    _rpc(chain, "evm_revert", snapshot)
    for _ in range(3):
        _rpc(chain, "evm_mine")

    with database.unit_of_work() as uow:
        session = uow.session
        deleted = session.get(LoanRow, loans[1].loan_id)
        assert deleted is not None
        session.delete(deleted)  # a deleted loan record
        session.execute(update(LoanRow).where(LoanRow.id == loans[2].loan_id).values(principal=11 * USDC))
        session.execute(update(LoanRow).where(LoanRow.id == loans[3].loan_id).values(status="defaulted"))
        # a repayment recorded but never sent
        fact = ChainFactRow(
            chain_id=chain.chain_id,
            contract="CreditAggregator",
            address=maker.h.aggregator.address,
            event="LoanRepaid",
            args={"loanId": str(loans[4].onchain_id)},
            loan_ref=loans[4].onchain_id,
            block_number=start + 1,
            block_hash="0x" + "ee" * 32,
            tx_hash="0x" + "ab" * 32,
            log_index=0,
            source="receipt",
            recorded_at=datetime.now(UTC),
        )
        session.add(fact)
        session.flush()
        session.add(
            LoanRepaymentRow(
                loan_id=loans[4].loan_id,
                fact_id=fact.id,
                payer=DEPLOYER.address,
                interest_paid=1,
                principal_paid=1 * USDC,
                outstanding_principal=9 * USDC,
                payment_ref="0x" + "00" * 32,
            )
        )
        # a repayment the platform relayed and recorded confirmed, whose transaction the chain does not have
        session.add(
            ChainIntentRow(
                key=f"repay:{chain.chain_id}:0x{'cd' * 32}",
                chain_id=chain.chain_id,
                sender=DEPLOYER.address,
                to_address=maker.h.aggregator.address,
                data="0x",
                value=0,
                payload_hash="0x" + "00" * 32,
                status="confirmed",
                tx_hash="0x" + "cd" * 32,
                block_number=start + 2,
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
        uow.commit()

    # our oracle's address now runs a token's code, and emits a Transfer (in no ABI of the oracle)
    oracle = chain.record.address("CreditScoringOracle")
    _rpc(chain, "anvil_setCode", oracle, load_artifact("MockERC20").deployed_bytecode)
    token = chain.w3.eth.contract(address=oracle, abi=load_artifact("MockERC20").abi)
    chain.w3.eth.wait_for_transaction_receipt(
        token.functions.mint(DEPLOYER.address, 1).transact({"from": DEPLOYER.address})
    )

    (outcome,) = await _run(database, [chain], {chain.name: start})
    items = outcome.results[0].items
    by_category: dict[str, list[Any]] = {}
    for item in items:
        by_category.setdefault(item.category.value, []).append(item)

    assert {i.subject for i in by_category[Category.ONCHAIN_NOT_RECORDED.value]} >= {f"loan #{loans[1].onchain_id}"}
    assert any("principal: recorded 11000000" in i.detail for i in by_category[Category.AMOUNT_MISMATCH.value])
    assert any("recorded defaulted, on-chain active" in i.detail for i in by_category[Category.STATUS_MISMATCH.value])
    assert [i.subject for i in by_category[Category.OPENED_WITHOUT_ACCEPT.value]] == [f"loan #{outside.onchain_id}"]
    not_onchain = by_category[Category.RECORDED_NOT_ONCHAIN.value]
    assert {i.record_ref for i in not_onchain} == {
        loans[4].loan_id,
        reorged.loan_id,
        f"repay:{chain.chain_id}:0x{'cd' * 32}",
    }
    unknown = by_category[Category.UNKNOWN_EVENT.value]
    assert any(i.what == "CreditScoringOracle" and "not CreditScoringOracle's" in i.detail for i in unknown)
    assert any(i.subject == oracle and "topic" in i.detail for i in unknown)
    matched_repayment = [i for i in items if i.tx_hash == repaid_tx]
    assert matched_repayment == []  # the real repayment matched

    # stored, audited, and rendered
    report = load_report(database, outcome.run_id, {chain.name: "https://explorer.example/tx/{tx}"})
    assert report is not None
    assert report.digest == outcome.digest
    assert len(report.items) == len(items)
    assert report.counts[Category.MATCHED.value] > 0
    page = tmp_path / "report.html"
    page.write_text(to_html(report))
    rows, links, verdict = await _rendered(page)
    assert len(rows) == len(items)
    assert verdict == f"{len(items)} discrepancies."
    assert ["ethereum-local", "opened-without-accept", f"loan #{outside.onchain_id}"] in [row[:3] for row in rows]
    assert f"https://explorer.example/tx/{outside.tx_hash}" in links
    assert to_csv(report).count("\n") == len(items) + 1
    assert outcome.run_id in to_json(report)
    with database.unit_of_work() as uow:
        SqlAuditLog(uow.session).seal()
        kinds = [entry.kind for entry in SqlAuditLog(uow.session).entries()]
        uow.commit()
    assert "reconciliation" in kinds
