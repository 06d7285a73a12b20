"""``bench/scale_loans.py``'s measurement, ``bench/scale.py``'s loans figure too: warm-up accepts, then rounds of
accepts at once through the API, each followed by batches of raw presigned ``openLoan`` sends to the same devnet
(``warm_and_measure``, ``measure``); each side's rate the median of its rounds, with what each loan cost the machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import httpx

from api.local_platform import ApiService
from api.wallet import sign_acceptance
from bench._loan_borrowers import Borrower, prepare
from bench.local_stack import ADMIN_KEY, BenchStack
from bench.meters import STATS_DELAY, Meters, background_rate, settle
from bench.raw_sends import RawSender
from bench.rpc_count import RpcCounter
from chain.deployment import DeploymentRecord
from chain.devnet import Devnet

#: seconds over which ``--count-rpc`` counts what the idle platform asks of the devnet
RPC_IDLE_WINDOW = 10.0
#: raw batches after each round of accepts (each as many sends at once as the round has accepts)
RAW_BATCHES = 5


@dataclass(frozen=True, slots=True)
class LoansResult:
    """One run's accepted loans per second through the API against raw presigned ``openLoan`` sends (``measure``)."""

    loans: int
    accepted: int
    statuses: dict[str, int]
    api_seconds: float
    api_loans_per_second: float
    raw_seconds: float
    raw_loans_per_second: float
    ratio: float
    #: CPU milliseconds per loan (``Meters``): each side charged with what its loans cost the machine
    cpu_ms_per_loan: dict[str, float] = field(default_factory=dict)
    #: PostgreSQL transactions (commits and rollbacks, every database user) per accepted loan
    db_transactions_per_loan: float | None = None
    load_average_at_start: list[float] = field(default_factory=list)
    #: raw openLoan sends made (``RawSender``: batches of as many at once as a round has accepts)
    raw_sends: int = 0
    #: each round's accepted loans per second, and each raw batch's sends per second (the rates above: medians)
    api_rounds: list[float] = field(default_factory=list)
    raw_rounds: list[float] = field(default_factory=list)
    #: median, min, max and (max - min) / median of the rounds' rates
    api_spread: dict[str, float] = field(default_factory=dict)
    raw_spread: dict[str, float] = field(default_factory=dict)
    #: ``--count-rpc``: the JSON-RPC calls per accept to the loans' devnet by method (``http``: HTTP requests), from
    #: each round's start until the platform is idle again, less the idle rate
    rpc_calls_per_loan: dict[str, float] = field(default_factory=dict)
    #: each round's loans/s against the median of the raw batches right after it (``ratio``: their median), so
    #: that a devnet slowing as its state grows, or the machine's load changing, meets both sides alike
    round_ratios: list[float] = field(default_factory=list)


async def _accept_all(api_urls: list[str], borrowers: list[Borrower]) -> tuple[float, dict[str, int]]:
    bodies = [{"signature": sign_acceptance(b.account, b.quote["acceptance_typed_data"])} for b in borrowers]
    limits = httpx.Limits(max_connections=len(borrowers), max_keepalive_connections=len(borrowers))
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{api_urls[n % len(api_urls)]}/v1/quotes/{b.quote['id']}/accept",
                    json=body,
                    headers={"X-API-Key": b.key},
                )
                for n, (b, body) in enumerate(zip(borrowers, bodies, strict=True))
            )
        )
        elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
    return elapsed, statuses


def _spread(rates: list[float]) -> dict[str, float]:
    """The median of per-round rates, their lowest and highest, and (highest - lowest) / median."""
    ordered = sorted(rates)
    middle = statistics.median(ordered)
    return {
        "median": round(middle, 2),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
        "spread": round((ordered[-1] - ordered[0]) / middle, 3) if middle else 0.0,
    }


def measure(
    api_urls: list[str],
    borrowers: list[Borrower],
    rpc_url: str,
    record: DeploymentRecord,
    meters: Meters | None = None,
    profile: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    rounds: int = 1,
    raw_batches: int = RAW_BATCHES,
    counter: RpcCounter | None = None,
) -> LoansResult:
    """``borrowers`` accept in ``rounds`` rounds through ``api_urls``, each round's borrowers at once (the last round
    under ``profile``); after each round ``raw_batches`` batches of as many raw presigned ``openLoan`` sends at once
    to the same devnet (``RawSender``). Each side's rate is the median of its rounds' (loans / seconds of the round);
    the ratio is the median over the rounds of a round's rate against the median of the raw batches after it."""
    load = [round(x, 2) for x in os.getloadavg()]
    background = background_rate(meters) if meters else None
    size = -(-len(borrowers) // rounds)
    groups = [borrowers[n : n + size] for n in range(0, len(borrowers), size)]
    raw = RawSender(rpc_url, record)
    statuses: dict[str, int] = {}
    accept_rates: list[float] = []
    raw_rates: list[float] = []
    accept_cpu: dict[str, float] = {}
    raw_client_cpu = raw_anvil_cpu = api_seconds = raw_seconds = 0.0
    per_loan = None
    calls: Counter[str] = Counter()
    idle_calls: dict[str, float] = {}
    if counter is not None:  # what the platform asks of the devnet idle, per second
        settle(meters)
        first, idle_started = counter.counts(), time.monotonic()
        time.sleep(RPC_IDLE_WINDOW)
        idle_seconds = time.monotonic() - idle_started
        idle_calls = {name: n / idle_seconds for name, n in (counter.counts() - first).items()}
    counted_seconds = 0.0
    ratios: list[float] = []  # each round's rate against the median of the raw batches right after it
    for number, group in enumerate(groups):
        transactions = meters.transactions() if meters and number == 0 else None
        settle(meters)
        before = meters.cpu() if meters else {}
        counts_before, counting_since = (counter.counts(), time.monotonic()) if counter else (Counter(), 0.0)
        with profile() if number == len(groups) - 1 else contextlib.nullcontext():
            seconds, answers = asyncio.run(_accept_all(api_urls, group))
        accepts_done = time.monotonic()
        after = meters.cpu() if meters else {}
        for name, value in after.items():
            accept_cpu[name] = accept_cpu.get(name, 0.0) + value - before.get(name, 0.0)
        for status, count in answers.items():
            statuses[status] = statuses.get(status, 0) + count
        api_seconds += seconds
        if counter is not None:  # the accepts' calls and the watchers' and indexer's that follow, until idle
            settle(meters)
            calls += counter.counts() - counts_before
            counted_seconds += time.monotonic() - counting_since
        accept_rates.append(answers.get("201", 0) / seconds)
        if transactions is not None and background is not None and meters is not None:
            # the first round's PostgreSQL transactions, counted before any raw send (the platform's indexer reads
            # the raw loans' events too), less what the processes do idle (leases, readiness) in as long
            time.sleep(max(0.0, STATS_DELAY - (time.monotonic() - accepts_done)))
            counted = meters.transactions()
            if counted is not None:
                idle = background * (seconds + time.monotonic() - accepts_done)
                per_loan = round((counted - transactions - idle) / max(answers.get("201", 0), 1), 1)
        after_round = []
        for _ in range(raw_batches):
            seconds, client_cpu, anvil_cpu = raw.batch(len(group), meters)
            raw_anvil_cpu += anvil_cpu
            raw_client_cpu += client_cpu
            raw_seconds += seconds
            after_round.append(len(group) / seconds)
        raw_rates += after_round
        if after_round:
            ratios.append(accept_rates[-1] / statistics.median(after_round))
    accepted = statuses.get("201", 0)
    cpu_ms = {f"accept: {name}": round(value * 1000 / max(accepted, 1), 2) for name, value in accept_cpu.items()}
    cpu_ms["raw: this process"] = round(raw_client_cpu * 1000 / max(raw.sent, 1), 2)
    if meters is not None and meters.anvil is not None:
        cpu_ms["raw: anvil"] = round(raw_anvil_cpu * 1000 / max(raw.sent, 1), 2)
    api_rate, raw_rate = _spread(accept_rates)["median"], _spread(raw_rates)["median"]
    rpc_per_loan = {
        name: round((calls[name] - idle_calls.get(name, 0.0) * counted_seconds) / max(accepted, 1), 2)
        for name in sorted(set(calls) | set(idle_calls))
    }
    return LoansResult(
        loans=len(borrowers),
        accepted=accepted,
        statuses=statuses,
        api_seconds=round(api_seconds, 2),
        api_loans_per_second=api_rate,
        raw_seconds=round(raw_seconds, 2),
        raw_loans_per_second=raw_rate,
        ratio=round(statistics.median(ratios), 3) if ratios else 0.0,
        cpu_ms_per_loan=cpu_ms,
        db_transactions_per_loan=per_loan,
        load_average_at_start=load,
        raw_sends=raw.sent,
        api_rounds=[round(r, 2) for r in accept_rates],
        raw_rounds=[round(r, 2) for r in raw_rates],
        api_spread=_spread(accept_rates),
        raw_spread=_spread(raw_rates),
        rpc_calls_per_loan=rpc_per_loan,
        round_ratios=[round(r, 3) for r in ratios],
    )


def warm_and_measure(
    started: BenchStack,
    api: ApiService,
    devnet: Devnet,
    record: DeploymentRecord,
    chain: str,
    *,
    loans: int,
    rounds: int,
    warm: int,
    raw_batches: int = RAW_BATCHES,
    profile: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    counter: RpcCounter | None = None,
) -> LoansResult:
    """One run through ``api`` (``bench.scale`` measures its loans with it too): ``warm`` accepts first, not measured
    (a process's first accepts build what later ones reuse: the first of a cold process took ~1.2 s), then ``rounds``
    rounds of ``loans`` accepts at once, each followed by ``raw_batches`` raw batches (``measure``), metered."""
    borrowers = prepare([api.url], ADMIN_KEY, devnet.rpc_url, record, chain, warm + loans * rounds)
    if warm:
        asyncio.run(_accept_all([api.url], borrowers[:warm]))
    names = dict(api.pids)
    if len(names) > 1:
        names["balancer"] = api.process.pid
    meters = Meters(names, devnet.process.pid, started.postgres_data_dir, started.database_url)
    return measure([api.url], borrowers[warm:], devnet.rpc_url, record, meters, profile, rounds, raw_batches, counter)
