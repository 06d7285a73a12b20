"""How ``creditmesh admin`` reaches its chains: its settings (``CREDITMESH_*``), the chains of ``--chains`` from the
chains file, and each chain connected with its deployments record — refused before anything is read or sent unless
the record is of the chain id the chains file names and the RPC answers and serves that chain id — with the pools
registered after the deployment joined to it; in production, no devnet chain id or loopback RPC."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict
from web3 import Web3
from web3.exceptions import Web3Exception

from api.cli._common import local_rpc
from chain.config import LOCAL_CHAINS, ChainConfig, ChainRegistry
from chain.deployment import DeploymentRecord
from chain.errors import ChainError, ChainIdMismatch, ConfigurationError, RpcUnavailable
from chain.signers import production_guard as guard
from contracts.governance.pools import with_registered_pools
from contracts.governance.service import Governance, GovernedChain
from store.db import Database


class AdminSettings(BaseSettings):
    """What ``creditmesh admin`` reads from ``CREDITMESH_*`` (the API's secrets are not needed to govern): where the
    chains, their deployments records and the proposals database are; the guardian's key."""

    # hide_input_in_errors: a refused value (a key, a URL with its password) is never printed back
    model_config = SettingsConfigDict(env_prefix="CREDITMESH_", extra="ignore", hide_input_in_errors=True)

    environment: Literal["local", "production"] = "local"  # as the API's: "Production" or "prod" is no local run
    data_dir: Path = Path(".creditmesh")
    database_url: str = ""
    chains_file: Path | None = None
    deployments_dir: Path | None = None
    guardian_key: str | None = None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'creditmesh.db').resolve()}"

    @property
    def resolved_deployments_dir(self) -> Path:
        return self.deployments_dir or self.data_dir / "deployments"

    def chains(self) -> list[ChainConfig]:
        """The chains file's chains, or the three devnets on their ``make run`` ports."""
        if self.chains_file is not None:
            return list(ChainRegistry.from_file(self.chains_file))
        return [ChainConfig(name=c.name, chain_id=c.chain_id, rpc_urls=[local_rpc(c.name)]) for c in LOCAL_CHAINS]


def chosen_chains(args: argparse.Namespace, settings: AdminSettings) -> list[ChainConfig]:
    registry = settings.chains()
    if args.chains == "all":
        return registry
    wanted = args.chains.split(",")
    unknown = sorted(set(wanted) - {chain.name for chain in registry})
    if unknown:
        raise SystemExit(f"unknown chain(s) {', '.join(unknown)}: {', '.join(c.name for c in registry)}")
    return [chain for chain in registry if chain.name in wanted]


def admin_settings(args: argparse.Namespace) -> AdminSettings:
    overrides: dict[str, Any] = {}
    if args.chains_file is not None:
        overrides["chains_file"] = args.chains_file
    if args.deployments_dir is not None:
        overrides["deployments_dir"] = args.deployments_dir
    if args.database_url is not None:
        overrides["database_url"] = args.database_url
    return AdminSettings(**overrides)


@contextmanager
def governing(args: argparse.Namespace) -> Iterator[Governance]:
    """Every chain of ``--chains``, refused before anything is read or sent if one is not as configured."""
    connected = connect_all(args)
    for chain in connected.values():
        if isinstance(chain, ChainError):
            raise chain
    with opened(args, connected) as governance:
        yield governance


def connect_all(args: argparse.Namespace) -> dict[str, GovernedChain | ChainError]:
    """Each chain of ``--chains``, in the chains file's order: as ``connect`` accepted it, or why it refused it."""
    settings = admin_settings(args)
    configs = chosen_chains(args, settings)
    production_guard_chains(settings, configs)
    connected: dict[str, GovernedChain | ChainError] = {}
    for config in configs:
        try:
            connected[config.name] = connect(config, settings.resolved_deployments_dir / f"{config.name}.json")
        except ChainError as err:
            connected[config.name] = err
    return connected


@contextmanager
def opened(args: argparse.Namespace, connected: dict[str, GovernedChain | ChainError]) -> Iterator[Governance]:
    """Governance of the chains ``connect`` accepted, recording in the admin database."""
    chains = [chain for chain in connected.values() if isinstance(chain, GovernedChain)]
    database = Database(admin_settings(args).resolved_database_url)
    database.migrate()
    try:
        with Governance(chains, database) as governance:
            yield governance
    finally:
        database.dispose()


def connect(config: ChainConfig, path: Path) -> GovernedChain:
    """``config``'s chain with its deployments record, refused before anything is read or sent unless the record is
    of the chain id the chains file names and the RPC serves that chain (ChainIdMismatch: an RPC URL of another
    chain would act there and record it under this chain's name)."""
    if not path.exists():
        raise ConfigurationError(f"no deployments record for {config.name} at {path}: deploy first")
    record = DeploymentRecord.load(path)
    if record.chain_id != config.chain_id:
        raise ConfigurationError(
            f"the deployments record {path} is of chain id {record.chain_id}, the chains file's {config.name} "
            f"of {config.chain_id}"
        )
    url = config.rpc_urls[0]
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    try:
        actual = w3.eth.chain_id
    except (OSError, Web3Exception) as err:  # requests' errors are OSErrors
        raise RpcUnavailable(f"{config.name}: RPC {url} does not answer ({type(err).__name__})") from err
    if actual != config.chain_id:
        raise ChainIdMismatch(f"{url} (given for {config.name})", config.chain_id, actual)
    try:
        record = with_registered_pools(w3, record)  # pools registered after the deployment: governed too
    except (OSError, Web3Exception, ValueError) as err:  # never a refusal: a pause must reach the recorded contracts
        print(
            f"warning: {config.name}: pools registered after the deployment not read ({type(err).__name__}: {err}); "
            "governing the recorded contracts only",
            file=sys.stderr,
        )
    return GovernedChain(config.name, w3, record)


def production_guard_chains(settings: AdminSettings, configs: list[ChainConfig]) -> None:
    """Every admin command, in production: a chains file, no devnet chain id or loopback RPC (issue 20's guard)."""
    chains = [(c.name, c.chain_id, c.rpc_urls) for c in configs]
    guard(environment=settings.environment, chains_file=settings.chains_file, chains=chains)
