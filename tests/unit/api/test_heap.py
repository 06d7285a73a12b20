"""api.heap: start-up's objects frozen out of the collector's passes, the young generation's threshold raised."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from api.heap import REQUEST_GEN0_THRESHOLD, freeze_long_lived


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _tracked_ids() -> set[int]:
    return {id(obj) for obj in gc.get_objects()}


@pytest.mark.usefixtures("restored_collector")
def test_start_up_garbage_is_collected_then_what_is_left_frozen() -> None:
    kept = [_Cycle() for _ in range(100)]
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    del garbage  # a cycle: only the collector frees it
    freeze_long_lived()
    assert gone() is None
    assert gc.get_freeze_count() > len(kept)
    # no pass walks the frozen objects any more: they are in none of the three generations
    tracked = _tracked_ids()
    assert not any(id(obj) in tracked for obj in kept)
    assert gc.get_threshold()[0] == REQUEST_GEN0_THRESHOLD


@pytest.mark.usefixtures("restored_collector")
def test_without_the_collection_what_exists_is_frozen_as_it_is() -> None:
    garbage = _Cycle()
    kept = weakref.ref(garbage)
    del garbage
    freeze_long_lived(collect=False)
    gc.collect()
    cycle = kept()
    assert cycle is not None  # frozen with the rest: no pass frees it
    assert id(cycle) not in _tracked_ids()
