"""``creditmesh reconcile``: match every on-chain fact of our contracts on the chosen chains with the platform's
records (``compliance.reconcile``), with a progress bar per chain; the run is stored (and recorded in the audit
log) and written as JSON, CSV and a self-contained HTML report.

    creditmesh reconcile --chains all [--from-block N | --since-last] [--to-block N] [--out DIR]

Exit status 0 when every fact matched, 1 when there are discrepancies (the reports say which)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from api.bootstrap import chain_registry, load_records, report_unserviced_loans
from api.reconcile_jobs import PastTheHead, ReconciledChain, load_report, reconcile, refuse_past_the_head
from api.settings import Settings
from chain.client import ChainClient
from chain.errors import ChainError, ConfigurationError
from compliance.reconcile import ChainScope
from compliance.reconcile_report import to_csv, to_html, to_json
from store.db import Database

_BAR = 30


class ProgressBars:
    """One text progress bar per chain on stderr, redrawn as blocks are read."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[int, int, int]] = {}

    def __call__(self, scope: ChainScope, block: int) -> None:
        self.done[scope.chain_name] = (scope.from_block, scope.to_block, block)
        span = max(1, scope.to_block - scope.from_block + 1)
        share = min(1.0, (block - scope.from_block + 1) / span)
        filled = int(share * _BAR)
        bar = "#" * filled + "-" * (_BAR - filled)
        end = "\n" if block >= scope.to_block else "\r"
        print(f"[{scope.chain_name:16}] {bar} {share:6.1%} block {block}/{scope.to_block}", end=end, file=sys.stderr)


def _block(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a block number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a block number (0 or more)")
    return number


def cmd_reconcile(args: argparse.Namespace) -> None:
    if args.from_block is not None and args.to_block is not None and args.from_block > args.to_block:
        raise SystemExit(f"--from-block {args.from_block} is after --to-block {args.to_block}: no block to reconcile")
    out: Path = args.out
    try:  # before the run: a run stored and audited whose reports cannot be written helps no one
        out.mkdir(parents=True, exist_ok=True)
        (out / ".writable").touch()
        (out / ".writable").unlink()
    except OSError as err:
        raise SystemExit(f"--out {out}: {err.strerror or err}") from err
    settings = Settings()
    registry = chain_registry(settings)
    wanted = None if "all" in args.chains else set(args.chains)
    configs = [config for config in registry if wanted is None or config.name in wanted]
    if wanted is not None and len(configs) != len(wanted):
        raise SystemExit(f"unknown chain in {sorted(wanted)}; known: {registry.names}")
    try:
        records = load_records(settings.resolved_deployments_dir, registry)
    except ConfigurationError as err:
        raise SystemExit(str(err)) from err
    database = Database(settings.resolved_database_url)
    database.migrate()
    report_unserviced_loans(database, (records[config.name] for config in configs))  # not reconciled: said

    async def main() -> str:
        clients = [await ChainClient(config).connect() for config in configs]
        try:
            if args.from_block is not None:  # before a run is stored: a range past the head has no block to read
                await refuse_past_the_head(clients, args.from_block)
            chains = [ReconciledChain(client, records[client.config.name]) for client in clients]
            outcome = await reconcile(
                database,
                chains,
                args.started_by,
                from_block=args.from_block,
                since_last=args.since_last,
                to_block=args.to_block,
                progress=ProgressBars(),
            )
            return outcome.run_id
        finally:
            for client in clients:
                await client.close()

    try:
        run_id = asyncio.run(main())
        report = load_report(database, run_id, {config.name: config.explorer_tx_url for config in registry})
    except PastTheHead as err:
        raise SystemExit(f"refused: {err}; nothing reconciled") from err
    except ChainError as err:
        raise SystemExit(f"reconciliation failed: {err}") from err
    finally:
        database.dispose()
    assert report is not None
    for suffix, render in (("json", to_json), ("csv", to_csv), ("html", to_html)):
        (out / f"reconciliation-{run_id}.{suffix}").write_text(render(report))
    for chain in report.chains:
        print(chain_line(chain, args.to_block))
    print(f"run {run_id}, digest {report.digest}: {len(report.items)} discrepancies")
    for line in discrepancy_lines(report.items):
        print(line)
    print(f"reports: {out}/reconciliation-{run_id}.{{json,csv,html}}", flush=True)
    if report.items:
        sys.exit(1)


SHOWN = 20  # discrepancies printed; the reports hold every one


def chain_line(chain: Mapping[str, Any], to_block: int | None = None) -> str:
    """One chain's range and counts; a range after its last block (``--since-last`` when no block was confirmed
    since the chain's last run, or with a ``to_block`` asked at or before that run's end) is nothing new, not an
    inverted range. The last block is the confirmed head unless ``to_block`` asked for an earlier one."""
    if chain["fromBlock"] > chain["toBlock"]:
        done, end = chain["fromBlock"] - 1, chain["toBlock"]
        if to_block is not None and to_block <= end:  # the run ends where asked, not at the head
            return f"[{chain['chain']}] nothing new: reconciled to block {done}, after the --to-block {to_block} asked"
        return f"[{chain['chain']}] nothing new: reconciled to block {done}, the confirmed head is {end}"
    counts = ", ".join(f"{category} {count}" for category, count in chain["counts"].items() if count)
    return f"[{chain['chain']}] blocks {chain['fromBlock']}-{chain['toBlock']}: {chain['facts']} facts; {counts}"


def discrepancy_lines(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The first ``SHOWN`` discrepancies, one line each, and how many more the reports hold."""
    lines = [
        f"  [{i['chain']}] {i['category']} {i['subject']} {i['what']}: {i['detail']}"
        + (f" (tx {i['txHash']})" if i["txHash"] else "")
        for i in items[:SHOWN]
    ]
    if len(items) > SHOWN:
        lines.append(f"  … and {len(items) - SHOWN} more (every one is in the reports)")
    return lines


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("reconcile", help="match every on-chain fact with our records; JSON, CSV, HTML")
    parser.add_argument("--chains", nargs="+", default=["all"], help="chain names, or all (default)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-block", type=_block, default=None, help="first block (default: the deployment)")
    start.add_argument("--since-last", action="store_true", help="from after the newest finished run's range")
    parser.add_argument(
        "--to-block", type=_block, default=None, help="last block (at most, and by default, the confirmed head)"
    )
    parser.add_argument("--out", type=Path, default=Path(".creditmesh/reports"), help="where the reports go")
    parser.add_argument("--started-by", default=f"cli:{getpass.getuser()}", help="who runs it (stored on the run)")
    parser.set_defaults(func=cmd_reconcile)
