"""bench.scale_ab: the trees alternate A B, B A …; each tree's medians per concurrency and B / A of each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.scale_ab import Result, Slice, order, plot, summary, table
from bench.scale_report import Level

pytestmark = pytest.mark.unit


def _level(tree: str, concurrency: int, cpu: float, rate: float) -> Level:
    return Level(
        app=tree,
        processes=1,
        concurrency=concurrency,
        requests=100,
        errors=0,
        seconds=8.0,
        p50_ms=110.0,
        p95_ms=120.0,
        p99_ms=130.0,
        p50_x_lender=1.1,
        p95_x_lender=1.2,
        p99_x_lender=1.3,
        requests_per_second=rate,
        cpu_ms_per_request=cpu,
        lenders_cpu_ms_per_request=9.0,
    )


def _result() -> Result:
    cpus = {"A": [20.0, 22.0, 30.0], "B": [18.0, 23.0, 19.0]}
    slices = [
        Slice(tree, number + 1, _level(tree, concurrency, cpus[tree][number], 10.0 * concurrency), 3.0)
        for concurrency in (1, 10)
        for number in range(3)
        for tree in ("A", "B")
    ]
    return Result(
        label="t",
        trees={"A": "/a (abc)", "B": "/b (def)"},
        alembic_head="0025",
        latency_ms=100.0,
        lenders=10,
        seconds=8.0,
        slices_per_tree=3,
        machine={"cpus": 2, "load_average_at_start": [1.0, 1.0, 1.0]},
        slowest_lender_p50_ms=100.0,
        lender_p50_ms={"sim-lender-00": 100.0},
        slices=slices,
        duplicate_offer_nonces=0,
        load_average_at_end=[2.0, 2.0, 2.0],
    )


def test_the_trees_alternate_each_pair() -> None:
    assert [order(n) for n in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]


def test_each_trees_medians_and_b_over_a_per_concurrency() -> None:
    found = summary(_result())
    assert set(found) == {"1", "10"}
    assert found["1"]["A"]["cpu_ms_per_request"] == 22.0
    assert found["1"]["B"]["cpu_ms_per_request"] == 19.0
    assert found["1"]["B/A"]["cpu_ms_per_request"] == round(19 / 22, 3)
    assert found["10"]["B/A"]["requests_per_second"] == 1.0
    assert (found["1"]["pairs"], found["1"]["B_cpu_lower_in"]) == (3, 2)


def test_the_table_has_every_slice_and_the_plot_is_written(tmp_path: Path) -> None:
    result = _result()
    text = table(result)
    assert len([line for line in text.splitlines() if line.split()[:1] in (["1"], ["10"])]) == 12
    assert "c1: B's API spent less CPU a request than A's in 2 of 3 pairs" in text
    plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    json.dumps(summary(result))
