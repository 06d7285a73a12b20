"""The credit-request path under load, against the slowest lender measured in the same run.

    uv run --frozen --no-sync python -m bench.quote_path                    # L = 100 ms, results in bench/results/
    uv run --frozen --no-sync python -m bench.quote_path --latency-ms 0 --burst-seconds 0
    uv run --frozen --no-sync python -m bench.quote_path --code /tmp/creditmesh-before --label before
    uv run --frozen --no-sync python -m bench.quote_path --before /tmp/creditmesh-before     # both, back to back
    uv run --frozen --no-sync python -m bench.quote_path --compare bench/results/quote_path-before.json

Starts the platform's pieces as ``creditmesh run`` does, on free loopback ports: three anvil devnets with the
contract set deployed, the simulated lenders (the default fleet's three lenders, each at a fixed latency L, from a
fleet file) in their own process, and one API process (``--code DIR`` runs the API and lenders from another source
tree, e.g. an older commit, to measure before and after on the same machine). Then:

1. the slowest lender's own latency, measured directly (a signed Provider Quote Protocol call per lender, through the
   same HTTP adapter the platform uses, sequentially): the baseline every latency is divided by;
2. credit requests at concurrency 1, 10 and 30 for ``--seconds`` each (concurrency 1 for ``--sequential-seconds``,
   twice as long unless given): latency p50/p95/p99 (also as a multiple of the slowest lender, each with the number
   of samples it rests on), requests per second, and the API process's CPU milliseconds per request;
3. a burst at concurrency 30 for ``--burst-seconds``, then the health check: every RPC breaker closed, and one
   request gets a pool quote on every chain and the borrower's on-chain history from every chain (checked at once,
   and again after the provider breakers' reset timeout).

Prints a table, writes JSON and a PNG plot (matplotlib) to ``--out``. Goals (one process, this machine): CPU
<= 30 ms per request; sequential p50 <= 1.25x the slowest lender at L = 100 ms; >= 25 requests/s at concurrency 10;
no lasting damage after 40 s at concurrency 30. The machine may be shared: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from api.demo import onboard
from api.local_platform import PlatformServices, ServicePorts, local_chains, platform_services, read_fleet
from bench.baseline_app import lender_http
from bench.local_stack import ADMIN_KEY, platform_env
from bench.meters import cpu_seconds
from bench.output import stem, write
from bench.profile_shares import shares as profile_shares
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account
from providers.http_lender import HttpLenderAdapter
from providers.models import Capabilities, QuoteRequest
from providers.sim.fleet import SimLender, lender_url

#: the results' file names: quote_path-LABEL.json, .png, .profile.txt
NAME = "quote_path"

REPO = Path(__file__).resolve().parent.parent
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}
LENDER_PROBES = 40
CONCURRENCIES = (1, 10, 30)
GOAL_CPU_MS = 30.0
GOAL_SEQUENTIAL_RATIO = 1.25
GOAL_RPS_AT_10 = 25.0
#: the status of an answered credit request: the only one counted in latencies and throughput
ANSWERED = "201"


@dataclass(kw_only=True)
class LoadLevel:
    """One level of the load client (``_load``): ``concurrency`` borrowers sending credit requests for ``seconds``.
    Only answered requests (201) count in ``requests``, the latencies, the requests per second and the CPU per
    request; every other status counts in ``errors`` and ``statuses``. ``bench/scale.py``'s levels add to it."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests_per_second: float
    #: the measured app's CPU milliseconds per answered request
    cpu_ms_per_request: float
    #: the latencies as a multiple of the slowest lender's own p50, measured in the same run
    p50_x_lender: float
    p95_x_lender: float
    p99_x_lender: float
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class Level(LoadLevel):
    """A level against the one API process, its CPU also net of what the process spends idle."""

    #: CPU per request less what the idle process spends in the same time (its pollers: provider registrations,
    #: sanctions lists), measured before the levels
    cpu_ms_per_request_net: float = 0.0


@dataclass
class HealthCheck:
    rpc_breakers: dict[str, str]
    pool_chains: list[str]
    onchain_skipped: dict[str, str]
    healthy: bool


@dataclass
class LenderRun:
    """A run against simulated lenders at the fixed latency ``latency_ms``: each lender's own p50, measured directly
    (``_lender_latencies``), the slowest the unit of every ``x_lender``; on ``machine`` (``_machine``), which may be
    shared with other work. ``bench/scale.py``'s and ``bench/scale_ab.py``'s results add to it."""

    label: str
    latency_ms: float
    machine: dict[str, Any]
    slowest_lender_p50_ms: float
    lender_p50_ms: dict[str, float]


@dataclass
class Result(LenderRun):
    levels: list[Level]
    idle_cpu_ms_per_second: float = 0.0
    #: the profiled levels' shares by part of the request (``bench.profile_shares``), by concurrency
    profile_shares: dict[str, dict[str, Any]] = field(default_factory=dict)
    burst: Level | None = None
    after_burst: HealthCheck | None = None
    after_reset: HealthCheck | None = None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _profile(args: argparse.Namespace, pid: int, concurrency: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the API process during a ``--profile-concurrency`` level (collapsed stacks, ``--py-spy``).
    Only the thread holding the GIL is sampled: the samples are where the process spends CPU, not threads waiting
    for the GIL (in a socket write, say, after the event loop released it)."""
    if not args.py_spy:
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    output = _profile_path(args, concurrency)
    seconds = str(int(level_seconds(args, concurrency)))
    command = [args.py_spy, "record", "--pid", str(pid), "--duration", seconds, "--format", "raw"]
    command += ["--gil", "--output", str(output), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def _profile_path(args: argparse.Namespace, concurrency: int) -> Path:
    suffix = "" if list(args.profile_concurrency) == [10] else f"-c{concurrency}"
    return Path(args.out) / f"{stem(NAME, args.label)}{suffix}.profile.txt"


def _fleet_document(code: Path, latency_ms: float) -> str:
    """The default fleet at a fixed latency as a fleet file, written by the measured tree's own simulator models
    (an older tree refuses fields that were added since)."""
    script = (
        "import json, sys\n"
        "from providers.sim.fleet import DEFAULT_FLEET, LatencySpec\n"
        "fixed = LatencySpec(distribution='fixed', ms=float(sys.argv[1]))\n"
        "lenders = [lender.model_copy(update={'latency': fixed}) for lender in DEFAULT_FLEET]\n"
        "print(json.dumps([lender.model_dump(mode='json') for lender in lenders]))\n"
    )
    env = os.environ | {"PYTHONPATH": str(code)}
    command = [sys.executable, "-c", script, str(latency_ms)]
    return subprocess.run(command, cwd=code, env=env, check=True, capture_output=True, text=True).stdout


async def _lender_latencies(base_url: str, fleet: list[SimLender]) -> dict[str, float]:
    """Each lender's own p50 over sequential quote calls, straight through the HTTP adapter on the platform's lender
    client (``bench.baseline_app.lender_http``; no platform)."""
    query = QuoteRequest("bench", "USDC", 6, 1_500 * 10**6, 30, "", "WETH", 10**18, 18, (), 2, "US-FL")
    found = {}
    async with lender_http() as http:
        for lender in fleet:
            adapter = HttpLenderAdapter(
                lender.lender_id,
                lender_url(base_url, lender.lender_id),
                lender.secret,
                Capabilities(assets=frozenset({"USDC"})),
                http,
            )
            timings = []
            for _ in range(LENDER_PROBES):
                started = time.perf_counter()
                await adapter.quote(query)
                timings.append((time.perf_counter() - started) * 1000)
            found[lender.lender_id] = statistics.median(timings[5:])  # the first calls open connections
    return found


async def _load(
    api_url: str, key: str, concurrency: int, seconds: float, api_pid: int, on_start: Callable[[], object]
) -> Level:
    """Credit requests from ``concurrency`` borrowers for ``seconds``, after two warm-up requests (the first one
    builds what the API builds lazily, e.g. the sanctions name index); ``on_start`` is called as the clock starts.
    Only answered requests (201) count in the latencies, ``requests``, requests per second and CPU per request;
    every other status, and a request that got no answer (by the exception's name), is counted in ``statuses`` and
    ``errors`` — a 503 answered fast is not throughput."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, headers={"X-API-Key": key}, timeout=120, limits=limits) as client:
        for _ in range(2):  # warm the connections and the caches
            await client.post("/v1/credit-requests", json=REQUEST)
        on_start()
        cpu_before = cpu_seconds(api_pid)
        started = time.perf_counter()
        end = started + seconds

        async def borrower() -> None:
            while time.perf_counter() < end:
                sent = time.perf_counter()
                try:
                    status = str((await client.post("/v1/credit-requests", json=REQUEST)).status_code)
                except httpx.HTTPError as err:  # no answer: counted, and the load goes on
                    status = type(err).__name__
                if status == ANSWERED:
                    latencies.append((time.perf_counter() - sent) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(borrower() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(api_pid) - cpu_before
    count = len(latencies)
    return Level(
        concurrency=concurrency,
        requests=count,
        errors=sum(n for code, n in statuses.items() if code != ANSWERED),
        seconds=round(elapsed, 2),
        p50_ms=round(_percentile(latencies, 50), 1),
        p95_ms=round(_percentile(latencies, 95), 1),
        p99_ms=round(_percentile(latencies, 99), 1),
        requests_per_second=round(count / elapsed, 2),
        cpu_ms_per_request=round(cpu * 1000 / max(count, 1), 1),
        p50_x_lender=0.0,
        p95_x_lender=0.0,
        p99_x_lender=0.0,
        statuses=statuses,
    )


def level_seconds(args: argparse.Namespace, concurrency: int) -> float:
    """How long a level's load runs: ``--seconds``, and the sequential level (concurrency 1, ~9 requests a second at
    L = 100 ms) ``--sequential-seconds`` — twice ``--seconds`` unless given — so that its p99 is not one sample's."""
    if concurrency > 1:
        return float(args.seconds)
    return float(args.sequential_seconds if args.sequential_seconds is not None else 2 * args.seconds)


def percentile_samples(requests: int) -> str:
    """What a level's percentiles rest on: ``requests`` samples, and which of them the p99 is (nearest rank, as
    ``_percentile`` takes it) — from fewer than 100 samples the p99 is one of the few highest, not a tail."""
    if requests == 0:
        return "no samples: no percentile"
    rank = requests - min(requests - 1, max(0, round(0.99 * (requests - 1))))
    return f"p50/p95/p99 over {requests} samples (the p99 is the {_ordinal(rank)} highest)"


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _idle_cpu_rate(api_pid: int, seconds: float) -> float:
    """The API process's CPU milliseconds per second with no request (its background pollers)."""
    before, started = cpu_seconds(api_pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(api_pid) - before) * 1000 / (time.perf_counter() - started)


def _net(level: Level, idle_rate: float) -> Level:
    idle_ms = idle_rate * level.seconds
    level.cpu_ms_per_request_net = round(level.cpu_ms_per_request - idle_ms / max(level.requests, 1), 1)
    return level


def _health_check(api_url: str, key: str, chains: list[str]) -> HealthCheck:
    health = httpx.get(f"{api_url}/health", headers={"X-API-Key": ADMIN_KEY}, timeout=60).json()
    breakers = {rpc["url"]: rpc["breaker"] for chain in health["chains"].values() for rpc in chain["rpc"]}
    response = httpx.post(f"{api_url}/v1/credit-requests", json=REQUEST, headers={"X-API-Key": key}, timeout=60)
    body = response.json() if response.status_code == 201 else {"quotes": [], "risk": {}}
    pools = sorted({quote["chain"] for quote in body["quotes"] if quote["kind"] == "pool"})
    skipped = body["risk"].get("onchain_chains_skipped", {"all": f"HTTP {response.status_code}"})
    healthy = set(breakers.values()) == {"closed"} and pools == sorted(chains) and not skipped
    return HealthCheck(breakers, pools, skipped, healthy)


def _scale(level: Level, lender_ms: float) -> Level:
    level.p50_x_lender = round(level.p50_ms / lender_ms, 2)
    level.p95_x_lender = round(level.p95_ms / lender_ms, 2)
    level.p99_x_lender = round(level.p99_ms / lender_ms, 2)
    return level


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> Result:
    code = Path(args.code).resolve() if args.code else REPO
    with tempfile.TemporaryDirectory(prefix="quote-path-") as temp:
        data_dir = Path(temp)
        fleet_file = data_dir / "lenders.json"
        fleet_file.write_text(_fleet_document(code, args.latency_ms))
        fleet = read_fleet(fleet_file)
        with local_chains(data_dir / "deployments", free_ports=True) as chains:
            assert chains.chains_file is not None
            # the request path's own cost: the indexer's is bench/indexer.py's (--workers all to include it)
            env = platform_env(data_dir, chains.chains_file, args.workers)
            # the API's start-up (imports, migrations) took over 90 s at a load average of 20 on this machine
            services = platform_services(
                ServicePorts.free(), fleet_file=fleet_file, env=env, code=code, log_dir=data_dir, timeout=300
            )
            with services as platform:
                names = [devnet.name for devnet in chains.devnets]
                return _measure(args, platform, fleet, names)


def _measure(args: argparse.Namespace, platform: PlatformServices, fleet: list[SimLender], chains: list[str]) -> Result:
    api_url, api_pid = platform.api_url, platform.api_pid
    lenders = asyncio.run(_lender_latencies(platform.lenders_url, fleet))
    slowest = max(lenders.values())
    key = onboard(api_url, ADMIN_KEY, devnet_account(DEVNET_BORROWER_INDEXES[0]).address)
    # two credit requests first: they wait for what start-up still builds in the background (the sanctions name
    # index, seconds of CPU), which the idle figure must not count
    for _ in range(2):
        httpx.post(f"{api_url}/v1/credit-requests", json=REQUEST, headers={"X-API-Key": key}, timeout=300)
    idle_rate = _idle_cpu_rate(api_pid, args.idle_seconds)
    levels = []
    profilers: list[subprocess.Popen[bytes]] = []
    profiles: dict[str, dict[str, Any]] = {}

    for concurrency in CONCURRENCIES:

        def start_profiler(concurrency: int = concurrency) -> None:
            if (profiler := _profile(args, api_pid, concurrency)) is not None:
                profilers.append(profiler)

        profiled = concurrency in args.profile_concurrency
        level = asyncio.run(
            _load(
                api_url,
                key,
                concurrency,
                level_seconds(args, concurrency),
                api_pid,
                start_profiler if profiled else lambda: None,
            )
        )
        for profiler in profilers:
            profiler.wait(timeout=60)
        if profilers and (output := _profile_path(args, concurrency)).exists():
            found = profile_shares(output)
            profiles[str(concurrency)] = asdict(found)
            print(f"  profile at concurrency {concurrency}: " + "\n    ".join(found.lines()), flush=True)
        profilers.clear()
        levels.append(_net(_scale(level, slowest), idle_rate))
        print(f"  concurrency {concurrency}: {level.requests} requests, p50 {level.p50_ms} ms", flush=True)
    result = Result(
        args.label, args.latency_ms, _machine(), round(slowest, 1), lenders, levels, round(idle_rate, 1), profiles
    )
    if args.burst_seconds > 0:
        burst = asyncio.run(_load(api_url, key, 30, args.burst_seconds, api_pid, lambda: None))
        result.burst = _net(_scale(burst, slowest), idle_rate)
        result.after_burst = _health_check(api_url, key, chains)
        time.sleep(args.provider_reset_seconds)
        result.after_reset = _health_check(api_url, key, chains)
    return result


def _table(result: Result, baseline: dict[str, Any] | None) -> str:
    lines = [
        f"quote path [{result.label}]  L = {result.latency_ms:g} ms; slowest lender measured p50 "
        f"{result.slowest_lender_p50_ms} ms ({', '.join(f'{k} {v:.1f}' for k, v in result.lender_p50_ms.items())})",
        f"machine: {result.machine['cpus']} CPUs, load average at start {result.machine['load_average_at_start']} "
        f"(shared with other work: compare ratios); the idle API spends {result.idle_cpu_ms_per_second} ms of CPU "
        "a second (its pollers), subtracted in 'net of idle'",
        f"{'conc':>4} {'reqs':>5} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p50 xL':>7} {'p95 xL':>7} "
        f"{'p99 xL':>7} {'req/s':>7} {'CPU ms/req':>10} {'net of idle':>11}",
    ]
    rows = [*result.levels, *([result.burst] if result.burst else [])]
    for level in rows:
        lines.append(
            f"{level.concurrency:>4} {level.requests:>5} {level.errors:>4} {level.p50_ms:>8} {level.p95_ms:>8} "
            f"{level.p99_ms:>8} {level.p50_x_lender:>7} {level.p95_x_lender:>7} {level.p99_x_lender:>7} "
            f"{level.requests_per_second:>7} {level.cpu_ms_per_request:>10} {level.cpu_ms_per_request_net:>11}"
            + ("  (burst)" if level is result.burst else "")
            + f"  {percentile_samples(level.requests)}"
        )
    if result.after_burst and result.after_reset:
        for name, check in (("at once", result.after_burst), ("after the reset timeout", result.after_reset)):
            lines.append(
                f"after the burst, {name}: {'HEALTHY' if check.healthy else 'DAMAGED'} — pools on "
                f"{check.pool_chains}, on-chain history skipped {check.onchain_skipped or 'nowhere'}, RPC breakers "
                f"{sorted(set(check.rpc_breakers.values()))}"
            )
    sequential, at_ten = result.levels[0], result.levels[1]
    cpu = max(level.cpu_ms_per_request for level in result.levels)
    clean = not any(level.errors for level in result.levels)
    lines.append(
        f"goals: CPU <= {GOAL_CPU_MS:g} ms/request: {cpu} ({_met(cpu <= GOAL_CPU_MS and clean)}); "
        f"sequential p50 <= {GOAL_SEQUENTIAL_RATIO}x lender: {sequential.p50_x_lender}x "
        f"({_met(sequential.p50_x_lender <= GOAL_SEQUENTIAL_RATIO and not sequential.errors)}); "
        f">= {GOAL_RPS_AT_10:g} req/s at 10: {at_ten.requests_per_second} "
        f"({_met(at_ten.requests_per_second >= GOAL_RPS_AT_10 and not at_ten.errors)})"
    )
    for level in result.levels:
        if level.errors:
            lines.append(
                f"  concurrency {level.concurrency}: {level.errors} requests not answered 201 ({level.statuses}): "
                "its goals are not met"
            )
    if baseline is not None:
        lines.append(f"against [{baseline['label']}] (ratio = this run / that run):")
        for level, before in zip(result.levels, baseline["levels"], strict=False):
            lines.append(
                f"  concurrency {level.concurrency}: p50 xL {level.p50_x_lender / before['p50_x_lender']:.2f}, "
                f"req/s {level.requests_per_second / before['requests_per_second']:.2f}, "
                f"CPU ms/req {level.cpu_ms_per_request / before['cpu_ms_per_request']:.2f}"
                + (
                    f", net of idle {level.cpu_ms_per_request_net / before['cpu_ms_per_request_net']:.2f}"
                    if before.get("cpu_ms_per_request_net")
                    else ""
                )
            )
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _plot(result: Result, baseline: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: list[dict[str, Any]] = ([baseline] if baseline else []) + [json.loads(json.dumps(asdict(result)))]
    figure, (latency, throughput, cpu) = plt.subplots(1, 3, figsize=(15, 4.5))
    for run in runs:
        levels = run["levels"]
        x = [level["concurrency"] for level in levels]
        for quantile, style in (("p50", "-o"), ("p95", "--s"), ("p99", ":^")):
            latency.plot(
                x, [level[f"{quantile}_x_lender"] for level in levels], style, label=f"{run['label']} {quantile}"
            )
        throughput.plot(x, [level["requests_per_second"] for level in levels], "-o", label=run["label"])
        cpu.plot(x, [level["cpu_ms_per_request"] for level in levels], "-o", label=run["label"])
    latency.axhline(GOAL_SEQUENTIAL_RATIO, color="grey", linewidth=0.8)
    throughput.axhline(GOAL_RPS_AT_10, color="grey", linewidth=0.8)
    cpu.axhline(GOAL_CPU_MS, color="grey", linewidth=0.8)
    latency.set(title="credit-request latency / slowest lender", xlabel="concurrency", ylabel="x slowest lender")
    throughput.set(title="requests per second", xlabel="concurrency")
    cpu.set(title="API CPU ms per request", xlabel="concurrency")
    for axes in (latency, throughput, cpu):
        axes.set_xscale("log")
        axes.set_xticks(list(CONCURRENCIES), [str(c) for c in CONCURRENCIES])
        axes.legend(fontsize=7)
    figure.suptitle(f"quote path, lenders at L = {result.latency_ms:g} ms (grey: goals)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="every simulated lender's fixed latency L")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per concurrency level")
    parser.add_argument(
        "--sequential-seconds",
        type=float,
        default=None,
        help="load time of the sequential level (concurrency 1); twice --seconds unless given",
    )
    parser.add_argument("--burst-seconds", type=float, default=40.0, help="the burst at concurrency 30 (0: none)")
    parser.add_argument("--provider-reset-seconds", type=float, default=11.0, help="wait before the second check")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU measured for this long first")
    parser.add_argument("--workers", default="none", help="CREDITMESH_WORKERS of the API process")
    parser.add_argument("--code", default=None, help="run the API and lenders from this source tree")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--compare", type=Path, default=None, help="a JSON result to print ratios against")
    parser.add_argument(
        "--before",
        default=None,
        help="another source tree (e.g. an older commit) measured first in the same run, labelled 'before': this "
        "tree's ratios are printed against it",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--py-spy", default=None, help="path of a py-spy executable: profile one level")
    parser.add_argument(
        "--profile-concurrency",
        type=int,
        nargs="+",
        default=[10],
        choices=CONCURRENCIES,
        help="the levels profiled (more than one: each profile's file name ends in -c<concurrency>)",
    )
    args = parser.parse_args(argv)
    baseline = json.loads(args.compare.read_text()) if args.compare else None
    if args.before:
        before = argparse.Namespace(**vars(args) | {"code": args.before, "label": "before", "py_spy": None})
        baseline = _report(before, run(before), baseline)
    _report(args, run(args), baseline)


def _report(args: argparse.Namespace, result: Result, baseline: dict[str, Any] | None) -> dict[str, Any]:
    """Print the table, write the JSON and the plot; returns the result as JSON."""
    print(_table(result, baseline), flush=True)
    document: dict[str, Any] = json.loads(json.dumps(asdict(result)))
    write(args.out, stem(NAME, args.label), document, partial(_plot, result, baseline))
    return document


if __name__ == "__main__":
    main()
