"""Where a py-spy profile of the API process goes, by part of the credit request: shares of its samples.

    uv run --frozen --no-sync python -m bench.profile_shares bench/results/quote_path-after-c10.profile.txt

Reads py-spy's raw (collapsed) output — one stack a line, frames joined by ``;``, the sample count last — and puts
each stack in the first part of :data:`PARTS` whose pattern it matches anywhere (so a lender call's httpx frames
count for the lender calls, not for httpx in general; a fan-out task's stack starts at its own coroutine). The
order matters: the write step's SQL counts for the write, the remaining SQL for "SQL with no caller above".

**Clumps**: on a busy machine ``py-spy --gil`` keeps sampling the thread that holds the GIL while the process is
descheduled, which shows as one identical stack sampled tens of times at an arbitrary line (an ``asyncio.timeout``'s
``call_at``, a ``with`` statement). A stack with at least ``clump`` samples is left out and reported apart."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: (part, pattern over the whole stack), the first match wins
PARTS: tuple[tuple[str, str], ...] = (
    (
        "disclose, sign and write; the response rendered",
        r"_disclose_sign_and_store|api/render\.py|store/quoting\.py|aggregator/quote_store\.py",
    ),
    ("the caller's key and the borrower's file", r"api/deps\.py|api/auth\.py|store/borrower|aggregator/borrower"),
    ("the pool adapters' quotes", r"providers/pool\.py|chain/views\.py"),
    ("the borrower's on-chain history", r"risk/onchain_source\.py"),
    ("the HTTP lender calls", r"providers/http_lender\.py|providers/destinations\.py|providers/http_pool\.py|httpx/"),
    (
        "the fan-out and the resilience layers",
        r"aggregator/fanout\.py|providers/resilience\.py|providers/_(breaker|limits|health|deadlines)|tenacity/|pybreaker",
    ),
    ("screening (compliance)", r"compliance/"),
    ("risk scoring and velocity", r"risk/"),
    ("chain JSON-RPC exchanges (chain client, aiohttp, web3)", r"chain/|aiohttp/|web3/"),
    ("the request's own steps (aggregator: pricing, ranking, quoting)", r"aggregator/"),
    ("SQL with no caller above", r"sqlalchemy/"),
    ("the framework and the middleware", r"fastapi/|starlette/|uvicorn/|h11|api/"),
)
OTHER = "other (the event loop, threads, no project frame)"


@dataclass
class Shares:
    samples: int
    parts: dict[str, float]
    clumps: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{self.samples} GIL samples" + (f", clumps left out: {self.clumps}" if self.clumps else "")
        return [head] + [f"{share:6.1f}%  {part}" for part, share in self.parts.items()]


def shares(path: Path, clump: int = 20) -> Shares:
    counts: Counter[str] = Counter()
    clumps: list[int] = []
    total = 0
    patterns = [(part, re.compile(pattern)) for part, pattern in PARTS]
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        if samples >= clump:
            clumps.append(samples)
            continue
        total += samples
        counts[next((part for part, pattern in patterns if pattern.search(stack)), OTHER)] += samples
    ordered = {part: round(100 * n / total, 1) for part, n in counts.most_common()} if total else {}
    return Shares(total, ordered, sorted(clumps, reverse=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profiles", nargs="+", type=Path, help="py-spy raw profiles (--format raw)")
    parser.add_argument("--clump", type=int, default=20, help="leave out a stack sampled at least this often")
    args = parser.parse_args(argv)
    for profile in args.profiles:
        print(profile)
        print("\n".join(shares(profile, args.clump).lines()))


if __name__ == "__main__":
    main()
