"""A clean reconciliation over at least 1,000 loans across three chains reports zero discrepancies: the loans made
with presigned transactions on this test's own three devnets (``bench.bulk_loans``), our records written as the
platform writes them, the ledger built by the indexer's path. Behind ``-m slow`` (``make slow``); the default run
has the smaller clean run of ``test_reconcile.py``. ``CREDITMESH_RECONCILE_LOANS`` changes the count."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from api.reconcile_jobs import ReconciledChain, reconcile
from bench.bulk_loans import index_ledger, open_loans
from chain.client import ChainClient
from compliance.reconcile import Category
from store.db import Database
from tests.support.devnet import deployed_devnets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOANS = int(os.environ.get("CREDITMESH_RECONCILE_LOANS", "1002"))


@pytest.mark.timeout(1800)
async def test_a_clean_run_over_a_thousand_loans_on_three_chains(
    postgres_schema: Callable[[str], str], tmp_path: Path
) -> None:
    database = Database(postgres_schema(f"bulk_{os.urandom(3).hex()}"))
    database.migrate()
    try:
        with deployed_devnets(tmp_path) as chains:
            per_chain = LOANS // len(chains)
            for chain in chains.values():
                made = open_loans(chain.config, chain.record, database, per_chain)
                await index_ledger(chain.config, chain.record, database, made.from_block)
            clients = [await ChainClient(chain.config).connect() for chain in chains.values()]
            try:
                outcome = await reconcile(
                    database,
                    [
                        ReconciledChain(client, chain.record)
                        for client, chain in zip(clients, chains.values(), strict=True)
                    ],
                    "test",
                )
            finally:
                for client in clients:
                    await client.close()
        for result in outcome.results:
            assert result.items == [], result.items[:5]
            # every loan's LoanOpened and every deployment wiring event matched
            assert result.counts[Category.MATCHED.value] >= per_chain
        assert sum(r.counts[Category.MATCHED.value] for r in outcome.results) >= LOANS
    finally:
        database.dispose()
