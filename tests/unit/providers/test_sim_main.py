"""The simulated lenders' process: its start-up heap is frozen before it serves (``providers.sim.__main__``)."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import uvicorn

from providers.sim import __main__ as sim_main


def test_the_start_up_heap_is_frozen_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[int] = []

    def run(app: Any, **_: Any) -> None:
        served.append(gc.get_freeze_count())

    monkeypatch.setattr(uvicorn, "run", run)
    gc.unfreeze()
    try:
        sim_main.main([])
    finally:
        gc.unfreeze()
    assert len(served) == 1
    assert served[0] > 1_000  # the modules' objects, frozen before uvicorn serves
