"""``creditmesh run`` (the whole platform locally: devnets, contracts, simulated lender, API) and ``creditmesh serve``
(the API only)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.cli._common import API_PORT
from api.demo import onboard
from api.settings import Settings
from chain.config import LOCAL_CHAINS
from chain.devnet import Devnet, start_devnet
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account
from compliance.sim import DEFAULT_PORT as IDENTITY_PORT
from contracts.deploy import deploy_to_devnet
from providers.sim.fleet import DEFAULT_PORT, SimLender, http_lender_settings

LENDER_PORT = DEFAULT_PORT  # providers.sim.fleet.DEFAULT_PORT: the settings' default lenders live there


def _serve(settings: Settings, port: int) -> None:
    from api.app import create_app
    from api.logs import configure_logging

    configure_logging()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", log_config=None)


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up within {timeout} s")


def _fleet(path: Path) -> list[SimLender]:
    """A fleet file: a JSON list of SimLender documents (providers.sim.fleet), refused whole if one is invalid."""
    try:
        documents = json.loads(path.read_text())
        if not isinstance(documents, list) or not documents:
            raise ValueError("expected a non-empty JSON list of lenders")
        return [SimLender.model_validate(document) for document in documents]
    except (OSError, ValueError) as err:  # pydantic's ValidationError is a ValueError
        raise SystemExit(f"fleet file {path}: {err}") from err


def cmd_run(args: argparse.Namespace) -> None:
    """Devnets on 8545-8547, the contract set deployed, the simulated lenders (the default fleet, or ``--fleet``),
    the simulated identity providers (KYC and MLA, on 8610), the API; runs until Ctrl-C."""
    fleet = _fleet(args.fleet) if args.fleet else None
    settings = Settings()
    data_dir = settings.data_dir
    # Devnets keep their chains in memory: every run starts fresh chains, so deployments and local data go too.
    shutil.rmtree(settings.resolved_deployments_dir, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{data_dir / 'creditmesh.db'}{suffix}").unlink(missing_ok=True)
    devnets: list[Devnet] = []
    lender: subprocess.Popen[bytes] | None = None
    identity: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    try:
        for chain in LOCAL_CHAINS:
            devnets.append(start_devnet(chain))
            record = deploy_to_devnet(
                chain.name,
                chain.chain_id,
                devnets[-1].rpc_url,
                settings.resolved_deployments_dir / f"{chain.name}.json",
            )
            print(
                f"  {chain.name:15} chain id {chain.chain_id}  {devnets[-1].rpc_url}  "
                f"CreditAggregator {record.address('CreditAggregator')}"
            )
        env = os.environ.copy()
        lender_cmd = [sys.executable, "-m", "providers.sim", "--port", str(LENDER_PORT)]
        if fleet is not None:
            # the fleet's lenders, and the API told to ask exactly them
            lender_cmd += ["--fleet", str(args.fleet)]
            lender_base = f"http://127.0.0.1:{LENDER_PORT}"
            env["CREDITMESH_HTTP_LENDERS"] = json.dumps(http_lender_settings(lender_base, fleet))
        # else the simulated lenders' default fleet (providers.sim.fleet), which the settings' default lenders name
        lender = subprocess.Popen(lender_cmd, env=env)
        _wait_http(f"http://127.0.0.1:{LENDER_PORT}/v1/health")
        # the KYC verdicts come back as signed webhooks to the API (the settings' default provider URLs name it)
        webhook_url = f"http://127.0.0.1:{args.port}/v1/kyc/webhooks"
        identity = subprocess.Popen(
            [sys.executable, "-m", "compliance.sim", "--port", str(IDENTITY_PORT), "--webhook-url", webhook_url],
            env=env,
        )
        _wait_http(f"http://127.0.0.1:{IDENTITY_PORT}/health")
        api = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(args.port)], env=env)
        _wait_http(f"http://127.0.0.1:{args.port}/healthz")
        borrower = devnet_account(DEVNET_BORROWER_INDEXES[0])
        key = onboard(f"http://127.0.0.1:{args.port}", settings.admin_api_key, borrower.address)
        _print_example(args.port, key, borrower.address)
        # Block the signals only now (children started above must keep receiving them), then wait for one.
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)
    finally:
        for process in (api, identity, lender):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
        for devnet in devnets:
            devnet.stop()


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
