"""Accepted loans per second, end to end through the API processes, against raw presigned ``openLoan`` transactions
to the same devnet — on its own, and as ``bench/scale.py``'s third measure (``prepare`` and ``measure``).

    uv run --frozen --no-sync python -m bench.scale_loans                        # 2 API processes, 40 loans, 1 run
    uv run --frozen --no-sync python -m bench.scale_loans --runs 3 --before /tmp/main-tree    # A/B, alternating
    uv run --frozen --no-sync python -m bench.scale_loans --py-spy "$(which py-spy)" --py-spy-mode idle

On its own it starts what ``bench/scale.py`` starts (``bench.local_stack``: PostgreSQL, Redis, three devnets, the
simulated lenders and identity providers, on free loopback ports) and the API as ``creditmesh serve --processes N``
runs it (``api.local_platform.api_service``), then measures ``--runs`` times, each with fresh borrowers.

End to end: fresh borrowers (gas, WETH minted, the aggregator approved for the collateral), each onboarded through the
API and holding one pool quote on the chain; then every borrower accepts its quote at once, spread over the API
processes, and the clock stops at the last answer (an accept answers 201 once ``openLoan`` is mined and recorded).
Raw: the same number of ``openLoan`` transactions — the offer, the acceptance and the risk attestation signed
beforehand by the same devnet keys the platform uses — sent at once from the relayer to the same devnet, and the
clock stops when the last receipt is in. Raw runs after the API's accepts, so the two never share the relayer's
nonces.

Beside the rates, what each loan cost the machine (``Meters``): the CPU milliseconds per accept of each API process,
the balancer, PostgreSQL (its server and backends) and anvil, against the CPU per raw send of its client (this
process) and anvil; and PostgreSQL's transactions per accept (``pg_stat_database``, less the rate counted while the
API idled just before). On a machine of C cores, C x 1000 / (CPU ms per loan) bounds each side's rate.
``--py-spy`` records api-1 during the last run's accepts (``--py-spy-mode``: gil, busy or idle threads). Prints a
table, writes JSON and a PNG plot to ``--out`` (``scale_loans-LABEL.*``). Goal: loans/s >= 50% of raw."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import Web3

from api.demo import onboard
from api.local_platform import ApiService, api_service
from api.wallet import sign_acceptance
from bench.local_stack import ADMIN_KEY, BenchStack, bench_stack
from bench.meters import STATS_DELAY, Meters, background_rate, ms_per_loan
from bench.quote_path import _machine
from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord
from chain.devnet import Devnet
from chain.signers import DEVNET_ROLE_INDEX, Role, devnet_account
from contracts.typed_data import (
    Acceptance,
    Domain,
    Offer,
    RiskAttestation,
    acceptance_typed_data,
    offer_typed_data,
    risk_attestation_typed_data,
    sign,
)

USDC, WETH = 10**6, 10**18
AMOUNT = "100.00"
COLLATERAL = WETH // 10  # 0.1 WETH against 100 USDC
LOAN_REQUEST = {"amount": AMOUNT, "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "0.1"}}
OPEN_GAS = 900_000
QUOTE_ATTEMPTS = 5
MAX_FEE = 50 * 10**9
GOAL_LOANS = 0.50
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class LoansResult:
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


@dataclass(frozen=True, slots=True)
class Borrower:
    account: LocalAccount
    key: str
    quote: dict[str, Any]


def _send(w3: Web3, account: LocalAccount, call: Any) -> None:
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)
    if w3.eth.wait_for_transaction_receipt(tx_hash)["status"] != 1:
        raise RuntimeError(f"setting up a borrower failed: {tx_hash.hex()}")


def _funded(rpc_url: str, record: DeploymentRecord) -> LocalAccount:
    """A fresh wallet with gas and 1 WETH, the aggregator approved to take its collateral."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    weth = w3.eth.contract(address=record.address("WETH"), abi=load_artifact("MockERC20").abi)
    account: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [account.address, hex(WETH)])  # type: ignore[arg-type]
    _send(w3, account, weth.functions.mint(account.address, WETH))
    _send(w3, account, weth.functions.approve(record.address("CreditAggregator"), 2**256 - 1))
    return account


def _quoted(api_url: str, admin_key: str, rpc_url: str, record: DeploymentRecord, chain: str) -> Borrower:
    account = _funded(rpc_url, record)
    key = onboard(api_url, admin_key, account.address)
    for _ in range(QUOTE_ATTEMPTS):  # a busy machine can make every provider miss the fan-out deadline
        response = httpx.post(
            f"{api_url}/v1/credit-requests",
            json=LOAN_REQUEST | {"preferred_chains": [chain]},
            headers={"X-API-Key": key},
            timeout=120,
        )
        if response.status_code != 201:
            raise RuntimeError(f"credit request refused: {response.text}")
        pool = [q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == chain]
        if pool:
            return Borrower(account, key, pool[0])
    raise RuntimeError(f"no pool quote on {chain} in {QUOTE_ATTEMPTS} requests: {response.text}")


def prepare(
    api_urls: list[str], admin_key: str, rpc_url: str, record: DeploymentRecord, chain: str, count: int
) -> list[Borrower]:
    """``count`` borrowers, each holding one pool quote on ``chain`` (set up through the API processes in turn)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(
            pool.map(
                lambda n: _quoted(api_urls[n % len(api_urls)], admin_key, rpc_url, record, chain),
                range(count),
            )
        )


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


def _presigned_opens(rpc_url: str, record: DeploymentRecord, count: int) -> list[str]:
    """``count`` raw ``openLoan`` transactions from the relayer, signed now (not timed)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    chain_id = int(w3.eth.chain_id)
    aggregator = w3.eth.contract(address=record.address("CreditAggregator"), abi=load_artifact("CreditAggregator").abi)
    domain = Domain(chain_id, aggregator.address)
    oracle_domain = Domain(chain_id, record.address("CreditScoringOracle"))
    quote_key = devnet_account(DEVNET_ROLE_INDEX[Role.QUOTE_SIGNER]).key
    risk_key = devnet_account(DEVNET_ROLE_INDEX[Role.RISK_SIGNER]).key
    relayer = devnet_account(DEVNET_ROLE_INDEX[Role.RELAYER])
    first = w3.eth.get_transaction_count(relayer.address)
    now = int(w3.eth.get_block("latest")["timestamp"])
    raws = []
    for n in range(count):
        borrower = _funded(rpc_url, record)
        offer = Offer(
            providerId=keccak(text="pool:usdc"),
            pool=record.address("LendingPool:USDC"),
            borrower=borrower.address,
            asset=record.address("USDC"),
            principal=100 * USDC,
            rateBps=900,
            term=30 * 86_400,
            originationFee=0,
            collateralAsset=record.address("WETH"),
            collateralAmount=COLLATERAL,
            chainId=chain_id,
            termsHash=keccak(text=f"bench scale disclosure {n}"),
            expiry=now + 86_400,
            nonce=2**80 + (first << 20) + n,  # far from the platform's own offer nonces, new in every run
        )
        attestation = RiskAttestation(
            borrower=borrower.address,
            grade=2,
            maxLtvBps=7_500,
            expiry=now + 86_400,
            decisionHash=keccak(text=f"bench scale decision {n}"),
            nonce=offer.nonce,
        )
        acceptance = Acceptance(offer=offer, deadline=offer.expiry)
        data = aggregator.encode_abi(
            "openLoan",
            [
                acceptance.as_abi_tuple(),
                sign(offer_typed_data(domain, offer), quote_key),
                sign(acceptance_typed_data(domain, acceptance), borrower.key),
                attestation.as_abi_tuple(),
                sign(risk_attestation_typed_data(oracle_domain, attestation), risk_key),
            ],
        )
        tx = {
            "chainId": chain_id,
            "nonce": first + n,
            "to": aggregator.address,
            "data": data,
            "value": 0,
            "gas": OPEN_GAS,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }
        raws.append("0x" + bytes(relayer.sign_transaction(tx).raw_transaction).hex())
    return raws


async def _send_raw(rpc_url: str, raws: list[str]) -> tuple[float, float]:
    """Seconds from the first send to the last receipt, and this process's CPU seconds meanwhile."""
    async with httpx.AsyncClient(timeout=120) as client:

        async def rpc(method: str, params: list[Any]) -> Any:
            answer = (
                await client.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            ).json()
            if "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            return answer["result"]

        started, cpu = time.perf_counter(), time.process_time()
        pending = set(await asyncio.gather(*(rpc("eth_sendRawTransaction", [raw]) for raw in raws)))
        while pending:
            receipts = await asyncio.gather(*(rpc("eth_getTransactionReceipt", [h]) for h in pending))
            failed = [r["transactionHash"] for r in receipts if r is not None and r["status"] != "0x1"]
            if failed:
                raise RuntimeError(f"raw openLoan reverted: {failed[:3]}")
            pending = {h for h, r in zip(list(pending), receipts, strict=True) if r is None}
            await asyncio.sleep(0.01)
        return time.perf_counter() - started, time.process_time() - cpu


def measure(
    api_urls: list[str],
    borrowers: list[Borrower],
    rpc_url: str,
    record: DeploymentRecord,
    meters: Meters | None = None,
    profile: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
) -> LoansResult:
    """Every borrower accepts at once through ``api_urls`` (under ``profile``), then as many raw presigned sends."""
    load = [round(x, 2) for x in os.getloadavg()]
    background = background_rate(meters) if meters else None
    transactions = meters.transactions() if meters else None
    cpu_before = meters.cpu() if meters else {}
    with profile():
        api_seconds, statuses = asyncio.run(_accept_all(api_urls, borrowers))
    accepts_done = time.monotonic()
    cpu_accepts = meters.cpu() if meters else {}
    accepted = statuses.get("201", 0)
    raws = _presigned_opens(rpc_url, record, len(borrowers))
    anvil_before = meters.cpu().get("anvil", 0.0) if meters else 0.0
    raw_seconds, raw_cpu = asyncio.run(_send_raw(rpc_url, raws))
    cpu_ms = {f"accept: {name}": ms for name, ms in ms_per_loan(cpu_before, cpu_accepts, accepted).items()}
    cpu_ms["raw: this process"] = round(raw_cpu * 1000 / len(raws), 2)
    if meters is not None and meters.anvil is not None:
        cpu_ms["raw: anvil"] = round((meters.cpu()["anvil"] - anvil_before) * 1000 / len(raws), 2)
    per_loan = None
    if transactions is not None and background is not None and meters is not None:
        time.sleep(max(0.0, STATS_DELAY - (time.monotonic() - accepts_done)))
        after = meters.transactions()
        if after is not None:  # less what the processes do idle (leases, readiness) in as long
            idle = background * (api_seconds + time.monotonic() - accepts_done)
            per_loan = round((after - transactions - idle) / max(accepted, 1), 1)
    api_rate, raw_rate = accepted / api_seconds, len(raws) / raw_seconds
    return LoansResult(
        loans=len(borrowers),
        accepted=accepted,
        statuses=statuses,
        api_seconds=round(api_seconds, 2),
        api_loans_per_second=round(api_rate, 2),
        raw_seconds=round(raw_seconds, 2),
        raw_loans_per_second=round(raw_rate, 2),
        ratio=round(api_rate / raw_rate, 3),
        cpu_ms_per_loan=cpu_ms,
        db_transactions_per_loan=per_loan,
        load_average_at_start=load,
    )


# ---------------------------------------------------------------------------------------------- on its own


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
                                        env=started.env,
                                        code=code,
                                        log_dir=data_dir,
                                        timeout=600,
                                    )
                                )
                            runs.append(
                                Run(label, args.processes, _one_run(args, started, api, devnet, record, number))
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
) -> LoansResult:
    borrowers = prepare([api.url], ADMIN_KEY, devnet.rpc_url, record, args.chain, args.warm + args.loans)
    if args.warm:  # the process's first accepts build what later ones reuse: not measured
        asyncio.run(_accept_all([api.url], borrowers[: args.warm]))
    names = dict(api.pids)
    if len(names) > 1:
        names["balancer"] = api.process.pid
    meters = Meters(names, devnet.process.pid, started.postgres_data_dir, started.database_url)
    profile: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
    if args.py_spy and number == args.runs - 1:
        first = next(iter(api.pids.values()))
        stem = f"{_stem(args.label)}-{args.py_spy_mode}"
        profile = functools.partial(_py_spy, args, first, stem, started.data_dir)
    return measure([api.url], borrowers[args.warm :], devnet.rpc_url, record, meters, profile)


def _line(loans: LoansResult) -> str:
    return (
        f"{loans.accepted}/{loans.loans} accepted in {loans.api_seconds} s = {loans.api_loans_per_second} loans/s; "
        f"raw presigned {loans.raw_loans_per_second}/s; ratio {loans.ratio:.1%}; "
        f"CPU ms per accept {_accept_cpu_ms(loans):.1f} (API {_api_cpu_ms(loans):.1f}) "
        f"vs per raw send {_raw_cpu_ms(loans):.1f}; "
        f"{loans.db_transactions_per_loan} database transactions per accept; load {loans.load_average_at_start}"
    )


def table(result: Result) -> str:
    cores = os.cpu_count() or 1
    parts = sorted({name for run in result.runs for name in run.loans.cpu_ms_per_loan})
    lines = [
        f"scale_loans [{result.label}]: accepted loans per second end to end through {result.processes} API "
        f"process(es) against raw presigned openLoan sends to the same devnet",
        f"machine: {result.machine['cpus']} CPUs, load average {result.machine['load_average_at_start']} at start, "
        f"{result.load_average_at_end} at end (shared with other work: compare the ratios and the CPU per loan)",
        f"{'tree':<12} {'loans':>5} {'201':>4} {'loans/s':>8} {'raw/s':>8} {'ratio':>7} {'db tx':>6} {'load':>6}  "
        + " ".join(f"{name:>18}" for name in parts),
    ]
    for run in result.runs:
        loans = run.loans
        load = loans.load_average_at_start[0] if loans.load_average_at_start else 0.0
        lines.append(
            f"{run.label:<12} {loans.loans:>5} {loans.accepted:>4} {loans.api_loans_per_second:>8} "
            f"{loans.raw_loans_per_second:>8} {loans.ratio:>7.1%} {loans.db_transactions_per_loan or 0:>6} {load:>6}  "
            + " ".join(f"{loans.cpu_ms_per_loan.get(name, 0.0):>18}" for name in parts)
        )
    lines.append("(CPU columns: milliseconds per loan of each process; db tx: PostgreSQL transactions per accept)")
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


def _stem(label: str) -> str:
    return "scale_loans-" + "".join(ch if ch.isalnum() else "-" for ch in label)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2, help="API processes (behind the balancer when > 1)")
    parser.add_argument("--loans", type=int, default=40, help="loans accepted at once per run")
    parser.add_argument("--warm", type=int, default=2, help="accepts made first in each run, not measured")
    parser.add_argument("--runs", type=int, default=1, help="runs (each: the accepts, then the raw sends)")
    parser.add_argument("--chain", default="ethereum-local", help="the devnet the loans open on")
    parser.add_argument("--code", default=None, help="run the API from this source tree")
    parser.add_argument("--before", default=None, help="also this source tree's API, alternating with this one's")
    parser.add_argument("--label", default="this tree")
    parser.add_argument(
        "--py-spy", default=None, help="a py-spy executable: profile api-1 during the last run's accepts"
    )
    parser.add_argument("--py-spy-mode", choices=("gil", "busy", "idle"), default="gil")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = _stem(args.label)
    (args.out / f"{stem}.json").write_text(json.dumps(asdict(result), indent=2))
    plot(result, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json and .png", flush=True)


if __name__ == "__main__":
    main()
