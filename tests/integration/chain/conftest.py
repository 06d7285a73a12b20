"""Fixtures of the chain layer's integration tests: fresh anvils per test (reorgs, paused mining, fee spikes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chain.client import ChainClient
from chain.devnet import Devnet
from store.chain import SqlChainStore
from tests.integration.chain.support import chain_store, fresh_anvil


@pytest.fixture
def anvil() -> Iterator[Devnet]:
    with fresh_anvil() as devnet:
        yield devnet


@pytest.fixture
async def client(anvil: Devnet) -> AsyncIterator[ChainClient]:
    chain_client = ChainClient(anvil.config(), timeout=5.0)
    await chain_client.connect()
    yield chain_client
    await chain_client.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlChainStore]:
    store, engine = chain_store(f"sqlite:///{tmp_path / 'chain.db'}")
    yield store
    engine.dispose()


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[SqlChainStore]:
    store, engine = chain_store(postgres_url)
    yield store
    engine.dispose()
