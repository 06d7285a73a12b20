"""chain.transactions._claims: one read of the open intents' leases tells every manager of a process whether its
claim round would find anything, and is kept for a while."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from chain.transactions._claims import LeaseView, OpenLeases
from store.chain import SqlChainStore

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
LATER, EARLIER = NOW + timedelta(seconds=10), NOW - timedelta(seconds=1)


def test_an_account_is_claimed_for_when_a_lease_is_free_or_expired_or_its_owner_follows_fewer_than_it_owns() -> None:
    view = LeaseView.of(
        NOW,
        [
            (1, "0xA", "live", LATER),  # a live owner's
            (1, "0xA", "live", LATER),
            (1, "0xB", "dead", EARLIER),  # expired
            (2, "0xA", None, None),  # no owner
            (3, "0xA", "owner", None),  # no lease
        ],
    )
    assert not view.to_claim(1, "0xA", "other", following=0)  # another process's live intents: never claimed
    assert not view.to_claim(1, "0xA", "live", following=2)  # its owner follows both
    assert view.to_claim(1, "0xA", "live", following=1)  # one it owns and stopped following (a failed send)
    assert view.to_claim(1, "0xB", "other", following=0)
    assert view.to_claim(2, "0xA", "other", following=0)
    assert view.to_claim(3, "0xA", "other", following=0)
    assert not view.to_claim(4, "0xA", "other", following=0)


class _Store:
    def __init__(self) -> None:
        self.reads = 0
        self.rows: list[tuple[int, str, str | None, datetime | None]] = []

    async def open_leases(self) -> tuple[datetime, list[tuple[int, str, str | None, datetime | None]]]:
        self.reads += 1
        return NOW, list(self.rows)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_read_answers_every_manager_until_it_is_older_than_asked() -> None:
    store, clock = _Store(), _Clock()
    leases = OpenLeases(cast(Any, store), clock)
    store.rows = [(1, "0xA", None, None)]

    async def scenario() -> None:
        assert (await leases.view(max_age=5)).to_claim(1, "0xA", "me", following=0)
        assert not (await leases.view(max_age=5)).to_claim(1, "0xB", "me", following=0)
        assert store.reads == 1
        store.rows = [(1, "0xB", "dead", EARLIER)]  # another process died meanwhile
        clock.now += 4.9
        assert not (await leases.view(max_age=5)).to_claim(1, "0xB", "me", following=0)  # younger: the same read
        clock.now += 0.1
        assert (await leases.view(max_age=5)).to_claim(1, "0xB", "me", following=0)
        assert store.reads == 2
        await leases.view(max_age=0)  # a manager with a shorter lease reads again
        assert store.reads == 3

    asyncio.run(scenario())


def test_managers_on_one_store_share_one_instance() -> None:
    first, second = cast(SqlChainStore, _Store()), cast(SqlChainStore, _Store())
    assert OpenLeases.of(first) is OpenLeases.of(first)
    assert OpenLeases.of(first) is not OpenLeases.of(second)
