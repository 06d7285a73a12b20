"""Offer nonces come in sequence and are never handed out twice: threads on SQLite, processes' worth of
stores (separate engines) on PostgreSQL. Each reservation is its own unit of work here; the quoting service
reserves inside the unit of work that writes the quotes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event

from aggregator.quote_store import FIRST_OFFER_NONCE, OfferNonceKey
from store.aggregator import SqlOfferNonceRepository
from store.db import Database
from store.quoting import SqlQuotingStore

pytestmark = pytest.mark.integration

AGGREGATOR = "0x" + "ab" * 20
SIGNER = "0x" + "cd" * 20
KEY = OfferNonceKey(31337, AGGREGATOR, SIGNER)


class OfferNonces:
    """Reserves offer nonces, one unit of work a call."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def reserve(self, counts: dict[OfferNonceKey, int]) -> dict[OfferNonceKey, range]:
        with self.database.unit_of_work() as uow:
            repository = SqlOfferNonceRepository(uow.session)
            blocks = {key: repository.reserve(key, counts[key]) for key in sorted(counts)}
            uow.commit()
        return blocks


def _draw(allocators: list[OfferNonces], rounds: int) -> list[int]:
    def one(i: int) -> range:
        return allocators[i % len(allocators)].reserve({KEY: 1 + i % 3})[KEY]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [nonce for block in pool.map(one, range(rounds)) for nonce in block]


def test_blocks_are_sequential_per_signer_and_contract(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nonces.db'}")
    database.migrate()
    try:
        nonces = OfferNonces(database)
        assert nonces.reserve({KEY: 3}) == {KEY: range(FIRST_OFFER_NONCE, FIRST_OFFER_NONCE + 3)}
        assert nonces.reserve({KEY: 2}) == {KEY: range(FIRST_OFFER_NONCE + 3, FIRST_OFFER_NONCE + 5)}
        # Another chain, contract or signer has a counter of its own; one call reserves on several.
        others = (KEY._replace(chain_id=31338), KEY._replace(contract=SIGNER), KEY._replace(signer=AGGREGATOR))
        first = range(FIRST_OFFER_NONCE, FIRST_OFFER_NONCE + 1)
        assert nonces.reserve(dict.fromkeys(others, 1)) == dict.fromkeys(others, first)
        # A restarted process continues where the store left off.
        assert OfferNonces(database).reserve({KEY: 1}) == {KEY: range(6, 7)}
        with pytest.raises(ValueError, match="at least 1"):
            nonces.reserve({KEY: 0})
        # The quoting store's repository: one nonce per key, in the unit of work that writes the quotes.
        with SqlQuotingStore(database).unit_of_work() as uow:
            reserved = uow.quoting.reserve_offer_nonces([KEY, others[0], KEY])
            uow.commit()
        assert reserved == {KEY: 7, others[0]: FIRST_OFFER_NONCE + 1}
        with SqlQuotingStore(database).unit_of_work() as uow:
            uow.quoting.reserve_offer_nonces([KEY])  # not committed: the nonce is not spent
        assert nonces.reserve({KEY: 1}) == {KEY: range(8, 9)}
    finally:
        database.dispose()


def test_concurrent_threads_on_sqlite_never_share_a_nonce(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nonces.db'}")
    database.migrate()
    try:
        drawn = _draw([OfferNonces(database)], 120)
        assert sorted(drawn) == list(range(FIRST_OFFER_NONCE, FIRST_OFFER_NONCE + len(drawn)))
    finally:
        database.dispose()


def test_separate_allocators_on_postgresql_never_share_a_nonce(postgres_schema: Callable[[str], str]) -> None:
    url = postgres_schema("offer_nonces")
    databases = [Database(url) for _ in range(3)]
    databases[0].migrate()
    try:
        drawn = _draw([OfferNonces(database) for database in databases], 120)
        assert sorted(drawn) == list(range(FIRST_OFFER_NONCE, FIRST_OFFER_NONCE + len(drawn)))
    finally:
        for database in databases:
            database.dispose()


def test_the_quoting_stores_on_postgresql_reserve_every_key_at_once_and_never_share_a_nonce(
    postgres_schema: Callable[[str], str],
) -> None:
    """``SqlQuotingStore.reserve_offer_nonces`` on PostgreSQL: one statement in autocommit for the keys that have a
    counter, the others created as before. Three stores (separate engines, as processes) reserving overlapping key
    sets from eight threads: each key's nonces in sequence, none handed out twice, no deadlock."""
    url = postgres_schema("offer_nonces_at_once")
    databases = [Database(url) for _ in range(3)]
    databases[0].migrate()
    keys = [KEY, KEY._replace(chain_id=31338), KEY._replace(contract=SIGNER), KEY._replace(signer=AGGREGATOR.upper())]
    stores = [SqlQuotingStore(database) for database in databases]
    statements: list[str] = []
    for database in databases:
        event.listen(database.engine, "before_cursor_execute", lambda _c, _k, sql, *_: statements.append(sql))
    try:
        first = stores[0].reserve_offer_nonces([KEY, keys[1]])  # no counters yet: created
        assert first == {KEY: FIRST_OFFER_NONCE, keys[1]: FIRST_OFFER_NONCE}
        statements.clear()
        assert stores[1].reserve_offer_nonces([keys[1], KEY, KEY]) == {KEY: 2, keys[1]: 2}
        assert len(statements) == 1  # one round trip: no BEGIN, no COMMIT
        assert statements[0].startswith("WITH wanted")

        def one(i: int) -> dict[OfferNonceKey, int]:
            return stores[i % 3].reserve_offer_nonces(keys[i % 4 :] + keys[: i % 3])

        with ThreadPoolExecutor(max_workers=8) as pool:
            drawn = list(pool.map(one, range(90)))
        for key in keys:
            mine = sorted(nonces[key] for nonces in [first, {KEY: 2, keys[1]: 2}, *drawn] if key in nonces)
            assert mine == list(range(FIRST_OFFER_NONCE, FIRST_OFFER_NONCE + len(mine)))
    finally:
        for database in databases:
            database.dispose()
