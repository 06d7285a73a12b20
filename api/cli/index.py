"""``creditmesh index``: the per-chain indexers on their own, without the API (chain facts and the loan ledger;
several such processes, and API processes with ``CREDITMESH_WORKERS``, share each chain's lease)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from api.cli._common import positive_seconds
from api.settings import Settings


def cmd_index(args: argparse.Namespace) -> None:
    from api.logs import configure_logging
    from api.workers import index_chains

    configure_logging()
    settings = Settings()
    if args.lease_seconds is not None:
        settings = settings.model_copy(update={"indexer_lease_seconds": args.lease_seconds})

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stop.set)
        await index_chains(settings, args.chain or None, stop)

    asyncio.run(main())


def register(commands: argparse._SubParsersAction[Any]) -> None:
    index = commands.add_parser(
        "index", help="index the chains' events into chain facts and the loan ledger until Ctrl-C (one leader a chain)"
    )
    index.add_argument("--chain", action="append", help="a chain's name (repeatable); default: every configured chain")
    index.add_argument(
        "--lease-seconds", type=positive_seconds, default=None, help="the lease's time to live (takeover bound)"
    )
    index.set_defaults(func=cmd_index)
