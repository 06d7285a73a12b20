"""``creditmesh relay``: the outbox relay on its own, without the API (loan events to the providers' and borrowers'
webhooks; such processes and API processes with ``CREDITMESH_WORKERS`` share one lease, one relays at a time)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from api.cli._common import positive_seconds
from api.settings import Settings


def cmd_relay(args: argparse.Namespace) -> None:
    from api.logs import configure_logging
    from api.workers import relay_outbox

    configure_logging()
    settings = Settings()
    if args.lease_seconds is not None:
        settings = settings.model_copy(update={"outbox_lease_seconds": args.lease_seconds})

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stop.set)
        await relay_outbox(settings, stop)

    asyncio.run(main())


def register(commands: argparse._SubParsersAction[Any]) -> None:
    relay = commands.add_parser(
        "relay", help="deliver loan events from the outbox to their webhooks until Ctrl-C (one leader a deployment)"
    )
    relay.add_argument(
        "--lease-seconds", type=positive_seconds, default=None, help="the lease's time to live (takeover bound)"
    )
    relay.set_defaults(func=cmd_relay)
