"""One API process on the benchmarks' stack (PostgreSQL + Redis + three devnets + ten lenders, ``bench.local_stack``):
the API process's CPU per credit request, and what one credit request asks the devnets — JSON-RPC exchanges (HTTP
requests), JSON-RPC calls by method (a batch's members counted one by one) and TCP connections opened — counted by
a small proxy in front of each anvil (the API's chains file points at the proxies).

    uv run --frozen --no-sync python -m bench.request_rpcs                         # this tree
    uv run --frozen --no-sync python -m bench.request_rpcs --code /tmp/before      # another source tree's API
    uv run --frozen --no-sync python -m bench.request_rpcs --py-spy PATH --label x # and a profile of concurrency 10

Levels: one request at a time, then ``--concurrency`` borrowers, ``--seconds`` each. The devnets' idle traffic (the
API's own background reads with no request) is measured first for ``--idle-seconds`` and taken out of the per-request
figures. The machine may be shared: CPU per request is the process's own CPU time (robust to load), the counts are
exact."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from api.demo import onboard
from api.local_platform import api_service
from bench.local_stack import ADMIN_KEY, bench_stack
from bench.meters import cpu_seconds
from bench.quote_path import REQUEST
from bench.rpc_count import HTTP, RpcCounter
from bench.scale import _fleet
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account

REPO = Path(__file__).resolve().parent.parent


class CountingProxy:
    """A counting forwarder (``bench.rpc_count.RpcCounter``) in front of each devnet; their counts summed."""

    def __init__(self, targets: list[str]) -> None:
        self._stack = ExitStack()
        self._counters = [RpcCounter(target) for target in targets]
        self.urls: list[str] = []

    def __enter__(self) -> CountingProxy:
        self.urls = [self._stack.enter_context(counter).url for counter in self._counters]
        return self

    def __exit__(self, *_: object) -> None:
        self._stack.close()

    def snapshot(self) -> tuple[int, Counter[str], int]:
        """JSON-RPC exchanges (HTTP requests), calls by method and client connections so far, over every devnet."""
        calls: Counter[str] = Counter()
        for counter in self._counters:
            calls += counter.counts()
        exchanges = calls.pop(HTTP, 0)
        return exchanges, calls, sum(counter.connections() for counter in self._counters)


@dataclass
class Level:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    cpu_ms_per_request: float
    exchanges_per_request: float
    calls_per_request: float
    connections_opened: int
    calls_by_method: dict[str, float]
    p50_ms: float


async def _load(url: str, key: str, concurrency: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=120, limits=limits) as client:
        end = time.perf_counter() + seconds

        async def borrower() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                sent = time.perf_counter()
                response = await client.post("/v1/credit-requests", json=REQUEST)
                latencies.append((time.perf_counter() - sent) * 1000)
                errors += response.status_code != 201

        await asyncio.gather(*(borrower() for _ in range(concurrency)))
    return latencies, errors


def _level(
    proxy: CountingProxy,
    pid: int,
    url: str,
    key: str,
    concurrency: int,
    seconds: float,
    idle: tuple[float, Counter[str]],
) -> Level:
    idle_rate, idle_calls = idle
    exchanges0, calls0, connections0 = proxy.snapshot()
    cpu0, started = cpu_seconds(pid), time.perf_counter()
    latencies, errors = asyncio.run(_load(url, key, concurrency, seconds))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu0
    exchanges1, calls1, connections1 = proxy.snapshot()
    count = max(len(latencies), 1)
    calls = calls1 - calls0
    idle_share = {method: n * elapsed for method, n in idle_calls.items()}
    by_method = {m: round(max(0.0, n - idle_share.get(m, 0.0)) / count, 2) for m, n in sorted(calls.items())}
    latencies.sort()
    return Level(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 2),
        cpu_ms_per_request=round(cpu * 1000 / count, 2),
        exchanges_per_request=round((exchanges1 - exchanges0 - idle_rate * elapsed) / count, 2),
        calls_per_request=round(sum(by_method.values()), 2),
        connections_opened=connections1 - connections0,
        calls_by_method={m: n for m, n in by_method.items() if n},
        p50_ms=round(latencies[len(latencies) // 2], 1) if latencies else 0.0,
    )


@contextmanager
def _profile(py_spy: str | None, pid: int, output: Path) -> Iterator[None]:
    if not py_spy:
        yield
        return
    command = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--gil",
        "--nonblocking",
        "--output",
        str(output),
    ]
    profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="request-rpcs-") as temp:
        data_dir = Path(temp)
        with bench_stack(data_dir, fleet=_fleet(args.lenders, args.latency_ms)) as stack:
            assert stack.chains.chains_file is not None
            configs = json.loads(stack.chains.chains_file.read_text())
            targets = [url for config in configs for url in config["rpc_urls"]]
            with CountingProxy(targets) as proxy:
                proxied = dict(zip(targets, proxy.urls, strict=True))
                for config in configs:
                    config["rpc_urls"] = [proxied[url] for url in config["rpc_urls"]]
                chains_file = data_dir / "chains-proxied.json"
                chains_file.write_text(json.dumps(configs))
                env = stack.env | {"CREDITMESH_CHAINS_FILE": str(chains_file)}
                code = Path(args.code).resolve() if args.code else None
                with api_service(stack.ports.api, env=env, code=code, log_dir=data_dir, timeout=600) as api:
                    pid = api.pids["api-1"]
                    key = onboard(api.url, ADMIN_KEY, devnet_account(DEVNET_BORROWER_INDEXES[0]).address)
                    for _ in range(3):  # the name index, the pools, the prices
                        httpx.post(
                            f"{api.url}/v1/credit-requests", json=REQUEST, headers={"X-API-Key": key}, timeout=600
                        )
                    exchanges0, calls0, _ = proxy.snapshot()
                    cpu0 = cpu_seconds(pid)
                    time.sleep(args.idle_seconds)
                    exchanges1, calls1, _ = proxy.snapshot()
                    idle_cpu = (cpu_seconds(pid) - cpu0) * 1000 / args.idle_seconds
                    idle = (
                        (exchanges1 - exchanges0) / args.idle_seconds,
                        Counter({m: n / args.idle_seconds for m, n in (calls1 - calls0).items()}),
                    )
                    levels = []
                    for concurrency in (1, args.concurrency):
                        output = args.out / f"request_rpcs-{args.label}-c{concurrency}.profile.txt"
                        with _profile(args.py_spy if concurrency > 1 else None, pid, output):
                            level = _level(proxy, pid, api.url, key, concurrency, args.seconds, idle)
                        levels.append(level)
                        print(json.dumps(level.__dict__), flush=True)
    return {
        "label": args.label,
        "load_average": os.getloadavg(),
        "idle_cpu_ms_per_s": round(idle_cpu, 2),
        "idle_exchanges_per_s": round(idle[0], 2),
        "levels": [level.__dict__ for level in levels],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lenders", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--code", default=None, help="run the API from this source tree")
    parser.add_argument("--label", default="this-tree")
    parser.add_argument("--py-spy", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    result = run(args)
    print(json.dumps(result, indent=2))
    (args.out / f"request_rpcs-{args.label}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
