"""An accept's own database transactions on PostgreSQL, in one process, one accept at a time: what each costs this
process's CPU (the Python side: SQLAlchemy, psycopg, the ledger and the outbox) and PostgreSQL's backend, and how
many statements it sends — the read of the quote and its accept record, the lock (quote and request to
``accepting``, the other quotes superseded, the borrower's exposure, the screening's decision records) and the
loan's record after mining (the receipt's events into the ledger and the outbox, the accept ``recorded``, the quote
and request ``accepted``, the audit entry, the loan read for the answer) — exactly as ``AcceptanceService`` runs
them (``_load``, ``_lock``, ``_record``).

The receipt is an ``openLoan`` receipt's events as the accept decodes them: ``LoanOpened`` (CreditAggregator),
``CollateralAdded`` (CollateralManager) and ``LoanFunded`` (the pool), in one transaction.

``--before DIR`` runs the same measure on another source tree (a ``git worktree`` of main) in a child process,
rounds alternating with this tree's, each on a fresh schema of one PostgreSQL:

    uv run --frozen --no-sync python -m bench.accept_records [--accepts 200] [--rounds 4] [--before /tmp/main-tree]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

PHASES = ("load", "lock", "record")
POOL = "0x" + "b7" * 20


def _round(url: str, schema: str, accepts: int) -> dict[str, Any]:
    """One round in this process: ``accepts`` accepts' three transactions; per phase the CPU ms of this process and
    of PostgreSQL's backend, wall ms and statements, per accept."""
    from sqlalchemy import event

    import aggregator._accept_chain as accept_chain

    # a tree from before the accept handed its quote to the ledger (--before) has no quote_link
    quote_link: Callable[[Any], Any] | None = getattr(accept_chain, "quote_link", None)
    from aggregator.accept_saga import AcceptRecord, AcceptStep, LoanFacts, Screening, advance
    from aggregator.ledger import loan_id_for
    from bench.meters import cpu_seconds
    from chain.events import ChainEvent
    from store.accepts import SqlAcceptStore
    from store.db import Database
    from tests.support.ledger_facts import AGGREGATOR, CHAIN, COLLATERAL_MANAGER, USDC, WETH, add_quote
    from tests.support.quoting import borrower_file, shipped_compliance
    from tests.support.services import fresh_schema

    database = Database(fresh_schema(url, schema))
    database.migrate()
    compliance = shipped_compliance()
    borrower = borrower_file()
    screen_acceptance = compliance.screen_acceptance
    # a tree from before the accept re-checked the KYC status (--before) takes the borrower and the quote id only
    kyc_facts: dict[str, Any] = {}
    if "kyc" in inspect.signature(screen_acceptance).parameters:
        from compliance import Product

        kyc_facts = {"kyc": borrower.kyc, "product": Product.DEFI, "amount": Decimal("100")}
    store = SqlAcceptStore(database)
    statements = [0]

    @event.listens_for(database.engine, "before_cursor_execute")
    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[0] += 1
        if os.environ.get("ACCEPT_RECORDS_ECHO"):
            print("SQL", " ".join(statement.split())[:160], file=sys.stderr)

    def prepared() -> tuple[str, str, list[ChainEvent]]:
        digest = "0x" + uuid.uuid4().hex * 2
        wallet = "0x" + uuid.uuid4().hex[:20] * 2
        quote_id = str(uuid.uuid4())
        add_quote(
            database,
            borrower_address=wallet,
            offer_digest=digest,
            provider_id="pool:usdc",
            chain_name=CHAIN.name,
            chain_id=CHAIN.chain_id,
            contract=AGGREGATOR,
            kind="pool",
            offer={"providerRef": "ref", "principal": "100000000", "borrower": wallet, "nonce": "7"},
            disclosure={"asset": "USDC"},
            status="offered",
            quote_id=quote_id,
        )
        block, tx_hash = 1000 + len(done), "0x" + uuid.uuid4().hex * 2
        loan_ref = len(done) + 1

        def log(address: str, contract: str, name: str, index: int, **args: Any) -> ChainEvent:
            return ChainEvent(
                chain_id=CHAIN.chain_id,
                contract=contract,
                address=address,  # type: ignore[arg-type]
                event=name,
                args={"loanId": loan_ref, **args},
                block_number=block,
                block_hash="0x" + f"{block:064x}",
                tx_hash=tx_hash,
                log_index=index,
            )

        events = [
            log(
                AGGREGATOR,
                "CreditAggregator",
                "LoanOpened",
                1,
                borrower=wallet,
                providerId=b"\x11" * 32,
                pool=POOL,
                asset=USDC,
                principal=100_000_000,
                originationFee=500_000,
                rateBps=900,
                term=30 * 86_400,
                termsHash=b"\x22" * 32,
                collateralAsset=WETH,
                collateralAmount=10**17,
                offerDigest=bytes.fromhex(digest[2:]),
            ),
            log(
                COLLATERAL_MANAGER,
                "CollateralManager",
                "CollateralAdded",
                3,
                asset=WETH,
                amount=10**17,
                **{"from": wallet},
            ),
            log(
                POOL,
                "LendingPool",
                "LoanFunded",
                5,
                receiver=wallet,
                principal=100_000_000,
                originationFee=500_000,
                rateBps=900,
            ),
        ]
        return quote_id, tx_hash, events

    done: list[str] = []
    totals = {phase: [0.0, 0.0, 0.0, 0] for phase in PHASES}  # cpu s, backend cpu s, wall s, statements

    def measured(phase: str, work: Any) -> Any:
        backend = _backend_pid(database)
        statements[0] = 0
        cpu, pg, wall = time.thread_time(), cpu_seconds(backend), time.perf_counter()
        result = work()
        total = totals[phase]
        total[0] += time.thread_time() - cpu
        total[2] += time.perf_counter() - wall
        total[1] += cpu_seconds(backend) - pg
        total[3] += statements[0]
        return result

    for n in range(accepts + 5):  # the first five warm the caches and the pool, not counted
        quote_id, tx_hash, events = prepared()

        def load(quote_id: str = quote_id) -> Any:
            with store.unit_of_work() as uow:
                return uow.accepts.quote_and_record(quote_id)

        quote, _ = measured("load", load) if n >= 5 else load()
        records = (
            screen_acceptance(borrower.facts(), quote.id, **kyc_facts),
            compliance.screen_collateral_source(str(quote.offer["borrower"]), quote.chain_id),
        )
        now = datetime.now(UTC)
        screening = Screening(records, quote.borrower_id, compliance.screen.name_list_version, now)
        record = AcceptRecord(
            quote_id=quote.id,
            request_id=quote.request_id,
            borrower_id=quote.borrower_id,
            kind=quote.kind,
            chain_name=quote.chain_name,
            attempt=1,
            step=AcceptStep.SUBMITTED,
            owner="accept-bench",
            lease_until=now + timedelta(seconds=30),
            updated_at=now,
        )

        def lock(quote: Any = quote, record: AcceptRecord = record, screening: Screening = screening) -> None:
            with store.unit_of_work() as uow:
                uow.accepts.lock(quote, record)
                uow.accepts.exposure(quote.borrower_id, excluding_quote=quote.id)
                uow.accepts.record_screening(screening)
                uow.commit()

        measured("lock", lock) if n >= 5 else lock()
        facts = LoanFacts(
            id=loan_id_for(CHAIN.chain_id, CHAIN.aggregator, quote.offer_digest),
            quote_id=quote.id,
            borrower_id=quote.borrower_id,
            asset=quote.asset,
            principal=100_000_000,
            tx_hash=tx_hash,
            events=tuple(events),
            ledger_chain=CHAIN,
            offer_digest=quote.offer_digest,
            **({} if quote_link is None else {"quote_link": quote_link(quote), "offer": quote.offer}),
        )
        recorded = advance(record, AcceptStep.RECORDED, now, tx_hash=tx_hash)

        def record_loan(facts: LoanFacts = facts, recorded: AcceptRecord = recorded) -> Any:
            with store.unit_of_work() as uow:
                loan_id = uow.accepts.record_loan(facts, recorded)
                assert loan_id is not None
                loan = uow.accepts.loan(loan_id)
                uow.commit()
                return replace(recorded, loan_id=loan_id), loan

        _, loan = measured("record", record_loan) if n >= 5 else record_loan()
        assert loan is not None
        assert (loan.status, loan.quote_id) == ("active", quote.id)
        done.append(quote.id)
    database.dispose()
    per = {
        phase: {
            "cpu_ms": 1000 * cpu / accepts,
            "postgres_ms": 1000 * pg / accepts,
            "wall_ms": 1000 * wall / accepts,
            "statements": count / accepts,
        }
        for phase, (cpu, pg, wall, count) in totals.items()
    }
    return {"accepts": accepts, "phases": per}


def _backend_pid(database: Any) -> int:
    import sqlalchemy as sa

    with database.engine.connect() as connection:  # the pool's one connection: the phases' transactions use it
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _child(tree: Path, url: str, schema: str, accepts: int) -> dict[str, Any]:
    """A round in ``tree``'s code (its modules first on the path), in a process of its own."""
    code = (
        f"import sys, json; sys.path.insert(0, {str(tree)!r}); "
        f"ns = {{'__name__': 'accept_records_child'}}; exec(open({__file__!r}).read(), ns); "
        f"print('RESULT ' + json.dumps(ns['_round']({url!r}, {schema!r}, {accepts})))"
    )
    env = os.environ | {"PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the round in {tree} failed:\n{out.stderr[-4000:]}")
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accepts", type=int, default=200, help="accepts per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per tree, alternating")
    parser.add_argument("--before", type=Path, help="another source tree, measured alternately with this one")
    args = parser.parse_args()
    from tests.support.services import postgres_server

    here = Path(__file__).resolve().parents[1]
    trees = {"after": here} if args.before is None else {"before": args.before.resolve(), "after": here}
    print(f"load average at start: {os.getloadavg()}")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as workdir, postgres_server(Path(workdir)) as url:
        for n in range(args.rounds):
            for name in trees if n % 2 == 0 else reversed(list(trees)):
                result = _child(trees[name], url, f"accept_records_{name}_{n}", args.accepts)
                results[name].append(result)
                phases = result["phases"]
                print(
                    f"round {n + 1} {name}: "
                    + ", ".join(
                        f"{p} {v['cpu_ms']:.2f}+{v['postgres_ms']:.2f} ms, {v['statements']:.1f}"
                        for p, v in phases.items()
                    )
                    + f" (load {os.getloadavg()[0]:.2f})"
                )
    print(f"\n{args.accepts} accepts a round, {args.rounds} rounds per tree; load at end: {os.getloadavg()}")
    print("| tree | transaction | CPU ms (this process) | PostgreSQL backend CPU ms | wall ms | statements |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, rounds in results.items():
        for phase in PHASES:
            values = [r["phases"][phase] for r in rounds]

            def span(key: str, values: list[dict[str, float]] = values) -> str:
                low, high = min(v[key] for v in values), max(v[key] for v in values)
                return f"{low:.2f}" if abs(high - low) < 0.005 else f"{low:.2f}–{high:.2f}"

            print(
                f"| {name} | {phase} | {span('cpu_ms')} | {span('postgres_ms')} | {span('wall_ms')} "
                f"| {span('statements')} |"
            )


if __name__ == "__main__":
    main()
