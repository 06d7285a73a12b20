"""``bench/scale.py``'s results: a load level, the run's result, the goals' ratios (``summary``), the table and the
plot — apart from the harness that measures them, so that each stays small."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.quote_path import LenderRun, LoadLevel, percentile_samples
from bench.scale_loans import LoansResult

GOAL_P50_X = 1.10
GOAL_P99_X = 1.3
GOAL_THROUGHPUT = 0.60
GOAL_LOANS = 0.50
GOAL_RSS_MB = 250.0
#: how often ``bench.scale``'s sampler reads each process's resident memory: a shorter peak can be missed
RSS_INTERVAL_SECONDS = 0.25
#: the provider outcome of a lender call that returned offers (``provider_outcomes.outcome``)
OFFERED = "offered"


@dataclass(kw_only=True)
class Level(LoadLevel):
    """One load level against one app: ``concurrency`` borrowers over ``processes`` processes."""

    app: str
    processes: int
    #: the simulated lenders' process (all ten lenders): under load it competes for the same two cores
    lenders_cpu_ms_per_request: float
    #: the balancer in front of n >= 2 processes (``creditmesh serve``'s supervisor, or ``python -m api.balancer``)
    balancer_cpu_ms_per_request: float = 0.0
    #: this process, the load client (one process for every level: whether the harness itself is the bottleneck)
    client_cpu_ms_per_request: float = 0.0
    #: the platform's stored provider outcomes of the level's requests, by kind (``_outcome_kind``)
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class FleetRun(LenderRun):
    """A run of ``bench/scale.py`` or ``bench/scale_ab.py``: against a fleet of ``lenders`` simulated lenders (the
    same fixed latency each), with the machine's load average at its end beside the one at its start."""

    lenders: int
    load_average_at_end: list[float]


@dataclass
class Result(FleetRun):
    #: N: the platform measured as 1, 2 … N processes
    processes: int
    concurrency_per_process: int
    levels: list[Level]
    loans: LoansResult | None
    #: each process's peak under the load ("api-2 (N=3)": the second API process when 3 ran)
    peak_rss_mb: dict[str, float]
    #: each process's resident memory once up and warm (its first two credit requests answered), before the load
    idle_rss_mb: dict[str, float]
    #: the peaks above are the highest of readings this far apart
    rss_interval_seconds: float = RSS_INTERVAL_SECONDS


def _find(result: Result, app: str, processes: int, sequential: bool) -> Level:
    return next(
        level
        for level in result.levels
        if level.app == app and level.processes == processes and (level.concurrency == 1) == sequential
    )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def faults(level: Level) -> list[str]:
    """Why ``level``'s figures cannot meet a goal, whatever their value: requests not answered 201 (the load client
    counts only answers in latencies and throughput, so a level with failures measured less than it was asked), and
    for the platform, lender calls whose stored outcome is not ``offered`` (every simulated lender offers: a request
    that left one out — breaker open, deadline, error — did less work than the baseline, which answers only when all
    ten calls returned)."""
    found = []
    if level.errors:
        found.append(f"{level.errors} of {level.requests + level.errors} requests not answered 201 {level.statuses}")
    others = {kind: count for kind, count in level.outcomes.items() if kind != OFFERED}
    if others:
        found.append(f"{sum(others.values())} of {sum(level.outcomes.values())} provider outcomes not offered {others}")
    return found


def summary(result: Result) -> dict[str, Any]:
    """The ratios the goals are stated in, and whether each goal is met: never by a level with ``faults``."""
    by_n: dict[str, Any] = {}
    for n in sorted({level.processes for level in result.levels}):
        platform, baseline = _find(result, "platform", n, True), _find(result, "baseline", n, True)
        loaded, loaded_base = _find(result, "platform", n, False), _find(result, "baseline", n, False)
        throughput = round(loaded.requests_per_second / max(loaded_base.requests_per_second, 0.01), 3)
        by_n[str(n)] = {
            "p50_x_lender": platform.p50_x_lender,
            "p99_x_lender": platform.p99_x_lender,
            "baseline_p50_x_lender": baseline.p50_x_lender,
            "baseline_p99_x_lender": baseline.p99_x_lender,
            "requests_per_second": loaded.requests_per_second,
            "baseline_requests_per_second": loaded_base.requests_per_second,
            "throughput_of_baseline": throughput,
            "p50_met": platform.p50_x_lender <= GOAL_P50_X and not faults(platform),
            "p99_met": platform.p99_x_lender <= GOAL_P99_X and not faults(platform),
            "throughput_met": throughput >= GOAL_THROUGHPUT and not faults(loaded) and not faults(loaded_base),
            "faults": {
                f"{level.app} concurrency {level.concurrency}": found
                for level in (platform, loaded, baseline, loaded_base)
                if (found := faults(level))
            },
            # Measures that move less with the machine's speed than the ratios above (docs/performance.md, "How to
            # read the figures"): both apps' CPU a request scale with it alike, and the lenders' is the gauge of it.
            "cpu_ms_per_request": loaded.cpu_ms_per_request,
            "baseline_cpu_ms_per_request": loaded_base.cpu_ms_per_request,
            "cpu_x_baseline": round(loaded.cpu_ms_per_request / max(loaded_base.cpu_ms_per_request, 0.1), 2),
            "lenders_cpu_ms_per_request": loaded.lenders_cpu_ms_per_request,
            "sequential_excess_ms": round(platform.p50_ms - baseline.p50_ms, 1),
        }
    apis = {name: mb for name, mb in result.peak_rss_mb.items() if name.startswith("api")}
    supervisors = {name: mb for name, mb in result.peak_rss_mb.items() if name.startswith("supervisor")}
    loaded_levels = [level for level in result.levels if level.app == "platform" and level.concurrency > 1]
    rates = [level.requests_per_second for level in loaded_levels]
    loans = result.loans
    return {
        "by_processes": by_n,
        "throughput_growing": len(rates) > 1
        and all(later > earlier for earlier, later in itertools.pairwise(rates))
        and not any(faults(level) for level in loaded_levels),
        "loans_of_raw": loans.ratio if loans else None,
        # every accept answered: a round with refused accepts measured fewer loans than it was asked for
        "loans_met": loans is not None and loans.ratio >= GOAL_LOANS and loans.accepted == loans.loans,
        "peak_api_rss_mb": max(apis.values()) if apis else None,
        # creditmesh serve --processes N's supervisor, which runs the balancer: a process of the platform too
        "peak_supervisor_rss_mb": max(supervisors.values()) if supervisors else None,
    }


def table(result: Result) -> str:
    lines = [
        f"scale [{result.label}]  {result.lenders} lenders at L = {result.latency_ms:g} ms; slowest lender measured "
        f"p50 {result.slowest_lender_p50_ms} ms; N = {result.processes} processes; "
        f"{result.concurrency_per_process} borrowers per process under load",
        f"machine: {result.machine['cpus']} CPUs, load average {result.machine['load_average_at_start']} at start, "
        f"{result.load_average_at_end} at end (shared with other work: compare ratios)",
        f"{'app':<9} {'proc':>4} {'conc':>4} {'reqs':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'p50 xL':>7} {'p95 xL':>7} {'p99 xL':>7} {'req/s':>8} {'CPU ms/req':>10} {'lenders CPU':>11} "
        f"{'balancer CPU':>12} {'client CPU':>10}",
    ]
    for level in result.levels:
        lines.append(
            f"{level.app:<9} {level.processes:>4} {level.concurrency:>4} {level.requests:>6} {level.errors:>4} "
            f"{level.p50_ms:>8} {level.p95_ms:>8} {level.p99_ms:>8} {level.p50_x_lender:>7} {level.p95_x_lender:>7} "
            f"{level.p99_x_lender:>7} {level.requests_per_second:>8} {level.cpu_ms_per_request:>10} "
            f"{level.lenders_cpu_ms_per_request:>11} {level.balancer_cpu_ms_per_request:>12} "
            f"{level.client_cpu_ms_per_request:>10}"
        )
    for level in result.levels:
        if level.concurrency == 1:
            lines.append(f"{level.app} x{level.processes} one at a time: {percentile_samples(level.requests)}")
    for level in result.levels:
        if level.outcomes:
            asked = sum(level.outcomes.values())
            shares = ", ".join(f"{kind} {count / asked:.0%}" for kind, count in level.outcomes.items())
            lines.append(
                f"platform x{level.processes} concurrency {level.concurrency}: {asked} provider outcomes "
                f"({asked / max(level.requests, 1):.1f} per request): {shares}"
            )
    ratios = summary(result)
    for n, found in ratios["by_processes"].items():
        lines.append(
            f"N = {n}: platform p50 {found['p50_x_lender']}x lender ({_met(found['p50_met'])}: "
            f"<= {GOAL_P50_X}x; baseline {found['baseline_p50_x_lender']}x), p99 {found['p99_x_lender']}x "
            f"({_met(found['p99_met'])}: <= {GOAL_P99_X}x; baseline "
            f"{found['baseline_p99_x_lender']}x); throughput {found['requests_per_second']} vs baseline "
            f"{found['baseline_requests_per_second']} req/s = {found['throughput_of_baseline']:.0%} of baseline "
            f"({_met(found['throughput_met'])}: >= {GOAL_THROUGHPUT:.0%})"
        )
        for where, why in found["faults"].items():
            lines.append(f"  N = {n}, {where}: {'; '.join(why)}: no goal of this level is met")
    for n, found in ratios["by_processes"].items():
        lines.append(
            f"N = {n}, less bound to the machine's speed: CPU a credit request under load {found['cpu_ms_per_request']}"
            f" ms = {found['cpu_x_baseline']}x the baseline's {found['baseline_cpu_ms_per_request']} ms (the lenders' "
            f"{found['lenders_cpu_ms_per_request']} ms: the machine's speed); sequential p50 "
            f"{found['sequential_excess_ms']} ms above the baseline's"
        )
    rates = [found["requests_per_second"] for found in ratios["by_processes"].values()]
    if len(rates) > 1:
        growing = ratios["throughput_growing"]
        lines.append(
            f"throughput growing with N: {rates} req/s ({_met(growing)}: each n above the one before, none with faults)"
        )
    if result.loans is not None:
        loans = result.loans
        lines.append(
            f"loans: {loans.accepted}/{loans.loans} accepted in {loans.api_seconds} s, median of "
            f"{len(loans.api_rounds)} rounds {loans.api_loans_per_second}/s over {result.processes} processes; raw "
            f"presigned openLoan median of {len(loans.raw_rounds)} batches {loans.raw_loans_per_second}/s; ratio "
            f"{loans.ratio:.2f} ({_met(ratios['loans_met'])}: >= {GOAL_LOANS:.0%}, every accept answered); answers "
            f"{loans.statuses}"
        )
    lines.append(
        f"RSS MB idle (warm) -> peak (read every {result.rss_interval_seconds:g} s): "
        + ", ".join(f"{name} {result.idle_rss_mb[name]} -> {mb}" for name, mb in result.peak_rss_mb.items())
        + f" ({_met(max(ratios['peak_api_rss_mb'] or 0, ratios['peak_supervisor_rss_mb'] or 0) <= GOAL_RSS_MB)}: "
        f"every API process and supervisor <= {GOAL_RSS_MB:g} MB)"
    )
    return "\n".join(lines)


def plot(result: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput, loans, memory) = plt.subplots(1, 4, figsize=(18, 4.5))
    counts = sorted({level.processes for level in result.levels})
    width = 0.35
    for offset, app, color in ((-width / 2, "platform", "tab:blue"), (width / 2, "baseline", "tab:orange")):
        x = [c + offset for c in range(len(counts))]
        sequential = [_find(result, app, n, True) for n in counts]
        latency.bar(x, [s.p50_x_lender for s in sequential], width, color=color, label=f"{app} p50")
        latency.scatter(
            x,
            [s.p99_x_lender for s in sequential],
            marker="^",
            color="black" if app == "platform" else "grey",
            zorder=3,
            label=f"{app} p99",
        )
        throughput.bar(
            x, [_find(result, app, n, False).requests_per_second for n in counts], width, color=color, label=app
        )
    latency.axhline(GOAL_P50_X, color="grey", linewidth=0.8)
    latency.axhline(GOAL_P99_X, color="grey", linewidth=0.8, linestyle=":")
    for axes in (latency, throughput):
        axes.set_xticks(range(len(counts)), [f"{n} process{'es' if n > 1 else ''}" for n in counts])
        axes.legend(fontsize=7)
    latency.set(title="sequential latency / slowest lender", ylabel="x slowest lender")
    throughput.set(title=f"requests/s ({result.concurrency_per_process} borrowers per process)")
    if result.loans is not None:
        loans.bar(
            ["API (end to end)", "raw presigned"],
            [result.loans.api_loans_per_second, result.loans.raw_loans_per_second],
        )
    loans.set(title=f"loans opened per second ({result.processes} processes)")
    names = list(result.peak_rss_mb)
    memory.bar(names, [result.peak_rss_mb[name] for name in names])
    memory.axhline(GOAL_RSS_MB, color="grey", linewidth=0.8)
    memory.set(title="peak resident memory per process (MB)")
    memory.tick_params(axis="x", labelrotation=45, labelsize=7)
    figure.suptitle(f"scale: {result.lenders} lenders at L = {result.latency_ms:g} ms (grey: goals)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
