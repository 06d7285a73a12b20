"""``creditmesh keeper``: the liquidation keepers on their own, without the API (several such processes, and API
processes with ``CREDITMESH_WORKERS``, share each chain's keeper lease: one liquidates, the others wait)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from api.cli._common import positive_seconds
from api.settings import Settings


def cmd_keeper(args: argparse.Namespace) -> None:
    from api.logs import configure_logging
    from api.workers import keep_chains

    configure_logging()
    updates: dict[str, float] = {}
    if args.lease_seconds is not None:
        updates["servicing_lease_seconds"] = args.lease_seconds
    if args.interval is not None:
        updates["keeper_interval_seconds"] = args.interval
    settings = Settings().model_copy(update=updates)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stop.set)
        await keep_chains(settings, args.chain or None, stop)

    asyncio.run(main())


def register(commands: argparse._SubParsersAction[Any]) -> None:
    keeper = commands.add_parser(
        "keeper",
        help="liquidate unhealthy loans on live feed prices from the keeper account until Ctrl-C (one leader a chain)",
    )
    keeper.add_argument("--chain", action="append", help="a chain's name (repeatable); default: every configured chain")
    keeper.add_argument(
        "--lease-seconds", type=positive_seconds, default=None, help="the lease's time to live (takeover bound)"
    )
    keeper.add_argument("--interval", type=positive_seconds, default=None, help="seconds between health-factor rounds")
    keeper.set_defaults(func=cmd_keeper)
