"""Two source trees' API processes measured side by side: CPU per credit request, with the load alternating.

    uv run --frozen --no-sync python -m bench.quote_path_ab /tmp/creditmesh-before .      # concurrency 10
    uv run --frozen --no-sync python -m bench.quote_path_ab A B --concurrency 1 --slices 10 --seconds 6

On a shared machine two back-to-back runs of ``bench/quote_path.py`` differ by more than most changes (the same
tree measured 19-29 ms of CPU a request within ten minutes at a load average of 5-8). Here both trees' platforms
(``bench/quote_path.py``'s: three devnets, the simulated lenders at L = 100 ms, the identity providers, one API
process each, SQLite, no background workers) are up at once, and the load goes to one, then the other, in short
slices (A B, B A, A B …), so both see the same machine. Each slice's figure is the API process's own CPU time
(``/proc``) over the credit requests it answered; the table gives every slice and the medians, and B / A. Writes
them as JSON with a plot of every slice to ``--out`` (``quote_path_ab-LABEL.json``/``.png``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from api.demo import onboard
from api.local_platform import PlatformServices, ServicePorts, local_chains, platform_services
from bench.local_stack import ADMIN_KEY, platform_env
from bench.meters import cpu_seconds
from bench.output import stem, write
from bench.quote_path import REPO, REQUEST, _fleet_document
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account

#: the results' file names: quote_path_ab-LABEL.json, .png
NAME = "quote_path_ab"


def _start(stack: ExitStack, code: Path, latency_ms: float) -> tuple[PlatformServices, str]:
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="quote-path-ab-")))
    fleet_file = data_dir / "lenders.json"
    fleet_file.write_text(_fleet_document(code, latency_ms))
    chains = stack.enter_context(local_chains(data_dir / "deployments", free_ports=True))
    assert chains.chains_file is not None
    env = platform_env(data_dir, chains.chains_file, "none")
    platform = stack.enter_context(
        platform_services(ServicePorts.free(), fleet_file=fleet_file, env=env, code=code, log_dir=data_dir, timeout=300)
    )
    key = onboard(platform.api_url, ADMIN_KEY, devnet_account(DEVNET_BORROWER_INDEXES[0]).address)
    for _ in range(3):  # what start-up still builds in the background (the sanctions name index) is waited for
        httpx.post(f"{platform.api_url}/v1/credit-requests", json=REQUEST, headers={"X-API-Key": key}, timeout=300)
    return platform, key


async def _slice(api_url: str, key: str, concurrency: int, seconds: float) -> int:
    """Credit requests from ``concurrency`` clients for ``seconds`` (after two that warm the connections); how many
    were answered, all of them 201."""
    answered = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, headers={"X-API-Key": key}, timeout=120, limits=limits) as client:
        for _ in range(2):
            await client.post("/v1/credit-requests", json=REQUEST)
        end = time.perf_counter() + seconds

        async def borrower() -> None:
            nonlocal answered
            while time.perf_counter() < end:
                response = await client.post("/v1/credit-requests", json=REQUEST)
                response.raise_for_status()
                answered += 1

        await asyncio.gather(*(borrower() for _ in range(concurrency)))
    return answered + 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="the first source tree (e.g. an older commit)")
    parser.add_argument("b", type=Path, help="the second source tree")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--slices", type=int, default=8, help="slices per tree")
    parser.add_argument("--seconds", type=float, default=6.0, help="one slice's length")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="the simulated lenders' fixed latency")
    parser.add_argument("--label", default="this run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    trees = [args.a.resolve(), args.b.resolve()]
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with ExitStack() as stack:
        platforms = [_start(stack, tree, args.latency_ms) for tree in trees]
        figures: list[list[float]] = [[], []]
        for number in range(args.slices):
            for index in (0, 1) if number % 2 == 0 else (1, 0):
                platform, key = platforms[index]
                before = cpu_seconds(platform.api_pid)
                answered = asyncio.run(_slice(platform.api_url, key, args.concurrency, args.seconds))
                figures[index].append(1000 * (cpu_seconds(platform.api_pid) - before) / answered)
            print(f"slice {number + 1}: A {figures[0][-1]:.1f}, B {figures[1][-1]:.1f} ms of CPU a request", flush=True)
    document = summary(args, trees, figures, load_at_start)
    print(
        f"concurrency {args.concurrency}, median of {args.slices} slices: A ({trees[0]}) {document['a_median_ms']:.1f} "
        f"ms, B ({trees[1]}) {document['b_median_ms']:.1f} ms of CPU a credit request; B / A "
        f"{document['b_over_a']:.3f}; B lower in {document['b_lower_in']} of {args.slices}"
    )
    write(args.out, stem(NAME, args.label), document, partial(plot, document))


def summary(
    args: argparse.Namespace, trees: list[Path], figures: list[list[float]], load_at_start: list[float]
) -> dict[str, Any]:
    """The run as JSON: its settings, every slice's CPU a request of each tree, their medians, B / A."""
    a, b = statistics.median(figures[0]), statistics.median(figures[1])
    return {
        "label": args.label,
        "a": str(trees[0]),
        "b": str(trees[1]),
        "concurrency": args.concurrency,
        "slices": args.slices,
        "seconds_per_slice": args.seconds,
        "latency_ms": args.latency_ms,
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "a_cpu_ms_per_request": [round(x, 2) for x in figures[0]],
        "b_cpu_ms_per_request": [round(x, 2) for x in figures[1]],
        "a_median_ms": round(a, 2),
        "b_median_ms": round(b, 2),
        "b_over_a": round(b / a, 3),
        "b_lower_in": sum(y < x for x, y in zip(figures[0], figures[1], strict=True)),
    }


def plot(document: dict[str, Any], path: Path) -> None:
    """Each slice's CPU a credit request of A and B, their medians dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for tree, color in (("a", "tab:blue"), ("b", "tab:orange")):
        values = document[f"{tree}_cpu_ms_per_request"]
        axes.plot(range(1, len(values) + 1), values, "-o", color=color, label=f"{tree.upper()}: {document[tree]}")
        axes.axhline(document[f"{tree}_median_ms"], color=color, linestyle="--", linewidth=0.8)
    axes.set(
        title=f"API CPU ms a credit request, concurrency {document['concurrency']} (B / A {document['b_over_a']})",
        xlabel="slice",
        ylabel="ms",
    )
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
