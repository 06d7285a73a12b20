"""Offer nonces come in sequence and are never handed out twice: threads on SQLite, processes' worth of
allocators (separate engines) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aggregator.offer_nonces import FIRST_NONCE, OfferNonceAllocator
from store.db import Database

pytestmark = pytest.mark.integration

AGGREGATOR = "0x" + "ab" * 20
SIGNER = "0x" + "cd" * 20


def _draw(allocators: list[OfferNonceAllocator], rounds: int) -> list[int]:
    def one(i: int) -> range:
        return allocators[i % len(allocators)].reserve(31337, AGGREGATOR, SIGNER, 1 + i % 3)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [nonce for block in pool.map(one, range(rounds)) for nonce in block]


def test_blocks_are_sequential_per_signer_and_contract(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nonces.db'}")
    database.migrate()
    try:
        nonces = OfferNonceAllocator(database)
        assert nonces.reserve(31337, AGGREGATOR, SIGNER, 3) == range(FIRST_NONCE, FIRST_NONCE + 3)
        assert nonces.reserve(31337, AGGREGATOR, SIGNER, 2) == range(FIRST_NONCE + 3, FIRST_NONCE + 5)
        # Another chain, contract or signer has a counter of its own.
        assert nonces.reserve(31338, AGGREGATOR, SIGNER, 1) == range(FIRST_NONCE, FIRST_NONCE + 1)
        assert nonces.reserve(31337, SIGNER, SIGNER, 1) == range(FIRST_NONCE, FIRST_NONCE + 1)
        assert nonces.reserve(31337, AGGREGATOR, AGGREGATOR, 1) == range(FIRST_NONCE, FIRST_NONCE + 1)
        # A restarted process continues where the store left off.
        assert OfferNonceAllocator(database).reserve(31337, AGGREGATOR, SIGNER, 1) == range(6, 7)
        with pytest.raises(ValueError, match="at least 1"):
            nonces.reserve(31337, AGGREGATOR, SIGNER, 0)
    finally:
        database.dispose()


def test_concurrent_threads_on_sqlite_never_share_a_nonce(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nonces.db'}")
    database.migrate()
    try:
        drawn = _draw([OfferNonceAllocator(database)], 120)
        assert sorted(drawn) == list(range(FIRST_NONCE, FIRST_NONCE + len(drawn)))
    finally:
        database.dispose()


def test_separate_allocators_on_postgresql_never_share_a_nonce(postgres_schema: Callable[[str], str]) -> None:
    url = postgres_schema("offer_nonces")
    databases = [Database(url) for _ in range(3)]
    databases[0].migrate()
    try:
        drawn = _draw([OfferNonceAllocator(database) for database in databases], 120)
        assert sorted(drawn) == list(range(FIRST_NONCE, FIRST_NONCE + len(drawn)))
    finally:
        for database in databases:
            database.dispose()
