"""The name-screen cache: the same decision as a fresh screen, a new result when the list version changes, a bound,
and one search per name however often it is screened."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.sanctions.lists import AddressList, NameList, parse_name_list
from compliance.sanctions.name_cache import NameScreenCache
from compliance.sanctions.screening import NameHit, SanctionsScreen

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, tzinfo=UTC)
LISTED = "AL-WALID, Mahfouz Ould"


def _names(*rows: str, published: str = "2026-01-01") -> NameList:
    """A tiny sdn.csv: one entity per row."""
    lines = [f'{1000 + n},"{name}",individual,SDGT,-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-' for n, name in enumerate(rows)]
    return parse_name_list("\n".join(lines).encode(), "test", published)


@pytest.mark.parametrize("name", [LISTED, "Mahfouz Ould al Walid", "Abu Hafs, the Mauritanian", "Jane Doe-Nobody"])
def test_a_cached_screen_gives_the_fresh_screens_decision(
    screen: SanctionsScreen, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session's screen (its name index built once) with a cache of this test's own: whatever screened the name
    # before, in this process, cannot turn the first screen into a hit
    monkeypatch.setattr(screen, "name_cache", NameScreenCache())
    cached = screen
    hits, misses = cached.name_cache.hits, cached.name_cache.misses
    first = cached.screen_name(name, NOW)
    again = cached.screen_name(name, NOW)
    spaced = cached.screen_name(f"  {name.replace(' ', '   ')} ", NOW)
    fresh = screen._search_name(name, 5)
    assert first == again == list(fresh)
    assert [(h.ent_num, h.listed_name, h.score) for h in spaced] == [(h.ent_num, h.listed_name, h.score) for h in fresh]
    assert {h.query for h in spaced} <= {f"  {name.replace(' ', '   ')} "}  # each hit names the query as asked
    assert (cached.name_cache.misses - misses, cached.name_cache.hits - hits) == (1, 2)


def test_a_new_list_version_is_screened_afresh(shipped_lists: tuple[AddressList, NameList]) -> None:
    addresses = shipped_lists[0]
    shared: NameScreenCache[tuple[NameHit, ...]] = NameScreenCache()
    before = SanctionsScreen(addresses, _names("John Smith"), name_cache=shared)
    after = SanctionsScreen(addresses, _names("John Smith", "Ivan Petrov", published="2026-02-01"), name_cache=shared)
    assert before.screen_name("Ivan Petrov", NOW) == []
    assert [h.listed_name for h in after.screen_name("Ivan Petrov", NOW)] == ["Ivan Petrov"]
    assert before.screen_name("Ivan Petrov", NOW) == []  # the old version keeps its own answer
    assert (shared.misses, shared.hits) == (2, 1)


def test_the_cache_is_bounded() -> None:
    cache: NameScreenCache[int] = NameScreenCache(max_entries=3)
    for n in range(10):
        assert cache.get_or_screen((f"name {n}", "v1", 87.0, 3), lambda n=n: n) == n  # type: ignore[misc]
    assert len(cache) == 3
    assert cache.get_or_screen(("name 9", "v1", 87.0, 3), lambda: -1) == 9  # kept: among the most recent
    assert cache.get_or_screen(("name 0", "v1", 87.0, 3), lambda: -1) == -1  # evicted: screened again
