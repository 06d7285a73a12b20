"""Facts reconciled per second vs raw ``eth_getLogs`` plus decoding, over the same blocks, in the same run.

Three fresh anvils (31337, 31338, 31339) with the devnet contract set; ``--loans`` loans spread over them, made with
presigned transactions with our records beside them (``bench.bulk_loans``: quotes, accepts, the ledger by the
indexer's path), the signing spread over ``--workers`` processes; the database is a temporary SQLite file, a private
PostgreSQL (``--db postgres``) or a URL. Then, over each chain's whole range:

* raw: ``eth_getLogs`` over our contracts' addresses (``chain.logs.fetch_raw_logs``), every log decoded with its
  ABI (``chain.events.EventDecoder``), nothing matched or stored — the floor of any reconciler;
* reconcile: a full run (``api.reconcile_jobs.reconcile``): the same reads plus the code check, our records read,
  every fact matched, the run and its discrepancies stored and audited.

Goal: reconcile/raw ≥ 0.5.

    uv run --frozen --no-sync python -m bench.reconcile [--loans 10000] [--db sqlite|postgres|URL] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from api.reconcile_jobs import ReconciledChain, reconcile
from bench.bulk_loans import index_ledger, open_loans
from chain.client import ChainClient
from chain.config import LOCAL_CHAINS, ChainConfig
from chain.deployment import DeploymentRecord
from chain.devnet import devnets
from chain.events import EventDecoder
from chain.keccak import use_fast_keccak
from chain.logs import fetch_raw_logs
from compliance.reconcile_chain import reconciled_contracts, scope_for
from contracts.deploy import deploy_to_devnet
from store.db import Database


async def raw_run(clients: list[ChainClient], records: list[DeploymentRecord], to_blocks: list[int]) -> int:
    facts = 0
    for client, record, to_block in zip(clients, records, to_blocks, strict=True):
        scope = scope_for(record, None, to_block)
        contracts = reconciled_contracts(record)
        decoder = EventDecoder(client.w3.codec)
        for contract in contracts:
            decoder.add(contract)
        logs = await fetch_raw_logs(
            client,
            [c.address for c in contracts],
            from_block=scope.from_block,
            to_block=scope.to_block,
            max_range=5_000,
        )
        decoded = [decoder.decode(client.config.chain_id, entry) for entry in logs]
        facts += len(decoded)
    return facts


PHASES = ("deploy", "loans and records", "ledger (indexer's path)")


def set_up_chain(
    config: ChainConfig, record_path: Path, url: str, loans: int, workers: int
) -> tuple[DeploymentRecord, list[float]]:
    """Deploy to one devnet, open ``loans`` loans with our records, build the ledger; the seconds of each phase."""
    use_fast_keccak()
    database = Database(url)
    try:
        t0 = time.perf_counter()
        record = deploy_to_devnet(config.name, config.chain_id, config.rpc_urls[0], record_path)
        t1 = time.perf_counter()
        made = open_loans(config, record, database, loans, workers=workers)
        t2 = time.perf_counter()
        asyncio.run(index_ledger(config, record, database, made.from_block))
        return record, [t1 - t0, t2 - t1, time.perf_counter() - t2]
    finally:
        database.dispose()


@contextmanager
def bench_database(db: str, tmp: Path) -> Iterator[str]:
    if db == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
    elif db == "postgres":
        from pgserver.postgres_server import get_server

        server = get_server(str(tmp / "pg"), cleanup_mode="stop")
        try:
            yield "postgresql+psycopg://" + server.get_uri().split("://", 1)[1]
        finally:
            server.cleanup()
    else:
        yield db


async def set_up(
    configs: list[ChainConfig], tmp: Path, url: str, loans: int, workers: int
) -> tuple[list[DeploymentRecord], list[float]]:
    """Every chain set up in turn (three chains' ledgers built at once in three processes were slower on this
    shared 2-core machine, against PostgreSQL: 119 s against 67 s for 1,500 loans)."""
    records, spent = [], [0.0] * len(PHASES)
    for config in configs:
        record, times = await asyncio.to_thread(
            set_up_chain, config, tmp / f"{config.name}.json", url, loans // len(configs), workers
        )
        records.append(record)
        spent = [total + seconds for total, seconds in zip(spent, times, strict=True)]
    return records, spent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument(
        "--db", default="sqlite", help="sqlite (a temporary file), postgres (a private server) or a URL"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each side")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes signing the loans")
    args = parser.parse_args()
    use_fast_keccak()  # as every serving process does (chain.keccak)
    with (
        tempfile.TemporaryDirectory() as tmp,
        devnets(LOCAL_CHAINS, free_ports=True) as running,
        bench_database(args.db, Path(tmp)) as url,
    ):
        migrated = Database(url)
        migrated.migrate()
        migrated.dispose()
        configs = [devnet.config() for devnet in running]
        started = time.perf_counter()
        records, spent = await set_up(configs, Path(tmp), url, args.loans, args.workers)
        print(
            f"set-up: {args.loans} loans on {len(running)} chains in {time.perf_counter() - started:.0f} s ("
            + ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in zip(PHASES, spent, strict=True))
            + ")",
            flush=True,
        )
        database = Database(url)
        clients = [await ChainClient(config).connect() for config in configs]
        try:
            heads = [int(await client.rpc("eth_blockNumber"), 16) for client in clients]
            raw_best, facts = float("inf"), 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                facts = await raw_run(clients, records, heads)
                raw_best = min(raw_best, time.perf_counter() - t0)
            rec_best, reconciled, discrepancies = float("inf"), 0, 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                outcome = await reconcile(
                    database,
                    [ReconciledChain(client, record) for client, record in zip(clients, records, strict=True)],
                    "bench",
                    to_block=max(heads),
                )
                rec_best = min(rec_best, time.perf_counter() - t0)
                reconciled, discrepancies = outcome.facts, outcome.discrepancies
        finally:
            for client in clients:
                await client.close()
            database.dispose()
    raw_rate, rec_rate = facts / raw_best, reconciled / rec_best
    print(f"facts: {facts} (raw) / {reconciled} (reconciled), discrepancies: {discrepancies}")
    print(f"raw eth_getLogs + decode: {raw_best:.2f} s  {raw_rate:,.0f} facts/s")
    print(f"reconcile (read, match, store, audit): {rec_best:.2f} s  {rec_rate:,.0f} facts/s")
    print(f"ratio reconcile/raw: {rec_rate / raw_rate:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    asyncio.run(main())
