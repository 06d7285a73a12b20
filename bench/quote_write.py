"""The worker threads' database work per credit request on PostgreSQL, in process: the offer nonces reserved while
the lenders answer (``QuotingStore.reserve_ahead``, three chains, called once a request as the pipeline does when it
has none at hand: with blocks of nonces most calls reach no database) and the write after the last answer
(``QuotingStore.writing`` + ``add_quoted`` + the commit, a ten-lender request: 10 outcomes, 15 quotes, 14 decision
records and their audit entries). CPU (the thread's own, ``time.thread_time``) and wall time of each, medians.

With ``--code TREE`` the same measurement runs alternately in child processes on TREE (before) and on this tree
(after), round by round on one PostgreSQL, each tree in a schema of its own: the A/B of a change to the store.

    uv run --frozen --no-sync python -m bench.quote_write [--code /work/main] [--rounds 8] [--writes 150]
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
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

HERE = Path(__file__).resolve().parent.parent


def _child(url: str, writes: int) -> dict[str, float]:
    from aggregator.quote_store import InMemoryQuotingStore, OfferNonceKey, QuotedRequest
    from compliance import ComplianceService
    from compliance.jurisdiction import load_rules
    from compliance.sanctions.lists import AddressList, ListVersion, NameList
    from compliance.sanctions.screening import SanctionsScreen
    from store.api import BorrowerRow
    from store.db import Database
    from store.quoting import SqlQuotingStore
    from tests.support.quoting import QUOTE_SIGNER, SPEC, WALLET, borrower_file, quoting_service

    version = ListVersion("bench", datetime(2026, 11, 1, tzinfo=UTC), "bench.csv", "00" * 32)
    screen = SanctionsScreen(AddressList(version, MappingProxyType({})), NameList(version, ()))
    compliance = ComplianceService(screen, load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32)))
    memory = InMemoryQuotingStore()
    quoted = asyncio.run(quoting_service(memory, compliance).request_credit(borrower_file(), SPEC))
    decision, records = memory.tables.risk_decisions[0], memory.tables.decision_records
    outcomes = (quoted.outcomes * 3)[:10]
    quotes = (quoted.quotes * 3)[:15]
    records = (records * 2)[:14]

    database = Database(url)
    database.migrate()
    store = SqlQuotingStore(database)
    with database.unit_of_work() as uow:
        if uow.session.get(BorrowerRow, "b1") is None:
            uow.session.add(
                BorrowerRow(id="b1", wallet_address=WALLET, jurisdiction="US-FL", created_at=datetime.now(UTC))
            )
            uow.commit()
    keys = [OfferNonceKey(31337 + i, f"0x{0xA0 + i:040x}", QUOTE_SIGNER.address) for i in range(3)]

    def one() -> tuple[float, float, float, float]:
        request_id = str(uuid.uuid4())
        request = replace(quoted.request, id=request_id, borrower_id="b1")
        fresh = QuotedRequest(
            request,
            outcomes,
            [
                replace(
                    q,
                    id=str(uuid.uuid4()),
                    request_id=request_id,
                    borrower_id="b1",
                    rank=i,
                    offer_digest="0x" + os.urandom(32).hex(),
                )
                for i, q in enumerate(quotes)
            ],
        )
        made = [replace(record, decision_id=str(uuid.uuid4())) for record in records]
        for record in made:
            record.record_hash()
        stored = replace(decision, id=str(uuid.uuid4()), request_id=request_id, borrower_id="b1")
        c0, w0 = time.thread_time(), time.perf_counter()
        store.reserve_ahead(keys)
        c1, w1 = time.thread_time(), time.perf_counter()
        with store.writing([]) as (uow, _nonces):
            uow.quoting.add_quoted(fresh, stored, made)
            uow.commit()
        c2, w2 = time.thread_time(), time.perf_counter()
        return c1 - c0, w1 - w0, c2 - c1, w2 - w1

    for _ in range(20):
        one()
    samples = [one() for _ in range(writes)]
    database.dispose()
    names = ("reserve_cpu", "reserve_wall", "write_cpu", "write_wall")
    return {name: statistics.median(s[i] for s in samples) * 1000 for i, name in enumerate(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, help="the tree to compare with (before)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--writes", type=int, default=150, help="writes per round and tree")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.writes)))
        return
    from tests.support.services import fresh_schema, postgres_server

    trees = {"after": HERE} | ({"before": args.code.resolve()} if args.code else {})
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp) / "pg") as url:
        urls = {label: fresh_schema(url, f"qw_{label}") for label in trees}
        results: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
        for round_ in range(args.rounds):
            for label in sorted(trees, reverse=round_ % 2 == 1):
                env = {**os.environ, "PYTHONPATH": str(trees[label])}
                out = subprocess.run(
                    [sys.executable, __file__, "--child", urls[label], "--writes", str(args.writes)],
                    cwd=trees[label],
                    env=env,
                    check=True,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                results[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"round {round_} {label}: {results[label][-1]}  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"load average at the end: {os.getloadavg()}")
    print(f"{'ms, median of round medians':32}" + "".join(f"{label:>12}" for label in trees))
    for name in ("reserve_cpu", "reserve_wall", "write_cpu", "write_wall"):
        print(f"{name:32}" + "".join(f"{statistics.median(r[name] for r in results[label]):12.3f}" for label in trees))


if __name__ == "__main__":
    main()
