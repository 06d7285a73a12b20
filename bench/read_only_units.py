"""What a read-only unit of work's end costs the statements after it on the same pooled PostgreSQL connection.

A GET route or a poll reads in a unit of work and leaves it without committing. Ended by ROLLBACK, psycopg forgets
and deallocates every statement prepared on the connection, so the next request's statements there (the caller's
key and file, here) are planned by PostgreSQL again until psycopg has seen each five more times; ended by COMMIT
(``store.db.UnitOfWork`` now, when it only read) they keep their plans. Each round runs, on one PostgreSQL of its
own and one pooled connection, ``--pairs`` times: a read-only unit of work (a GET's read of a credit request), then
the caller's read (``store.borrower_file.read_caller``, the statement every authenticated request runs), with the
unit of work ended by ROLLBACK (before) and by COMMIT (now) in alternate rounds. It prints the medians of the
caller's read and of the unit of work, wall and thread CPU, and now / before.

    uv run --frozen --no-sync python -m bench.read_only_units [--rounds 10] [--pairs 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from store.borrower_file import read_caller
from store.db import Database
from tests.support.services import postgres_server

MODES = ("rollback", "commit")


def _round(database: Database, mode: str, pairs: int) -> dict[str, float]:
    caller_wall, caller_cpu, unit_wall = [], [], []
    for index in range(pairs):
        started = time.perf_counter()
        with database.unit_of_work() as uow:  # a GET route's read: the credit request it was asked for
            uow.session.execute(
                sa.text("SELECT id, status FROM credit_requests WHERE id = :id"), {"id": f"r{index}"}
            ).all()
            if mode == "rollback":
                uow.session.rollback()  # how every unit of work that only read ended before
        unit_wall.append(time.perf_counter() - started)
        started, cpu = time.perf_counter(), time.thread_time()
        read_caller(database, key_hash=f"{index:064x}", with_file=True)
        caller_cpu.append(time.thread_time() - cpu)
        caller_wall.append(time.perf_counter() - started)
    return {
        "caller_wall_ms": statistics.median(caller_wall) * 1000,
        "caller_cpu_ms": statistics.median(caller_cpu) * 1000,
        "unit_wall_ms": statistics.median(unit_wall) * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="rounds, the two ends alternating")
    parser.add_argument("--pairs", type=int, default=200, help="unit of work + caller's read pairs a round")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="read-only-units-") as tmp, postgres_server(Path(tmp) / "pg") as url:
        database = Database(url)
        database.migrate()
        _round(database, "commit", 20)  # warm: connection, compiled statements
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for number in range(args.rounds):
            for mode in MODES if number % 2 == 0 else MODES[::-1]:
                results[mode].append(_round(database, mode, args.pairs))
        database.dispose()
    print(f"read_only_units: {args.rounds} rounds of {args.pairs} pairs per end, medians of the rounds' medians (ms)")
    print(f"{'end':<10} {'caller wall':>12} {'caller CPU':>11} {'unit wall':>10}")
    medians = {
        mode: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]} for mode, rounds in results.items()
    }
    for mode, figures in medians.items():
        print(
            f"{mode:<10} {figures['caller_wall_ms']:>12.3f} {figures['caller_cpu_ms']:>11.3f}"
            f" {figures['unit_wall_ms']:>10.3f}"
        )
    before, now = medians["rollback"], medians["commit"]
    print(
        "commit / rollback: caller wall {:.2f}, caller CPU {:.2f}, unit wall {:.2f}".format(
            now["caller_wall_ms"] / before["caller_wall_ms"],
            now["caller_cpu_ms"] / before["caller_cpu_ms"],
            now["unit_wall_ms"] / before["unit_wall_ms"],
        )
    )


if __name__ == "__main__":
    main()
