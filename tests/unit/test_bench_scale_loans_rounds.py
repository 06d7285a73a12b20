"""bench.scale's loans figure is measured as bench.scale_loans measures it: warm-up accepts first (not measured), then
several rounds, each side's rate the median of its rounds — not one cold round of 40 against raw's median of five."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest

from bench import _loan_rounds, scale

pytestmark = pytest.mark.unit


def test_the_loans_are_warmed_up_then_measured_in_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, Any] = {}

    def prepare(api_urls: list[str], admin_key: str, rpc_url: str, record: object, chain: str, count: int) -> list[int]:
        return list(range(count))

    async def accept_all(api_urls: list[str], borrowers: list[int]) -> tuple[float, dict[str, int]]:
        calls["warm"] = borrowers
        return 1.0, {"201": len(borrowers)}

    loans = SimpleNamespace(accepted=120, loans=120, api_loans_per_second=30.0)

    def measure(api_urls: list[str], borrowers: list[int], *args: Any, **kwargs: Any) -> SimpleNamespace:
        rounds = kwargs.get(
            "rounds", args[4] if len(args) > 4 else 1
        )  # measure(urls, borrowers, rpc, record, meters, profile, rounds)
        calls["measured"] = (borrowers, rounds)
        return loans

    # where warm_and_measure (bench.scale_loans's, from bench._loan_rounds) looks them up
    monkeypatch.setattr(_loan_rounds, "prepare", prepare)
    monkeypatch.setattr(_loan_rounds, "measure", measure)
    monkeypatch.setattr(_loan_rounds, "_accept_all", accept_all)
    devnet = SimpleNamespace(name=scale.LOAN_CHAIN, rpc_url="http://127.0.0.1:1", process=SimpleNamespace(pid=1))
    chains = SimpleNamespace(devnets=[devnet], deployments={scale.LOAN_CHAIN: object()})
    started = SimpleNamespace(chains=chains, postgres_data_dir=None, database_url="sqlite://")
    api = SimpleNamespace(url="http://127.0.0.1:2", pids={"api-1": 3, "api-2": 4}, process=SimpleNamespace(pid=5))
    args = argparse.Namespace(loans=40, loan_rounds=3, loan_warm=2)

    assert scale._loans(args, started, api) is loans  # type: ignore[arg-type, comparison-overlap]

    assert calls.get("warm") == [0, 1]
    borrowers, rounds = calls["measured"]
    assert (len(borrowers), rounds) == (120, 3)
    assert borrowers[0] == 2  # the warm-up's borrowers are not measured
