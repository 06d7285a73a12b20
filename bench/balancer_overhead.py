"""The local balancer's own cost (``api/balancer.py``, in front of ``creditmesh serve --processes N``): a trivial app
(``bench/baseline_app.py`` asking no lender, so it answers at once) measured directly and through the balancer in
front of two processes of it, in the same run — sequential latency p50/p99 and requests per second at concurrency 10,
with ``bench/quote_path.py``'s load client (one keep-alive connection per borrower, as a client would hold).

    uv run --frozen --no-sync python -m bench.balancer_overhead                      # this tree's balancer
    uv run --frozen --no-sync python -m bench.balancer_overhead --code /tmp/before  # another tree's balancer

Prints a table and the balancer's added p50 in milliseconds; writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.baseline_app import LENDERS_VARIABLE
from bench.output import stem, write
from bench.quote_path import Level, _load, _machine
from bench.scale import _processes
from chain.devnet import free_port

REPO = Path(__file__).resolve().parent.parent


def _measure(url: str, pid: int, seconds: float) -> list[Level]:
    return [asyncio.run(_load(url, "", concurrency, seconds, pid, lambda: None)) for concurrency in (1, 10)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    code = Path(args.code).resolve() if args.code else REPO
    with tempfile.TemporaryDirectory(prefix="balancer-") as temp:
        log_dir = Path(temp)
        ports = [free_port(), free_port()]
        app_env = dict(os.environ) | {LENDERS_VARIABLE: "[]"}
        uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "bench.baseline_app:app"]
        apps = [([*uvicorn, "--port", str(p)], f"http://127.0.0.1:{p}/healthz") for p in ports]
        port = free_port()
        # ``python -m api.balancer``, from ``code`` ahead of the working directory on the path
        start = f"import sys; sys.path.insert(0, {str(code)!r}); from api.balancer import main; main()"
        balancer = [sys.executable, "-c", start, "--port", str(port), *(f"127.0.0.1:{p}" for p in ports)]
        balancer_env = dict(os.environ)
        with (
            _processes("app", apps, app_env, log_dir) as app_pids,
            _processes("balancer", [(balancer, f"http://127.0.0.1:{port}/healthz")], balancer_env, log_dir) as pids,
        ):
            direct = _measure(f"http://127.0.0.1:{ports[0]}", app_pids[0], args.seconds)
            balanced = _measure(f"http://127.0.0.1:{port}", pids[0], args.seconds)
    return {
        "label": args.label,
        "code": str(code),
        "machine": _machine(),
        "direct": [vars(level) for level in direct],
        "balanced": [vars(level) for level in balanced],
        "added_p50_ms": round(balanced[0].p50_ms - direct[0].p50_ms, 1),
        "throughput_of_direct": round(balanced[1].requests_per_second / direct[1].requests_per_second, 2),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"balancer overhead [{result['label']}] ({result['code']}); load average "
        f"{result['machine']['load_average_at_start']} at start",
        f"{'path':<9} {'conc':>4} {'reqs':>6} {'err':>4} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>7} {'CPU ms/req':>10}",
    ]
    for path in ("direct", "balanced"):
        for level in result[path]:
            lines.append(
                f"{path:<9} {level['concurrency']:>4} {level['requests']:>6} {level['errors']:>4} "
                f"{level['p50_ms']:>7} {level['p99_ms']:>7} {level['requests_per_second']:>7} "
                f"{level['cpu_ms_per_request']:>10}"
            )
    lines.append(
        f"the balancer adds {result['added_p50_ms']} ms to the sequential p50 (one process directly vs two behind "
        f"it); at concurrency 10 it passes {result['throughput_of_direct']:.0%} of one process's direct req/s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per level")
    parser.add_argument("--code", default=None, help="run the balancer from this source tree")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result), flush=True)
    write(args.out, stem("balancer", args.label), result)


if __name__ == "__main__":
    main()
