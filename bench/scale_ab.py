"""Two source trees' API processes on issue 18's stack, measured side by side with the load alternating (issue 18).

    uv run --frozen --no-sync python -m bench.scale_ab /tmp/before .                      # c1 and c10, 6 slices each
    uv run --frozen --no-sync python -m bench.scale_ab A B --concurrency 10 --slices 10 --seconds 8 --label x

On a shared machine two runs of ``bench/scale.py`` minutes apart differ by more than most changes (its speed drifts by
half within the hour). Here ONE stack (``bench/local_stack.py``'s: PostgreSQL, Redis, the three devnets, the ten
simulated lenders of ``bench/scale.py`` at a fixed latency L, the identity providers) serves two APIs at once, each
started as ``bench/scale.py`` starts the platform at N = 1 (``api.local_platform.api_service``: ``creditmesh serve``)
but from its own tree (its ``PYTHONPATH`` and working directory, its own port, this environment's packages; a tree
checked out with ``git worktree add`` needs ``artifacts/``, built or copied, for its contracts' ABIs). For each
concurrency level the load goes to one API, then the other, in short slices (A B, B A, A B …), so both see the same
machine. Each slice is one of ``bench/scale.py``'s levels (its load client, ``bench/quote_path.py``'s): requests per
second, latency p50/p99 (also as a multiple of the slowest lender's p50, measured once as ``bench/scale.py`` measures
it), the API process's own CPU per request and the simulated lenders' process's (the same work for either tree: the
machine's speed at that moment), and the CPU the idle API spent meanwhile (its pollers: tens of milliseconds a slice).
Run the pair both ways round (A B, then B A) and once with a tree against itself: on this shared machine a tree against
itself gave B / A of 0.99-1.05 for the API's CPU a request and 0.93-1.07 for requests/s and latencies
(docs/performance-history.md, u18y).

Both APIs share one database: the trees must have the same Alembic head (refused otherwise). Offer nonces are drawn
from one counter row per quote signer and contract; a tree reserving them in blocks keeps its block apart from the
other's, and the run checks afterwards that no offer nonce was handed out twice. Nothing else the load touches is
owned by one process (with ``CREDITMESH_WORKERS=none`` no leased worker runs).

Prints every slice and, per concurrency, each tree's medians and B / A of each; writes JSON and a PNG plot to
``--out`` (``scale_ab-LABEL.json``/``.png``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from api.demo import onboard
from api.local_platform import ApiService, api_service
from bench.local_stack import ADMIN_KEY, bench_stack
from bench.meters import cpu_seconds
from bench.output import stem, write
from bench.quote_path import _lender_latencies, _machine
from bench.scale import _fleet, _last_outcome, _level, _outcomes_since, _warm
from bench.scale_report import FleetRun, Level
from chain.devnet import free_port
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account

REPO = Path(__file__).resolve().parent.parent
TREES = ("A", "B")
#: each tree's median of these, per concurrency, and B / A of each
MEDIANS = (
    "requests_per_second",
    "p50_ms",
    "p99_ms",
    "p50_x_lender",
    "p99_x_lender",
    "cpu_ms_per_request",
    "lenders_cpu_ms_per_request",
)
_HEADS = (
    "import sys\n"
    "from alembic.config import Config\n"
    "from alembic.script import ScriptDirectory\n"
    "config = Config()\n"
    "config.set_main_option('script_location', sys.argv[1])\n"
    "print(' '.join(sorted(ScriptDirectory.from_config(config).get_heads())))\n"
)


@dataclass
class Slice:
    tree: str
    #: 1 … --slices: the pair it belongs to (A B in odd pairs, B A in even ones)
    number: int
    level: Level
    #: the machine's one-minute load average as the slice ended
    load_average: float
    #: provider outcomes other than quoted/declined (breaker open, rate limited, timed out…), by kind
    failed_outcomes: dict[str, int] = field(default_factory=dict)
    #: the CPU milliseconds the other tree's API (idle, waiting its turn) spent during this slice
    idle_other_cpu_ms: float = 0.0


@dataclass
class Result(FleetRun):
    #: "A"/"B" -> the tree's path and commit
    trees: dict[str, str]
    alembic_head: str
    seconds: float
    slices_per_tree: int
    slices: list[Slice]
    #: offer nonces drawn twice over the run's quotes (two trees on one counter that do not agree): must be 0
    duplicate_offer_nonces: int


def alembic_head(tree: Path) -> str:
    """The tree's Alembic head(s), read by its own migrations (a subprocess importing them from that tree)."""
    migrations = tree / "store" / "migrations"
    if not migrations.is_dir():
        raise SystemExit(f"{tree}: no store/migrations: not a creditmesh source tree")
    env = os.environ | {"PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", _HEADS, str(migrations)]
    return subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True).stdout.strip()


def same_schema(trees: list[Path]) -> str:
    """The trees' common Alembic head; SystemExit naming both when they differ (one database serves both APIs: the
    one with the older head would run on a schema it does not know)."""
    heads = [alembic_head(tree) for tree in trees]
    if heads[0] != heads[1]:
        raise SystemExit(
            f"the trees' schemas differ (Alembic head {heads[0]} in {trees[0]}, {heads[1]} in {trees[1]}): both APIs "
            "run on one database, so they must be at the same revision; measure these two with bench/scale.py run "
            "from each tree, alternately"
        )
    return heads[0]


def describe(tree: Path) -> str:
    """The tree's path and its commit (``+`` when it has uncommitted changes), or the path alone outside git."""
    git = ["git", "-C", str(tree)]
    found = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if found.returncode != 0:
        return str(tree)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return f"{tree} ({found.stdout.strip()}{'+' if dirty.stdout.strip() else ''})"


def order(number: int) -> tuple[int, int]:
    """The trees' order in pair ``number`` (0-based): A B, B A, A B …"""
    return (0, 1) if number % 2 == 0 else (1, 0)


_DUPLICATE_NONCES = sa.text(
    "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(DISTINCT request_id) AS n FROM quotes "
    "GROUP BY chain_id, contract, offer->>'nonce' HAVING count(DISTINCT request_id) > 1) AS twice"
)


def duplicate_offer_nonces(database: sa.Engine) -> int:
    """Credit requests whose offer nonce an earlier request on the same chain and contract already had (one quote
    signer; a request's quotes on one chain share its nonce)."""
    with database.connect() as connection:
        return int(connection.execute(_DUPLICATE_NONCES).scalar_one())


def _failed(outcomes: dict[str, int]) -> dict[str, int]:
    return {kind: count for kind, count in outcomes.items() if kind.startswith("failed")}


def run(args: argparse.Namespace) -> Result:
    trees = [args.a.resolve(), args.b.resolve()]
    head = same_schema(trees)
    for tree in trees:
        if not (tree / "artifacts").is_dir():  # an API loads the contracts' ABIs from its own tree
            raise SystemExit(f"{tree}: no artifacts/: build them there (make compile) or copy this tree's")
    machine = _machine()
    with tempfile.TemporaryDirectory(prefix="scale-ab-") as temp, ExitStack() as stack:
        data_dir = Path(temp)
        fleet = _fleet(args.lenders, args.latency_ms)
        started = stack.enter_context(bench_stack(data_dir, fleet=fleet))
        database = sa.create_engine(started.database_url, poolclass=sa.NullPool)
        lender_pid = started.sims.lenders.pid
        lender_ms = asyncio.run(_lender_latencies(started.sims.lenders_url, fleet))
        slowest = max(lender_ms.values())
        apis: list[ApiService] = []
        # A on the port the identity providers send their webhooks to (the borrower is onboarded through it), B on
        # another one
        for name, tree, port in zip(TREES, trees, (started.ports.api, free_port()), strict=True):
            log_dir = data_dir / f"api-{name}"
            log_dir.mkdir()
            apis.append(
                stack.enter_context(api_service(port, env=started.env, code=tree, log_dir=log_dir, timeout=600))
            )
        key = onboard(apis[0].url, ADMIN_KEY, devnet_account(DEVNET_BORROWER_INDEXES[0]).address)
        for api in apis:
            _warm(api, key)
        slices: list[Slice] = []
        for concurrency in args.concurrency:
            for number in range(args.slices):
                for index in order(number):
                    api, tree = apis[index], TREES[index]
                    last = _last_outcome(database)
                    pid, other = api.pids["api-1"], apis[1 - index].pids["api-1"]
                    other_before = cpu_seconds(other)
                    level = _level(tree, 1, api.url, [pid], lender_pid, key, concurrency, args.seconds, slowest)
                    idle_other = round((cpu_seconds(other) - other_before) * 1000, 1)
                    level.outcomes = _outcomes_since(database, last)
                    failed = _failed(level.outcomes)
                    slices.append(Slice(tree, number + 1, level, round(os.getloadavg()[0], 2), failed, idle_other))
        duplicates = duplicate_offer_nonces(database)
        database.dispose()
    return Result(
        label=args.label,
        trees={name: describe(tree) for name, tree in zip(TREES, trees, strict=True)},
        alembic_head=head,
        latency_ms=args.latency_ms,
        lenders=args.lenders,
        seconds=args.seconds,
        slices_per_tree=args.slices,
        machine=machine,
        slowest_lender_p50_ms=round(slowest, 1),
        lender_p50_ms={k: round(v, 1) for k, v in lender_ms.items()},
        slices=slices,
        duplicate_offer_nonces=duplicates,
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
    )


def _of(result: Result, tree: str, concurrency: int) -> list[Level]:
    return [s.level for s in result.slices if s.tree == tree and s.level.concurrency == concurrency]


def summary(result: Result) -> dict[str, Any]:
    """Per concurrency: each tree's median of every ``MEDIANS`` figure over its slices, B / A of each, and in how
    many pairs B's API spent less CPU a request than A's."""
    found: dict[str, Any] = {}
    for concurrency in sorted({s.level.concurrency for s in result.slices}):
        a, b = _of(result, "A", concurrency), _of(result, "B", concurrency)
        medians = {
            tree: {name: round(statistics.median(getattr(level, name) for level in levels), 2) for name in MEDIANS}
            for tree, levels in (("A", a), ("B", b))
        }
        ratios = {
            name: round(medians["B"][name] / medians["A"][name], 3) if medians["A"][name] else None for name in MEDIANS
        }
        lower = sum(y.cpu_ms_per_request < x.cpu_ms_per_request for x, y in zip(a, b, strict=True))
        found[str(concurrency)] = medians | {"B/A": ratios, "pairs": len(a), "B_cpu_lower_in": lower}
    return found


def table(result: Result) -> str:
    lines = [
        f"scale_ab [{result.label}]  A = {result.trees['A']}",
        f"{'':<{len('scale_ab [' + result.label + ']')}}  B = {result.trees['B']}",
        f"Alembic head {result.alembic_head} (both); {result.lenders} lenders at L = {result.latency_ms:g} ms, slowest "
        f"lender measured p50 {result.slowest_lender_p50_ms} ms; one API process each; {result.slices_per_tree} "
        f"slices of {result.seconds:g} s per tree and concurrency",
        f"machine: {result.machine['cpus']} CPUs, load average {result.machine['load_average_at_start']} at start, "
        f"{result.load_average_at_end} at end (shared: compare within a pair)",
        f"{'conc':>4} {'pair':>4} {'tree':>4} {'reqs':>5} {'err':>4} {'p50 ms':>7} {'p99 ms':>7} {'p50 xL':>6} "
        f"{'p99 xL':>6} {'req/s':>7} {'API CPU ms/req':>14} {'lenders CPU':>11} {'idle other':>10} {'load':>5}  "
        "failed outcomes",
    ]
    for s in result.slices:
        level = s.level
        lines.append(
            f"{level.concurrency:>4} {s.number:>4} {s.tree:>4} {level.requests:>5} {level.errors:>4} {level.p50_ms:>7} "
            f"{level.p99_ms:>7} {level.p50_x_lender:>6} {level.p99_x_lender:>6} {level.requests_per_second:>7} "
            f"{level.cpu_ms_per_request:>14} {level.lenders_cpu_ms_per_request:>11} {s.idle_other_cpu_ms:>10} "
            f"{s.load_average:>5}  {sum(s.failed_outcomes.values()) or ''}"
        )
    lines.append(
        f"medians  {'':>5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p50 xL':>6} {'p99 xL':>6} "
        f"{'API CPU ms/req':>14} {'lenders CPU':>11}"
    )
    for concurrency, found in summary(result).items():
        for row in ("A", "B", "B/A"):
            values = [found[row][name] for name in MEDIANS]
            lines.append(
                f"c{concurrency:<7} {row:>5} {values[0]!s:>7} {values[1]!s:>7} {values[2]!s:>7} {values[3]!s:>6} "
                f"{values[4]!s:>6} {values[5]!s:>14} {values[6]!s:>11}"
            )
        lines.append(
            f"c{concurrency}: B's API spent less CPU a request than A's in {found['B_cpu_lower_in']} of "
            f"{found['pairs']} pairs"
        )
    failed = sum(sum(s.failed_outcomes.values()) for s in result.slices)
    lines.append(
        f"offer nonces handed out twice: {result.duplicate_offer_nonces}; failed provider outcomes: {failed} "
        "(both must be 0 for the figures to mean anything)"
    )
    return "\n".join(lines)


def plot(result: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrencies = sorted({s.level.concurrency for s in result.slices})
    figure, axes = plt.subplots(len(concurrencies), 3, figsize=(15, 4 * len(concurrencies)), squeeze=False)
    for row, concurrency in zip(axes, concurrencies, strict=True):
        rate, latency, cpu = row
        for tree, color in (("A", "tab:blue"), ("B", "tab:orange")):
            ours = [s for s in result.slices if s.tree == tree and s.level.concurrency == concurrency]
            numbers = [s.number for s in ours]
            rate.plot(numbers, [s.level.requests_per_second for s in ours], "o-", color=color, label=tree)
            latency.plot(numbers, [s.level.p50_x_lender for s in ours], "o-", color=color, label=f"{tree} p50")
            latency.plot(numbers, [s.level.p99_x_lender for s in ours], "^:", color=color, label=f"{tree} p99")
            cpu.plot(numbers, [s.level.cpu_ms_per_request for s in ours], "o-", color=color, label=f"{tree} API")
            lenders = [s.level.lenders_cpu_ms_per_request for s in ours]
            cpu.plot(numbers, lenders, "s--", color=color, alpha=0.5, label=f"{tree} lenders")
        rate.set(title=f"c{concurrency}: requests/s", xlabel="pair")
        latency.set(title=f"c{concurrency}: latency / slowest lender", xlabel="pair")
        cpu.set(title=f"c{concurrency}: CPU ms per request", xlabel="pair")
        for each in row:
            each.legend(fontsize=7)
    figure.suptitle(f"scale_ab [{result.label}]: A = {result.trees['A']}, B = {result.trees['B']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the first source tree (e.g. an older commit checked out)")
    parser.add_argument("b", type=Path, help="the second source tree")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 10], help="borrowers, one level after another"
    )
    parser.add_argument("--slices", type=int, default=6, help="slices per tree and concurrency")
    parser.add_argument("--seconds", type=float, default=8.0, help="one slice's length")
    parser.add_argument("--lenders", type=int, default=10, help="simulated lenders, each asked once per request")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="every simulated lender's fixed latency L")
    parser.add_argument("--label", default="A-B")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result), flush=True)
    document = json.loads(json.dumps(asdict(result))) | {"summary": summary(result)}
    write(args.out, stem("scale_ab", args.label), document, partial(plot, result))


if __name__ == "__main__":
    main()
