"""``creditmesh run`` (the whole platform locally: devnets, contracts, simulated lender, API) and ``creditmesh serve``
(the API only)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import uvicorn

from api.cli._common import API_PORT
from api.demo import onboard
from api.local_platform import ServicePorts, local_chains, platform_services, read_fleet
from api.settings import Settings
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account


def _serve(settings: Settings, port: int) -> None:
    from api.app import create_app
    from api.logs import configure_logging

    configure_logging()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", log_config=None)


def cmd_run(args: argparse.Namespace) -> None:
    """Devnets on 8545-8547, the contract set deployed, the simulated lenders (the default fleet, or ``--fleet``),
    the simulated identity providers (KYC and MLA, on 8610), the API; runs until Ctrl-C."""
    if args.fleet is not None:
        read_fleet(args.fleet)  # refused before anything starts
    settings = Settings()
    data_dir = settings.data_dir
    # Devnets keep their chains in memory: every run starts fresh chains, so deployments and local data go too.
    shutil.rmtree(settings.resolved_deployments_dir, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{data_dir / 'creditmesh.db'}{suffix}").unlink(missing_ok=True)
    with local_chains(settings.resolved_deployments_dir) as chains:
        for devnet in chains.devnets:
            aggregator = chains.deployments[devnet.name].address("CreditAggregator")
            print(f"  {devnet.name:15} chain id {devnet.chain_id}  {devnet.rpc_url}  CreditAggregator {aggregator}")
        with platform_services(ServicePorts(api=args.port), fleet_file=args.fleet) as services:
            borrower = devnet_account(DEVNET_BORROWER_INDEXES[0])
            key = onboard(services.api_url, settings.admin_api_key, borrower.address)
            _print_example(args.port, key, borrower.address)
            # Block the signals only now (children started above must keep receiving them), then wait for one.
            stop_signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            signal.sigwait(stop_signals)


def _print_example(port: int, api_key: str, wallet: str) -> None:
    url = f"http://127.0.0.1:{port}"
    print(
        f"""
creditmesh is up: {url}  (OpenAPI: {url}/docs)
Demo borrower {wallet} (devnet account 6; Florida; identity verified by the simulated KYC provider; a credit
profile on file), API key:
  export CM_KEY={api_key}

1. Ask for credit once (1,500 USDC for 30 days against 1 WETH):
  curl -s -X POST {url}/v1/credit-requests -H "X-API-Key: $CM_KEY" -H 'Content-Type: application/json' \\
    -d '{{"amount":"1500.00","asset":"USDC","term_days":30,"collateral":{{"asset":"WETH","amount":"1.0"}}}}' \\
    | tee /tmp/quotes.json | python3 -m json.tool | head -60

2. Accept the best quote (signs a collateral permit and the EIP-712 acceptance with the devnet key, posts them):
  uv run creditmesh wallet accept --account 6 --api-key $CM_KEY \\
    --quote-id $(python3 -c "import json;print(json.load(open('/tmp/quotes.json'))['quotes'][0]['id'])")

3. See the loan and its on-chain record: GET {url}/v1/loans/<loan id> with the same X-API-Key.
Ctrl-C stops everything.""",
        flush=True,
    )


def cmd_serve(args: argparse.Namespace) -> None:
    settings = Settings()
    if "CREDITMESH_WORKERS" not in os.environ:  # the platform runs its background workers unless told otherwise
        settings = settings.model_copy(update={"workers": "all"})
    _serve(settings, args.port)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    run = commands.add_parser("run", help="the whole platform locally: devnets, contracts, simulated lender, API")
    run.add_argument("--port", type=int, default=API_PORT)
    run.add_argument(
        "--fleet",
        type=Path,
        default=None,
        help="simulated lenders from this JSON file (a list of SimLender documents) instead of the default fleet",
    )
    run.set_defaults(func=cmd_run)
    serve = commands.add_parser("serve", help="the API only, configured by CREDITMESH_* variables")
    serve.add_argument("--port", type=int, default=API_PORT)
    serve.set_defaults(func=cmd_serve)
