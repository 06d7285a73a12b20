"""``creditmesh audit …``: the hash-chained audit log (``compliance.audit``) and its on-chain anchors.

seal      number and chain the entries written since the last seal (the audit worker does this continuously)
anchor    seal, then anchor the head on every chain (``--chains``) with the audit anchor key
          (``CREDITMESH_AUDIT_ANCHOR_KEY``; devnet account 11 on local devnets), each chain on its own; exit status 1
          naming each chain where it failed
verify    walk the sealed log and name the first altered, inserted, deleted or reordered entry, then check it
          against every anchor on every chain (``--offline``: the log alone), then every reconciliation run the log
          records and every finished one against its digest and its first audit entry; exit status 1 if anything
          fails"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from api.audit_jobs import AnchorChain, AnchoringFailed, anchor, seal, verify_log
from api.bootstrap import chain_registry, load_records
from api.settings import Settings
from chain.client import ChainClient
from chain.errors import ConfigurationError, RpcUnavailable
from chain.signers import LocalSigner, Role, Signer, devnet_signer
from chain.transactions import TransactionManager
from compliance.audit_anchor import AnchorContract
from store.chain import SqlChainStore
from store.db import Database


def _database(settings: Settings) -> Database:
    """The platform's database, refused when it is a SQLite file that is not there (opening it would create an empty
    one, whose empty log then "verifies", or is sealed and anchored as empty: a wrong directory read as a clean
    audit)."""
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise SystemExit(
            f"no database at {url.removeprefix('sqlite:///')}: set CREDITMESH_DATA_DIR or CREDITMESH_DATABASE_URL to "
            "the platform's (nothing was created)"
        )
    database = Database(url)
    database.migrate()
    return database


def _anchor_signer(settings: Settings) -> Signer:
    if settings.audit_anchor_key:
        return LocalSigner.from_key(settings.audit_anchor_key)
    if settings.environment != "local":
        raise SystemExit("set CREDITMESH_AUDIT_ANCHOR_KEY (the key holding ANCHOR_ROLE)")
    return devnet_signer(Role.AUDIT_ANCHOR)


@asynccontextmanager
async def _chains(
    settings: Settings, database: Database, names: list[str] | None, signer: Signer | None
) -> AsyncIterator[list[AnchorChain]]:
    registry = chain_registry(settings)
    configs = [config for config in registry if not names or "all" in names or config.name in names]
    if names and "all" not in names and len(configs) != len(set(names)):
        raise SystemExit(f"unknown chain in {names}; known: {[config.name for config in registry]}")
    records = load_records(settings.resolved_deployments_dir, registry)
    opened: list[AnchorChain] = []
    try:
        for config in configs:
            client = ChainClient(config)
            try:
                await client.connect()
            except RpcUnavailable as err:
                await client.close()
                raise RpcUnavailable(f"cannot reach {config.name}: {err}") from err
            transactions = None
            if signer is not None:
                store = SqlChainStore(database.sessions)
                transactions = await TransactionManager(
                    client, signer, store, revert_artifacts=("AuditAnchor",)
                ).start()
            opened.append(AnchorChain(client, AnchorContract.from_record(records[config.name]), transactions))
        yield opened
    finally:
        for chain in opened:
            if chain.transactions is not None:
                await chain.transactions.close()
            await chain.client.close()


def _unreachable(command: str, err: RpcUnavailable) -> str:
    """One line for a chain that does not answer (a traceback before), with the ways on."""
    return (
        f"audit {command}: {err}; start it, or leave it out with --chains NAME … "
        "(`audit verify --offline` checks the log alone)"
    )


def cmd_seal(args: argparse.Namespace) -> None:
    database = _database(Settings())
    try:
        sealed, head = seal(database)
        where = "empty log" if head is None else f"head: entry {head[0]} {head[1]}"
        print(f"sealed {sealed} entries; {where}", flush=True)
    finally:
        database.dispose()


def cmd_anchor(args: argparse.Namespace) -> None:
    settings = Settings()
    database = _database(settings)

    async def main() -> dict[str, str | None]:
        async with _chains(settings, database, args.chains, _anchor_signer(settings)) as chains:
            return await anchor(database, chains)

    failed: dict[str, str] = {}
    try:
        done = asyncio.run(main())
    except ConfigurationError as err:
        raise SystemExit(str(err)) from err
    except RpcUnavailable as err:  # before anything was anchored: a chain down at the start
        raise SystemExit(_unreachable("anchor", err)) from err
    except AnchoringFailed as err:  # the other chains are anchored: say so, and which failed
        done, failed = err.anchored, err.failed
    finally:
        database.dispose()
    if not done and not failed:
        print("the audit log is empty: nothing to anchor", flush=True)
    for chain_name, tx_hash in done.items():
        print(f"[{chain_name}] " + (f"anchored in {tx_hash}" if tx_hash else "already anchored"), flush=True)
    if failed:
        raise SystemExit("\n".join(f"[{chain_name}] not anchored: {why}" for chain_name, why in failed.items()))


def cmd_verify(args: argparse.Namespace) -> None:
    settings = Settings()
    database = _database(settings)

    async def main() -> Any:
        if args.offline:
            return await verify_log(database, [])
        async with _chains(settings, database, args.chains, None) as chains:
            return await verify_log(database, chains)

    try:
        report = asyncio.run(main())
    except ConfigurationError as err:
        raise SystemExit(str(err)) from err
    except RpcUnavailable as err:
        raise SystemExit(_unreachable("verify", err)) from err
    finally:
        database.dispose()
    print(
        f"{report.entries} entries, head {report.head}, {report.pending} not yet sealed, "
        f"{report.anchors_checked} anchors checked, {report.runs_checked} reconciliation runs checked",
        flush=True,
    )
    if report.ok:
        print("audit log verified", flush=True)
        return
    if report.first_bad is not None:
        print(f"FIRST BAD: {report.first_bad}", flush=True)
    for problem in report.problems[1:]:
        print(f"also: {problem}", flush=True)
    for run_problem in report.run_problems:
        print(f"RUN: {run_problem}", flush=True)
    sys.exit(1)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    audit = commands.add_parser("audit", help="the hash-chained audit log: seal, anchor, verify")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    sub.add_parser("seal", help="number and chain the entries written since the last seal").set_defaults(func=cmd_seal)
    anchor_parser = sub.add_parser("anchor", help="seal and anchor the head on-chain (AuditAnchor)")
    anchor_parser.add_argument("--chains", nargs="+", default=["all"], help="chain names, or all (default)")
    anchor_parser.set_defaults(func=cmd_anchor)
    check = sub.add_parser("verify", help="name the first altered, inserted, deleted or reordered entry")
    check.add_argument("--chains", nargs="+", default=["all"], help="whose anchors to check (default: all)")
    check.add_argument("--offline", action="store_true", help="check the log alone, without reading anchors")
    check.set_defaults(func=cmd_verify)
