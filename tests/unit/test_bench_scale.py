"""bench.scale's summary: the goals' ratios, and beside them the measures that move less with the machine's speed
(CPU a request against the baseline's, the sequential excess in ms)."""

from __future__ import annotations

import argparse

import pytest

from bench.quote_path import level_seconds, percentile_samples
from bench.scale import interleaved
from bench.scale_report import Level, Result, summary, table

pytestmark = pytest.mark.unit


def _level(app: str, concurrency: int, p50_ms: float, rate: float, cpu: float) -> Level:
    return Level(
        app=app,
        processes=1,
        concurrency=concurrency,
        requests=100,
        errors=0,
        seconds=10.0,
        p50_ms=p50_ms,
        p95_ms=p50_ms + 10,
        p99_ms=p50_ms + 20,
        p50_x_lender=round(p50_ms / 100, 2),
        p95_x_lender=round((p50_ms + 10) / 100, 2),
        p99_x_lender=round((p50_ms + 20) / 100, 2),
        requests_per_second=rate,
        cpu_ms_per_request=cpu,
        lenders_cpu_ms_per_request=4.5,
    )


def _result() -> Result:
    return Result(
        label="t",
        latency_ms=100.0,
        lenders=10,
        processes=1,
        concurrency_per_process=10,
        machine={"cpus": 2, "load_average_at_start": [0.5, 0.5, 0.5]},
        slowest_lender_p50_ms=100.0,
        lender_p50_ms={},
        levels=[
            _level("baseline", 1, 107.0, 9.3, 5.0),
            _level("baseline", 10, 112.0, 88.0, 4.0),
            _level("platform", 1, 121.5, 8.2, 20.0),
            _level("platform", 10, 180.0, 52.8, 16.0),
        ],
        loans=None,
        peak_rss_mb={"api-1 (N=1)": 230.0},
        idle_rss_mb={"api-1 (N=1)": 228.0},
        load_average_at_end=[1.0, 1.0, 1.0],
    )


def test_the_summary_gives_cpu_against_the_baseline_and_the_sequential_excess() -> None:
    found = summary(_result())["by_processes"]["1"]
    assert found["throughput_of_baseline"] == 0.6
    assert (found["cpu_ms_per_request"], found["baseline_cpu_ms_per_request"]) == (16.0, 4.0)
    assert found["cpu_x_baseline"] == 4.0
    assert found["lenders_cpu_ms_per_request"] == 4.5
    assert found["sequential_excess_ms"] == 14.5


def test_the_table_prints_them_beside_the_goals() -> None:
    printed = table(_result())
    assert "throughput 52.8 vs baseline 88.0 req/s = 60% of baseline (met: >= 60%)" in printed
    assert "CPU a credit request under load 16.0 ms = 4.0x the baseline's 4.0 ms" in printed
    assert "sequential p50 14.5 ms above the baseline's" in printed


def test_a_level_with_requests_not_answered_meets_no_goal() -> None:
    result = _result()
    loaded = result.levels[3]
    loaded.errors, loaded.statuses = 40, {"201": 100, "503": 40}
    loaded.requests_per_second = 120.0  # fast because it refused: above the baseline's 88
    found = summary(result)["by_processes"]["1"]
    assert found["throughput_of_baseline"] > 1
    assert found["throughput_met"] is False
    printed = table(result)
    assert "of baseline (NOT met: >= 60%)" in printed
    assert "platform concurrency 10: 40 of 140 requests not answered 201" in printed


def test_a_platform_level_whose_lenders_did_not_all_offer_meets_no_goal() -> None:
    result = _result()
    sequential = result.levels[2]
    sequential.p50_x_lender, sequential.p99_x_lender = 1.05, 1.2  # within both latency goals…
    sequential.outcomes = {"offered": 990, "failed: breaker open": 10}  # …because ten lender calls were skipped
    found = summary(result)["by_processes"]["1"]
    assert found["p50_met"] is False
    assert found["p99_met"] is False
    assert "platform concurrency 1: 10 of 1000 provider outcomes not offered" in table(result)
    sequential.outcomes = {"offered": 1000}
    assert summary(result)["by_processes"]["1"]["p50_met"] is True


def test_the_two_sides_of_each_ratio_are_measured_back_to_back_in_alternating_order() -> None:
    platform = ("platform", "http://platform", [1], None)
    baseline = ("baseline", "http://baseline", [2], None)
    order = [(concurrency, side[0]) for concurrency, side in interleaved((1, 10, 20), [platform, baseline])]
    assert order == [
        (1, "platform"),
        (1, "baseline"),
        (10, "baseline"),
        (10, "platform"),
        (20, "platform"),
        (20, "baseline"),
    ]


def test_each_one_at_a_time_level_says_how_many_samples_its_percentiles_rest_on() -> None:
    printed = table(_result())  # 100 answered requests a level
    assert "platform x1 one at a time: p50/p95/p99 over 100 samples (the p99 is the 2nd highest)" in printed
    assert percentile_samples(40) == "p50/p95/p99 over 40 samples (the p99 is the 1st highest)"
    assert percentile_samples(1000) == "p50/p95/p99 over 1000 samples (the p99 is the 11th highest)"


def test_the_one_at_a_time_level_runs_twice_as_long_unless_told() -> None:
    args = argparse.Namespace(seconds=10.0, sequential_seconds=None)
    assert (level_seconds(args, 1), level_seconds(args, 10)) == (20.0, 10.0)
    args.sequential_seconds = 30.0
    assert level_seconds(args, 1) == 30.0


def test_the_supervisor_is_sampled_against_the_memory_goal_and_the_interval_is_printed() -> None:
    result = _result()
    result.peak_rss_mb |= {"supervisor (N=2)": 262.0}
    result.idle_rss_mb |= {"supervisor (N=2)": 80.0}
    assert summary(result)["peak_supervisor_rss_mb"] == 262.0
    printed = table(result)
    assert "RSS MB idle (warm) -> peak (read every 0.25 s): " in printed
    assert "supervisor (N=2) 80.0 -> 262.0 (NOT met: every API process and supervisor <= 250 MB)" in printed
