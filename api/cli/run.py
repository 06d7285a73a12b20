"""``creditmesh run`` (the whole platform locally: devnets, contracts, simulated lenders and identity providers, API;
its state kept across runs) and ``creditmesh reset`` (start over); ``creditmesh serve`` (the API only) is
:mod:`api.cli.serve`."""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.cli._common import API_PORT, local_rpc, tcp_port
from api.demo import onboard
from api.journey import fund_on_devnets, journey
from api.local_platform import ServicePorts, ServicePortTaken, local_chains, platform_services, read_fleet
from api.settings import Settings
from chain.config import LOCAL_CHAINS
from chain.errors import ConfigurationError, DevnetPortTaken
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account

DEMO_KEY_FILE = "demo-borrower.key"
#: held (flock) by the ``creditmesh run`` using the data directory, for as long as it runs; the kernel lets go of it
#: when that process ends, however it ends
RUN_LOCK_FILE = "run.lock"


def cmd_run(args: argparse.Namespace) -> None:
    """Devnets on 8545-8547, the contract set deployed, the simulated lenders (the default fleet, or ``--fleet``),
    the simulated identity providers (KYC and MLA, on 8610), the API; runs until Ctrl-C. The devnets' chains (anvil
    ``--state``), the database and the deployments are kept in the data directory across runs; ``--reset`` (or
    ``creditmesh reset``) starts over."""
    if args.fleet is not None:
        read_fleet(args.fleet)  # refused before anything starts
    settings = Settings()
    with _data_dir_of_this_run(settings.data_dir):
        _start(args, settings)


def _start(args: argparse.Namespace, settings: Settings) -> None:
    state_dir = settings.data_dir / "devnets"
    kept = not args.reset and all((state_dir / f"{chain.name}.json").exists() for chain in LOCAL_CHAINS)
    if not kept:  # a chain without its state: every record of the earlier chains would be wrong, so all start over
        _reset(settings)
    print("creditmesh: " + ("the chains, records and keys of the last run, kept" if kept else "a fresh platform"))
    try:
        _run(args, settings, state_dir)
    except KeyboardInterrupt:  # Ctrl-C before the platform was up (after it, the signal is waited for, not raised)
        print(
            "\ncreditmesh: stopped (Ctrl-C) while starting; what was done is kept, the next run carries on",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(130) from None
    except DevnetPortTaken as err:  # the message, not a traceback: the usual cause is a run still going elsewhere
        _refused(f"{err} (is another `creditmesh run` still running?)", err)
    except ServicePortTaken as err:  # e.g. a development server on 8000, which would answer for the API
        moved = " or run the API on another port (`creditmesh run --port N`)" if err.service == "api" else ""
        _refused(f"{err} (an earlier `creditmesh run` still going, or another server): stop it{moved}", err)
    except ConfigurationError as err:
        if not kept:  # a fresh platform's: starting over again would not help
            raise
        # e.g. a kept chain its deployment records were not made on
        _refused(f"{err}; `creditmesh reset` (make reset) starts over with fresh chains", err)


@contextmanager
def _data_dir_of_this_run(data_dir: Path) -> Iterator[None]:
    """The data directory for this process alone while it runs: a second ``creditmesh run`` or a ``creditmesh
    reset`` on it is refused before it touches anything (a fresh run starts by removing the records, which would
    delete the ones of the run still going under it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / RUN_LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            _refused(f"{data_dir} is in use by a `creditmesh run` still going (pid {holder}); stop it first", err)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def _refused(message: str, err: Exception) -> NoReturn:
    print(f"creditmesh: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1) from err


def _run(args: argparse.Namespace, settings: Settings, state_dir: Path) -> None:
    ports = ServicePorts(api=args.port)
    ports.refuse_taken()  # before the chains start: the simulators' and the API's ports
    with local_chains(
        settings.resolved_deployments_dir, state_dir=state_dir, prices_usd=settings.asset_prices_usd
    ) as chains:
        for devnet in chains.devnets:
            aggregator = chains.deployments[devnet.name].address("CreditAggregator")
            print(f"  {devnet.name:15} chain id {devnet.chain_id}  {devnet.rpc_url}  CreditAggregator {aggregator}")
        with platform_services(ports, fleet_file=args.fleet) as services:
            require_live_admin_key(services.api_url, settings.admin_api_key)  # the journey and demo key need it
            if args.journey:
                _show_journey(services.api_url, settings.admin_api_key)
            borrower = devnet_account(DEVNET_BORROWER_INDEXES[0])
            key = _demo_borrower_key(services.api_url, settings, borrower.address)
            _print_example(args.port, key, borrower.address, settings.admin_api_key)
            # Block the signals only now (children started above must keep receiving them), then wait for one.
            stop_signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            signal.sigwait(stop_signals)


def require_live_admin_key(api_url: str, admin_key: str) -> None:
    """Stop the run with one line saying what to do (exit 1, the services stopped on the way out) when the API does
    not take ``CREDITMESH_ADMIN_API_KEY`` as an admin's: the journey and the demo borrower's key are made with it.
    Before (fixed 2026-11-29) a bootstrap key an admin had revoked stopped the run with a traceback (a 401 of
    ``GET /v1/platform`` in the journey), and only a JSON log line said why."""
    answer = httpx.get(f"{api_url}/v1/api-keys", params={"limit": 1}, headers={"X-API-Key": admin_key}, timeout=30)
    if answer.status_code not in (401, 403):
        answer.raise_for_status()  # anything else is no answer about the key: as any failure of the run
        return
    try:
        detail = str(answer.json().get("detail", ""))
    except ValueError:
        detail = answer.text[:200]
    what = "is not a live API key here" if answer.status_code == 401 else "is not an admin's key"
    _refused(
        f"CREDITMESH_ADMIN_API_KEY {what} (the API answered {answer.status_code}: {detail}); an admin may have "
        "revoked it, and a revoked bootstrap key stays revoked. Set CREDITMESH_ADMIN_API_KEY to a live admin key (one "
        "an admin issued with POST /v1/api-keys), or to a new value, which becomes the bootstrap admin key, and run "
        "again",
        PermissionError(detail),
    )


def _show_journey(api_url: str, admin_key: str) -> None:
    """A borrower's journey end to end, with a new wallet each run (no ETH; the devnets' mock tokens mint it 1 WETH
    and 50 USDC), so the demo borrower below starts fresh and a kept platform shows it again."""
    account: LocalAccount = Account.create()
    print(f"\nA borrower's journey (a new wallet {account.address} without ETH: the platform relays everything):")
    reached: list[str] = []

    def say(line: str) -> None:
        reached.append(" ".join(line.split()))
        print(f"  {line}", flush=True)

    try:
        fund_on_devnets(api_url, admin_key, local_rpc, account.address)
        key = onboard(api_url, admin_key, account.address)
        journey(api_url, key, account, local_rpc, say)
    except KeyboardInterrupt:
        # the wallet's key lived in this process alone: what it holds on the kept chains stays there, unreachable
        after = f"after step {reached[-1]!r}" if reached else "before its first step"
        print(
            f"\ncreditmesh: the journey was stopped {after}. Its wallet {account.address} (a throwaway: its key was "
            "not kept) is left with what it holds on these devnets, a loan it opened too, and a request, accept or "
            "repayment under way may still complete; the next run's journey uses a new wallet.",
            file=sys.stderr,
            flush=True,
        )
        raise


def _local_files(settings: Settings) -> list[Path]:
    """What a local run keeps in the data directory: the devnets' chains, the deployments, the SQLite databases (the
    platform's unless ``CREDITMESH_DATABASE_URL`` names another, the subjects' keys) and the demo borrower's key."""
    data = settings.data_dir
    files = [data / "devnets", settings.resolved_deployments_dir, data / DEMO_KEY_FILE]
    databases = [
        Path(url.removeprefix("sqlite:///"))
        for url in (settings.resolved_database_url, settings.resolved_key_store_url)
        if url.startswith("sqlite:///")
    ]
    return files + [Path(f"{db}{suffix}") for db in databases for suffix in ("", "-wal", "-shm")]


def _reset(settings: Settings) -> None:
    """Remove a local run's state; refused, before anything is removed, outside a local run or for a file outside the
    data directory (``CREDITMESH_DATABASE_URL``, ``…_DEPLOYMENTS_DIR`` or ``…_KEY_STORE_URL`` naming one elsewhere:
    a production deployment's records, or the subjects' keys without which their sealed data never opens again)."""
    if settings.environment != "local":
        raise SystemExit(
            "creditmesh: a local run's state is removed only in a local run; refused with "
            f"CREDITMESH_ENVIRONMENT={settings.environment} (nothing removed)"
        )
    data = settings.data_dir.resolve()
    outside = [path for path in _local_files(settings) if not path.resolve().is_relative_to(data) and path.exists()]
    if outside:
        raise SystemExit(
            f"creditmesh: refused to remove what lies outside the data directory {settings.data_dir}: "
            f"{', '.join(str(path) for path in outside)} (remove it yourself, or point its CREDITMESH_* variable into "
            "the data directory; nothing removed)"
        )
    for path in _local_files(settings):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def cmd_reset(args: argparse.Namespace) -> None:
    settings = Settings()
    with _data_dir_of_this_run(settings.data_dir):
        _reset(settings)
    print(f"creditmesh: local state removed from {settings.data_dir} (chains, deployments, databases, demo key)")


def _demo_borrower_key(api_url: str, settings: Settings, wallet: str) -> str:
    """The demo borrower's API key: the one of the last run when it still works, else a new one (registering the
    borrower, or, when it is registered already, issuing its account a new key)."""
    path = settings.data_dir / DEMO_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if httpx.get(f"{api_url}/v1/borrowers/me", headers={"X-API-Key": key}, timeout=30).status_code == 200:
            return key
    try:
        key = onboard(api_url, settings.admin_api_key, wallet)
    except RuntimeError:  # registered in an earlier run whose key file is gone: a new key for the same account
        key = _new_borrower_key(api_url, settings.admin_api_key, wallet, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _new_borrower_key(api_url: str, admin_key: str, wallet: str, settings: Settings) -> str:
    from sqlalchemy import select

    from store.api import BorrowerRow
    from store.db import Database

    database = Database(settings.resolved_database_url)
    try:
        with database.unit_of_work() as uow:
            borrower_id = uow.session.scalar(select(BorrowerRow.id).where(BorrowerRow.wallet_address == wallet))
    finally:
        database.dispose()
    if borrower_id is None:
        raise SystemExit(f"the demo borrower {wallet} could not be registered")
    issued = httpx.post(
        f"{api_url}/v1/api-keys",
        headers={"X-API-Key": admin_key},
        json={"role": "borrower", "subject_id": borrower_id, "label": "demo borrower (creditmesh run)"},
        timeout=30,
    )
    issued.raise_for_status()
    key: str = issued.json()["key"]
    return key


def _print_example(port: int, api_key: str, wallet: str, admin_key: str) -> None:
    """How to use the running platform; the wallet commands name the API's URL when it is not their default port (they
    went to port 8000 after ``run --port N``: to nothing, or to another server there)."""
    url = f"http://127.0.0.1:{port}"
    at = "" if port == API_PORT else f" --api-url {url}"
    print(
        f"""
creditmesh is up: {url}  (OpenAPI: {url}/docs)
Admin API key (CREDITMESH_ADMIN_API_KEY; it issues every other key at {url}/v1/api-keys):
  export CM_ADMIN_KEY={admin_key}
Demo borrower {wallet} (devnet account 6; Florida; identity verified by the simulated KYC provider; a credit
profile on file), API key:
  export CM_KEY={api_key}

1. Ask for credit once (1,500 USDC for 30 days against 1 WETH):
  curl -s -X POST {url}/v1/credit-requests -H "X-API-Key: $CM_KEY" -H 'Content-Type: application/json' \\
    -d '{{"amount":"1500.00","asset":"USDC","term_days":30,"collateral":{{"asset":"WETH","amount":"1.0"}}}}' \\
    | tee /tmp/quotes.json | python3 -m json.tool | head -60

2. Accept the best quote (signs a collateral permit and the EIP-712 acceptance with the devnet key, posts them):
  uv run creditmesh wallet accept --account 6 --api-key $CM_KEY{at} \\
    --quote-id $(python3 -c "import json;print(json.load(open('/tmp/quotes.json'))['quotes'][0]['id'])")

3. See the loan and its on-chain record: GET {url}/v1/loans/<loan id> with the same X-API-Key.

4. Repay part, then everything (signs a Repayment and a USDC permit; the platform relays, no gas):
  uv run creditmesh wallet repay --account 6 --api-key $CM_KEY{at} --loan-id <loan id> --amount 100.00
  uv run creditmesh wallet repay --account 6 --api-key $CM_KEY{at} --loan-id <loan id> --amount max
Ctrl-C stops everything; the next `make run` carries on with these chains, loans and keys (`make reset` starts
over).""",
        flush=True,
    )


def register(commands: argparse._SubParsersAction[Any]) -> None:
    run = commands.add_parser(
        "run", help="the whole platform locally: devnets, contracts, simulated lenders and identity providers, API"
    )
    run.add_argument("--port", type=tcp_port, default=API_PORT)
    run.add_argument(
        "--fleet",
        type=Path,
        default=None,
        help="simulated lenders from this JSON file (a list of SimLender documents) instead of the default fleet",
    )
    run.add_argument("--reset", action="store_true", help="start over: forget the last run's chains, records, keys")
    run.add_argument(
        "--no-journey",
        dest="journey",
        action="store_false",
        help="skip the borrower's journey (request, accept, repay, closed, collateral back) shown at start-up",
    )
    run.set_defaults(func=cmd_run)
    reset = commands.add_parser("reset", help="forget the local platform's chains, records and keys (make reset)")
    reset.set_defaults(func=cmd_reset)
