"""Accepted loans per second, end to end through the API processes, against raw presigned ``openLoan`` transactions
to the same devnet — on its own, and as ``bench/scale.py``'s third measure (``prepare`` and ``measure``).

    uv run --frozen --no-sync python -m bench.scale_loans                   # 2 API processes, 3 rounds of 40, 1 run
    uv run --frozen --no-sync python -m bench.scale_loans --runs 3 --before /tmp/main-tree    # A/B, alternating
    uv run --frozen --no-sync python -m bench.scale_loans --py-spy "$(which py-spy)" --py-spy-mode idle

On its own it starts what ``bench/scale.py`` starts (``bench.local_stack``: PostgreSQL, Redis, three devnets, the
simulated lenders and identity providers, on free loopback ports) and the API as ``creditmesh serve --processes N``
runs it (``api.local_platform.api_service``), then measures ``--runs`` times, each with fresh borrowers.

A run is ``--rounds`` rounds; after each round of accepts come ``--raw-batches`` raw batches, side by side on the
same devnet. Each side's rate is the MEDIAN over its rounds (min, max and (max - min) / median are reported with
it): one round of 40 takes a second or so and one raw batch a fraction of one, too short on a shared machine to mean
much alone. The ratio is the median over the rounds of a round's rate against the median of the raw batches right
after it: anvil 1.7 slows as its state grows, and the machine's load changes, so each round is compared with raw
sends made under the same. Before each timed round or batch the machine is let settle (``settle``: the platform's
processes near idle), so that neither side's window holds what the other set going.

Accepts: fresh borrowers (gas, WETH minted, the aggregator approved for the collateral), each onboarded through the
API and holding one pool quote on the chain; in a round ``--loans`` of them accept at once, spread over the API
processes, and the clock runs from the first request to the last answer (an accept answers 201 once ``openLoan`` is
mined and recorded). The borrowers' signatures are made before the clock starts.
Raw (``bench.raw_sends.RawSender``): as many ``openLoan`` transactions at once as a round has accepts, from a sender
of their own granted the relayer's role (so that raw batches between rounds never touch the platform relayer's
nonces), each for a borrower funded beforehand (one per send of a batch, the same ones batch after batch), its offer,
acceptance and risk attestation signed beforehand by the same devnet keys the platform uses. The clock runs from the
first ``eth_sendRawTransaction`` to the receipt of the last (one sender, consecutive nonces: the others are mined by
then); signing, funding and the check that every one succeeded are outside it, and while it runs the API processes and
the balancer are paused (SIGSTOP, then SIGCONT: their watchers would otherwise read every block the raw sends mine).
So both sides count sends through mining, each with the devnet to itself; the raw side does nothing else.

Beside the rates, what each loan cost the machine (``Meters``): the CPU milliseconds per accept of each API process,
the balancer, PostgreSQL (its server and backends) and anvil, summed over the rounds' windows, against the CPU per raw
send of its client (this process) and anvil in the batches' windows; and PostgreSQL's transactions per accept in the
first round (``pg_stat_database``, less the rate counted while the API idled just before). On a machine of C cores,
C x 1000 / (CPU ms per loan) bounds each side's rate. ``--py-spy`` records api-1 during the last run's last round of
accepts (``--py-spy-mode``: gil, busy or idle threads). Prints a table, writes JSON and a PNG plot to ``--out``
(``scale_loans-LABEL.*``). Goal: loans/s >= 50% of raw."""

import argparse
import contextlib
import functools
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from api.local_platform import ApiService, api_service
from bench._loan_borrowers import Borrower, prepare
from bench._loan_rounds import RAW_BATCHES, LoansResult, measure, warm_and_measure
from bench.local_stack import BenchStack, bench_stack
from bench.output import stem as output_stem
from bench.output import write
from bench.quote_path import _machine
from bench.rpc_count import RpcCounter
from chain.deployment import DeploymentRecord
from chain.devnet import Devnet

GOAL_LOANS = 0.50
REPO = Path(__file__).resolve().parent.parent
#: the results' file names: scale_loans-LABEL.json, .png
NAME = "scale_loans"

# the borrowers (``bench._loan_borrowers``) and the measurement (``bench._loan_rounds``), as ``bench.scale`` and the
# tests import them from here
__all__ = [
    "GOAL_LOANS",
    "NAME",
    "RAW_BATCHES",
    "Borrower",
    "LoansResult",
    "Result",
    "Run",
    "main",
    "measure",
    "plot",
    "prepare",
    "run",
    "table",
    "warm_and_measure",
]


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    processes: int
    loans: LoansResult


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    processes: int
    machine: dict[str, Any]
    runs: list[Run]
    load_average_at_end: list[float]


def _accept_cpu_ms(loans: LoansResult) -> float:
    return sum(ms for name, ms in loans.cpu_ms_per_loan.items() if name.startswith("accept: "))


def _raw_cpu_ms(loans: LoansResult) -> float:
    return sum(ms for name, ms in loans.cpu_ms_per_loan.items() if name.startswith("raw: "))


def _api_cpu_ms(loans: LoansResult) -> float:
    return sum(ms for name, ms in loans.cpu_ms_per_loan.items() if name.startswith("accept: api-"))


@contextlib.contextmanager
def _py_spy(args: argparse.Namespace, pid: int, stem: str, log_dir: Path) -> Iterator[None]:
    """py-spy sampling API process ``pid`` while the block runs (collapsed stacks in ``--out``): ``--py-spy-mode``
    gil (only the thread holding the GIL: where its CPU goes), busy (every thread not idle) or idle (every thread,
    waiting ones included: where an accept waits)."""
    args.out.mkdir(parents=True, exist_ok=True)
    command = [args.py_spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    command += {"gil": ["--gil"], "busy": [], "idle": ["--idle"]}[args.py_spy_mode]
    command += ["--output", str(args.out / f"{stem}.profile.txt")]
    with (log_dir / "py-spy.log").open("ab") as log:
        profiler = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            time.sleep(1.0)  # attached before the accepts start
            yield
        finally:
            profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled on Ctrl-C
            profiler.wait(timeout=120)


def _trees(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """(label, source tree) of each API measured in a round: ``--before``'s tree first, then this one (or
    ``--code``)."""
    mine = (args.label, Path(args.code).resolve() if args.code else None)
    return [("before", Path(args.before).resolve()), mine] if args.before else [mine]


def run(args: argparse.Namespace) -> Result:
    machine = _machine()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="scale-loans-") as temp:
        data_dir = Path(temp)
        with bench_stack(data_dir) as started:
            devnet = next(d for d in started.chains.devnets if d.name == args.chain)
            record = started.chains.deployments[args.chain]
            trees = _trees(args)
            env = started.env
            counter = None
            if args.count_rpc:  # the API reaches the loans' devnet through the counter
                counter = RpcCounter(devnet.rpc_url).__enter__()
                chains = json.loads(Path(env["CREDITMESH_CHAINS_FILE"]).read_text())
                for chain in chains:
                    if chain["name"] == args.chain:
                        chain["rpc_urls"] = [counter.url]
                counted = data_dir / "chains-counted.json"
                counted.write_text(json.dumps(chains))
                env = env | {"CREDITMESH_CHAINS_FILE": str(counted)}
            keep = len(trees) == 1  # one tree: one API for every run; several: each round starts each again
            with contextlib.ExitStack() as kept:
                api = None
                for number in range(args.runs):
                    for label, code in trees:
                        with contextlib.ExitStack() as once:
                            if api is None or not keep:
                                stack = kept if keep else once
                                api = stack.enter_context(
                                    api_service(
                                        started.ports.api,
                                        processes=args.processes,
                                        env=env,
                                        code=code,
                                        log_dir=data_dir,
                                        timeout=600,
                                    )
                                )
                            runs.append(
                                Run(
                                    label,
                                    args.processes,
                                    _one_run(args, started, api, devnet, record, number, counter),
                                )
                            )
                            print(f"  {label} run {number + 1}: {_line(runs[-1].loans)}", flush=True)
    return Result(args.label, args.processes, machine, runs, [round(x, 2) for x in os.getloadavg()])


def _one_run(
    args: argparse.Namespace,
    started: BenchStack,
    api: ApiService,
    devnet: Devnet,
    record: DeploymentRecord,
    number: int,
    counter: RpcCounter | None,
) -> LoansResult:
    profile: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
    if args.py_spy and number == args.runs - 1:
        first = next(iter(api.pids.values()))
        stem = f"{output_stem(NAME, args.label)}-{args.py_spy_mode}"
        profile = functools.partial(_py_spy, args, first, stem, started.data_dir)
    return warm_and_measure(
        started,
        api,
        devnet,
        record,
        args.chain,
        loans=args.loans,
        rounds=args.rounds,
        warm=args.warm,
        raw_batches=args.raw_batches,
        profile=profile,
        counter=counter,
    )


def _line(loans: LoansResult) -> str:
    return (
        f"{loans.accepted}/{loans.loans} accepted in {loans.api_seconds} s, median of {len(loans.api_rounds)} "
        f"rounds {loans.api_loans_per_second} loans/s {_range(loans.api_spread)}; raw presigned: median of "
        f"{len(loans.raw_rounds)} batches {loans.raw_loans_per_second}/s {_range(loans.raw_spread)} "
        f"({loans.raw_sends} sends); ratio {loans.ratio:.1%} (median of the rounds' {loans.round_ratios}); "
        f"CPU ms per accept {_accept_cpu_ms(loans):.1f} (API {_api_cpu_ms(loans):.1f}) "
        f"vs per raw send {_raw_cpu_ms(loans):.1f}; "
        f"{loans.db_transactions_per_loan} database transactions per accept; load {loans.load_average_at_start}"
    )


def _range(spread: dict[str, float]) -> str:
    if not spread:
        return ""
    return f"[{spread['min']}-{spread['max']}, spread {spread['spread']:.0%}]"


def table(result: Result) -> str:
    cores = os.cpu_count() or 1
    parts = sorted({name for run in result.runs for name in run.loans.cpu_ms_per_loan})
    lines = [
        f"scale_loans [{result.label}]: accepted loans per second end to end through {result.processes} API "
        f"process(es) against raw presigned openLoan sends to the same devnet",
        f"machine: {result.machine['cpus']} CPUs, load average {result.machine['load_average_at_start']} at start, "
        f"{result.load_average_at_end} at end (shared with other work: compare the ratios and the CPU per loan)",
        f"{'tree':<12} {'loans':>5} {'201':>4} {'loans/s':>8} {'raw/s':>8} {'ratio':>7} {'db tx':>6} {'load':>6} "
        f"{'loans/s min-max':>16} {'raw/s min-max':>16}  " + " ".join(f"{name:>18}" for name in parts),
    ]
    for run in result.runs:
        loans = run.loans
        load = loans.load_average_at_start[0] if loans.load_average_at_start else 0.0
        lines.append(
            f"{run.label:<12} {loans.loans:>5} {loans.accepted:>4} {loans.api_loans_per_second:>8} "
            f"{loans.raw_loans_per_second:>8} {loans.ratio:>7.1%} {loans.db_transactions_per_loan or 0:>6} {load:>6} "
            f"{_minmax(loans.api_spread):>16} {_minmax(loans.raw_spread):>16}  "
            + " ".join(f"{loans.cpu_ms_per_loan.get(name, 0.0):>18}" for name in parts)
        )
    lines.append(
        "(loans/s and raw/s: the medians of the rounds of accepts and of the raw batches, each as many at once; CPU "
        "columns: milliseconds per loan of each process; db tx: PostgreSQL transactions per accept, first round)"
    )
    for run in result.runs:
        if run.loans.rpc_calls_per_loan:
            counted = ", ".join(f"{name} {n}" for name, n in run.loans.rpc_calls_per_loan.items() if abs(n) >= 0.05)
            lines.append(f"{run.label}: JSON-RPC calls per accept (--count-rpc): {counted}")
    for run in result.runs:
        accept, raw = _accept_cpu_ms(run.loans), _raw_cpu_ms(run.loans)
        if accept and raw:
            lines.append(
                f"{run.label}: {accept:.1f} CPU ms per accept (API {_api_cpu_ms(run.loans):.1f}) against {raw:.1f} per "
                f"raw send: {cores} cores bound the accepts at ~{cores * 1000 / accept:.0f}/s and the raw sends at "
                f"~{cores * 1000 / raw:.0f}/s; ratio {run.loans.ratio:.1%} ({_met(run.loans.ratio >= GOAL_LOANS)}: "
                f">= {GOAL_LOANS:.0%})"
            )
    return "\n".join(lines)


def _minmax(spread: dict[str, float]) -> str:
    return f"{spread['min']}-{spread['max']}" if spread else ""


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def plot(result: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rates, cpu) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [f"{run.label} #{n + 1}" for n, run in enumerate(result.runs)]
    x = list(range(len(result.runs)))
    width = 0.38
    rates.bar([i - width / 2 for i in x], [run.loans.api_loans_per_second for run in result.runs], width, label="API")
    rates.bar(
        [i + width / 2 for i in x],
        [run.loans.raw_loans_per_second for run in result.runs],
        width,
        label="raw presigned",
    )
    rates.set_yscale("log")
    rates.set_xticks(x, names, fontsize=7)
    rates.set(title=f"loans opened per second ({result.processes} API processes)")
    rates.legend(fontsize=7)
    parts = sorted({name for run in result.runs for name in run.loans.cpu_ms_per_loan})
    bottoms = [0.0] * len(result.runs)
    for part in parts:
        heights = [run.loans.cpu_ms_per_loan.get(part, 0.0) for run in result.runs]
        cpu.bar(x, heights, 0.6, bottom=bottoms, label=part)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    cpu.set_xticks(x, names, fontsize=7)
    cpu.set(title="CPU ms per loan (accept: API, balancer, PostgreSQL, anvil; raw: client, anvil)")
    cpu.legend(fontsize=6)
    figure.suptitle(f"accepts end to end against raw presigned openLoan (goal: >= {GOAL_LOANS:.0%} of raw)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2, help="API processes (behind the balancer when > 1)")
    parser.add_argument("--loans", type=int, default=40, help="loans accepted at once per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of accepts per run (the rate: their median)")
    parser.add_argument(
        "--raw-batches", type=int, default=RAW_BATCHES, help="raw batches (as many sends at once) after each round"
    )
    parser.add_argument("--warm", type=int, default=2, help="accepts made first in each run, not measured")
    parser.add_argument("--runs", type=int, default=1, help="runs (each: rounds of accepts, raw batches after each)")
    parser.add_argument("--chain", default="ethereum-local", help="the devnet the loans open on")
    parser.add_argument("--code", default=None, help="run the API from this source tree")
    parser.add_argument("--before", default=None, help="also this source tree's API, alternating with this one's")
    parser.add_argument("--label", default="this tree")
    parser.add_argument(
        "--py-spy", default=None, help="a py-spy executable: profile api-1 during the last run's accepts"
    )
    parser.add_argument("--py-spy-mode", choices=("gil", "busy", "idle"), default="gil")
    parser.add_argument(
        "--count-rpc", action="store_true", help="count the JSON-RPC calls per accept (a forwarder: not for the rates)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result), flush=True)
    write(args.out, output_stem(NAME, args.label), asdict(result), functools.partial(plot, result))


if __name__ == "__main__":
    main()
