"""A run on a chain with more than one confirmation, on a real devnet and PostgreSQL, with the ledger built by the
indexer's own reader at the chain's depth: a run ends at the confirmed head (head - confirmations + 1, the last block
the indexer records) and an incremental run (``since_last``) goes on from there. Read to the raw head, every run
reported the newest loans as on-chain-not-recorded, and an incremental run started after blocks it had read
unconfirmed, so a loan opened in a block that replaced them (a reorg) was never reconciled."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aggregator.ledger import LedgerChain, watched_contracts
from api.reconcile_jobs import ReconciledChain, RunOutcome, reconcile
from chain.client import ChainClient
from chain.config import ChainConfig
from chain.events import EventReader
from store.chain import SqlChainStore
from store.db import Database
from store.loan_ledger import batch_writer
from tests.support.devnet import DeployedChain
from tests.support.reconcile import LoanMaker

pytestmark = pytest.mark.integration

DEPTH = 3


@pytest.fixture
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema(f"reconcile_depth_{os.urandom(3).hex()}"))
    db.migrate()
    yield db
    db.dispose()


def _deep(chain: DeployedChain) -> ChainConfig:
    return chain.config.model_copy(update={"confirmations": DEPTH})


async def _index(chain: DeployedChain, database: Database, start: int) -> None:
    """The ledger as the production indexer keeps it: facts up to ``DEPTH`` blocks deep (its own checkpoint)."""
    client = await ChainClient(_deep(chain)).connect()
    try:
        reader = EventReader(
            client,
            SqlChainStore(database.sessions),
            watched_contracts(chain.record),
            reader="indexer",
            start_block=start,
        )
        assert reader.confirmations == DEPTH
        await reader.poll(writer=batch_writer(LedgerChain.from_record(chain.record)))
    finally:
        await client.close()


async def _run(
    chain: DeployedChain, database: Database, *, from_block: int | None = None, since_last: bool = False
) -> RunOutcome:
    client = await ChainClient(_deep(chain)).connect()
    try:
        chains = [ReconciledChain(client, chain.record)]
        return await reconcile(database, chains, "test", from_block=from_block, since_last=since_last)
    finally:
        await client.close()


def _rpc(chain: DeployedChain, method: str, *params: object) -> Any:
    return chain.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def _confirm(chain: DeployedChain) -> None:
    """``DEPTH`` empty blocks: every block before them is confirmed."""
    for _ in range(DEPTH):
        _rpc(chain, "evm_mine")


async def test_a_run_ends_at_the_confirmed_head_and_the_next_goes_on_from_there(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    loans = [maker.open(n) for n in range(4)]
    last_block = int(chain.w3.eth.get_transaction_receipt(loans[-1].tx_hash)["blockNumber"])  # type: ignore[arg-type]
    await _index(chain, database, start)
    head = maker.head()
    first = (await _run(chain, database, from_block=start)).results[0]
    assert first.scope.to_block == head - DEPTH + 1 < last_block  # the newest loan not confirmed yet
    assert first.scope.at_head  # judged as at the head: the records' states are the confirmed head's
    assert first.items == []

    _confirm(chain)
    await _index(chain, database, start)
    second = (await _run(chain, database, since_last=True)).results[0]
    assert (second.scope.from_block, second.scope.to_block) == (first.scope.to_block + 1, maker.head() - DEPTH + 1)
    assert second.items == []
    assert first.counts["matched"] + second.counts["matched"] == 2 * len(loans)  # each its opening and collateral


async def test_an_incremental_run_reads_the_blocks_a_reorg_replaced(
    database: Database, ethereum_local: DeployedChain
) -> None:
    chain = ethereum_local
    maker = LoanMaker(chain, database)
    start = maker.head() + 1
    maker.open(0)
    _confirm(chain)
    snapshot = _rpc(chain, "evm_snapshot")
    replaced = maker.open(1)  # in a block about to be replaced: not confirmed when the first run reads
    replaced_block = int(chain.w3.eth.get_transaction_receipt(replaced.tx_hash)["blockNumber"])  # type: ignore[arg-type]
    await _index(chain, database, start)
    first = (await _run(chain, database, from_block=start)).results[0]
    assert first.items == []
    assert first.scope.to_block < replaced_block  # past the run's range: read again by the next

    _rpc(chain, "evm_revert", snapshot)
    outside = maker.open(2, ours=False)  # opened outside the platform in the block that replaced it
    _confirm(chain)
    await _index(chain, database, start)
    second = (await _run(chain, database, since_last=True)).results[0]
    assert second.scope.from_block == first.scope.to_block + 1 <= replaced_block
    assert [(item.category.value, item.subject) for item in second.items] == [
        ("opened-without-accept", f"loan #{outside.onchain_id}")
    ]
