"""Background workers of the API process, started by the app's lifespan when ``CREDITMESH_WORKERS`` names them
(``creditmesh run``/``serve`` enable all; tests opt in): the per-chain indexer (``aggregator.indexer``), the
outbox relay (``aggregator.relay``, loan events to webhooks, one per deployment), the audit log's sealing and
anchoring (``api.audit_jobs``: sealing every ``CREDITMESH_AUDIT_SEAL_SECONDS``, anchoring every
``CREDITMESH_AUDIT_ANCHOR_SECONDS`` with the audit anchor key, on every chain),
the liquidation keeper (``aggregator.servicing.keeper``) and the default job (``aggregator.servicing.defaults``:
past-due buckets, ``markDefault`` by the operator); each worker runs once (per chain) across processes under its
lease, and each is supervised in its process (``supervise``): one that fails is logged and started again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial

from aggregator.event_destinations import Destination, EventDestinations
from aggregator.indexer import ChainIndexer, IndexerSettings
from aggregator.platform import ChainRuntime
from aggregator.relay import OutboxRelay, RelaySettings
from aggregator.servicing.defaults import DefaulterSettings, DefaultJob
from aggregator.servicing.keeper import Keeper, KeeperSettings
from api.audit_jobs import AnchorChain, run_anchoring
from api.bootstrap import chain_registry, load_records, report_unserviced_loans
from api.settings import Settings
from chain.client import ChainClient
from chain.errors import ChainIdMismatch, ConfigurationError
from chain.relay import REVERT_ARTIFACTS
from chain.signers import Role
from chain.transactions import LifecycleSettings, TransactionManager
from chain.waiting import wait_at_most
from compliance.audit_anchor import AnchorContract, AnchorError
from providers.destinations import DestinationGuard, lender_client
from providers.models import FundingState
from providers.registry import ProviderRegistry
from providers.secrets import SecretBox
from store.chain import SqlChainStore
from store.db import Database
from store.relay import SqlRelayStore

log = logging.getLogger(__name__)

WORKERS = ("indexer", "outbox", "audit", "keeper", "defaulter")


def enabled_workers(value: str) -> set[str]:
    """``"all"`` → every worker, ``""``/``"none"`` → none, else the comma-separated names (unknown names refused)."""
    names = {name.strip().lower() for name in value.split(",") if name.strip()}
    if names <= {"none", "0", "false", "off"}:
        return set()
    if names & {"all", "1", "true", "on"}:
        return set(WORKERS)
    unknown = names - set(WORKERS)
    if unknown:
        raise ConfigurationError(f"CREDITMESH_WORKERS names unknown workers {sorted(unknown)}; known: {WORKERS}")
    return names


def indexers(settings: Settings, database: Database, chains: dict[str, ChainRuntime]) -> list[ChainIndexer]:
    config = IndexerSettings(ttl=timedelta(seconds=settings.indexer_lease_seconds))
    return [ChainIndexer(chain.client, chain.record, database, settings=config) for chain in chains.values()]


def outbox_relay(settings: Settings, database: Database) -> OutboxRelay:
    """The relay of loan events, its HTTP client behind the SSRF guard (close ``relay.http`` when done)."""
    guard = DestinationGuard(settings.resolved_outbound_allowed_networks)
    http = lender_client(guard)
    configured = {
        lender.provider_id: Destination(lender.webhook_url, lender.secret)
        for lender in settings.http_lenders
        if lender.webhook_url
    }
    destinations = EventDestinations(SecretBox.from_master_key(bytes.fromhex(settings.pii_master_key)), configured)
    config = RelaySettings(
        ttl=timedelta(seconds=settings.outbox_lease_seconds),
        interval=settings.outbox_poll_seconds,
        first_backoff=min(2.0, settings.outbox_max_backoff_seconds),
        max_backoff=settings.outbox_max_backoff_seconds,
    )
    return OutboxRelay(SqlRelayStore(database), destinations, http, settings=config)


async def relay_events(settings: Settings, database: Database, stop: asyncio.Event) -> None:
    """The outbox relay until ``stop`` is set (lease released, HTTP client closed)."""
    relay = outbox_relay(settings, database)
    try:
        await relay.run(stop)
    finally:
        await relay.http.aclose()


def audit_anchor_chains(chains: dict[str, ChainRuntime]) -> list[AnchorChain]:
    """Every chain with an AuditAnchor deployed and an audit anchor key configured (others are skipped, said once)."""
    found = []
    for chain in chains.values():
        try:
            found.append(AnchorChain(chain.client, AnchorContract.from_record(chain.record), chain.audit_anchor))
        except (AnchorError, ConfigurationError) as err:
            log.warning("audit anchoring skips %s: %s", chain.name, err)
    return found


def keeper_settings(settings: Settings) -> KeeperSettings:
    return KeeperSettings(
        ttl=timedelta(seconds=settings.servicing_lease_seconds), interval=settings.keeper_interval_seconds
    )


def keepers(settings: Settings, database: Database, chains: dict[str, ChainRuntime]) -> list[Keeper]:
    """A keeper for each chain where this process has a keeper account (``CREDITMESH_KEEPER_KEY``)."""
    config = keeper_settings(settings)
    running = []
    for chain in chains.values():
        if Role.KEEPER not in chain.senders:
            log.warning("no keeper on %s: set CREDITMESH_KEEPER_KEY", chain.name)
            continue
        running.append(Keeper(chain.client, chain.record, database, chain.keeper, settings=config))
    return running


def default_jobs(
    settings: Settings,
    database: Database,
    chains: dict[str, ChainRuntime],
    providers: ProviderRegistry | None = None,
) -> list[DefaultJob]:
    """A default job for each chain where this process has the operator's account (``CREDITMESH_OPERATOR_KEY``).
    ``providers``: where the job asks a lender whether it funded a loan before it cancels it as unfunded (None: it
    never cancels one, an operator does)."""
    funding_of = None if providers is None else partial(lender_funding, providers)
    config = DefaulterSettings(
        ttl=timedelta(seconds=settings.servicing_lease_seconds), interval=settings.defaulter_interval_seconds
    )
    running = []
    for chain in chains.values():
        if Role.OPERATOR not in chain.senders:
            log.warning("no default job on %s: set CREDITMESH_OPERATOR_KEY", chain.name)
            continue
        job = DefaultJob(chain.client, chain.record, database, chain.operator, settings=config, funding_of=funding_of)
        running.append(job)
    return running


async def lender_funding(providers: ProviderRegistry, provider_id: str, provider_ref: str) -> FundingState:
    """The lender's own state of its offer ``provider_ref`` (``GET /v1/offers/{ref}``, through its breaker)."""
    return (await providers.get_provider(provider_id).status(provider_ref)).state


#: a failed worker's pauses before it is started again: the first, doubling up to the most
FIRST_RESTART, MOST_RESTART = 1.0, 60.0


async def supervise(
    name: str,
    work: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    first: float = FIRST_RESTART,
    most: float = MOST_RESTART,
) -> None:
    """Run ``work()`` until ``stop`` is set, starting it again when it fails or ends before: a fault is logged at
    error level with its traceback, and the pause before the restart doubles from ``first`` up to ``most`` (back
    to ``first`` after a run of ``most`` seconds or more). An outage is no fault: the workers wait it out
    (``aggregator.servicing.leased``); this catches the rest, so that one bad round does not end a worker for
    good."""
    pause = first
    while not stop.is_set():
        started = time.monotonic()
        try:
            await work()
        except Exception:
            log.exception("background worker %s failed; starting it again in %.1f s", name, pause)
        else:
            if stop.is_set():
                return
            log.error("background worker %s ended by itself; starting it again in %.1f s", name, pause)
        if time.monotonic() - started >= most:
            pause = first  # it ran a good while: a new fault, not the same one again
        await wait_at_most(stop.wait(), pause)
        pause = min(most, pause * 2)


class Workers:
    """The running background workers of one process, each supervised (``supervise``: one per chain for the
    per-chain workers); ``stop()`` ends them and releases their leases."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _start(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(supervise(name, work, self._stop), name=name))

    def start(
        self,
        settings: Settings,
        database: Database,
        chains: dict[str, ChainRuntime],
        providers: ProviderRegistry | None = None,
    ) -> Workers:
        enabled, stop = enabled_workers(settings.workers), self._stop
        if "indexer" in enabled:
            for indexer in indexers(settings, database, chains):
                self._start(f"indexer-{indexer.chain_id}", partial(indexer.run, stop))
        if "outbox" in enabled:
            self._start("outbox-relay", partial(relay_events, settings, database, stop))
        if "audit" in enabled:
            anchors = audit_anchor_chains(chains)
            anchoring = partial(
                run_anchoring,
                database,
                anchors,
                stop,
                interval=settings.audit_anchor_seconds,
                seal_interval=settings.audit_seal_seconds,
            )
            self._start("audit", anchoring)
        if "keeper" in enabled:
            for keeper in keepers(settings, database, chains):
                self._start(f"keeper-{keeper.chain_id}", partial(keeper.run, stop))
        if "defaulter" in enabled:
            for job in default_jobs(settings, database, chains, providers):
                self._start(f"defaulter-{job.chain_id}", partial(job.run, stop))
        return self

    @property
    def running(self) -> list[str]:
        return [task.get_name() for task in self._tasks if not task.done()]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, return_exceptions=True)  # a fault was logged when it happened


async def supervise_all(named: Sequence[tuple[str, Callable[[], Awaitable[None]]]], stop: asyncio.Event) -> None:
    """``supervise`` each of ``named`` concurrently until ``stop`` is set (the one-worker commands)."""
    async with asyncio.TaskGroup() as group:
        for name, work in named:
            group.create_task(supervise(name, work, stop), name=name)


async def index_chains(settings: Settings, chain_names: list[str] | None, stop: asyncio.Event) -> None:
    """``creditmesh index``: the indexers of the configured chains (or of ``chain_names``) in this process alone,
    under the same leases as the API's, until ``stop`` is set."""
    registry = chain_registry(settings)
    configs = [config for config in registry if not chain_names or config.name in chain_names]
    unknown = set(chain_names or ()) - {config.name for config in configs}
    if unknown:
        raise ConfigurationError(f"no chain named {sorted(unknown)} in the chain registry")
    records = load_records(settings.resolved_deployments_dir, registry)
    database = Database(settings.resolved_database_url)
    database.migrate()
    report_unserviced_loans(database, (records[config.name] for config in configs))
    clients: list[ChainClient] = []
    try:
        config_for = IndexerSettings(ttl=timedelta(seconds=settings.indexer_lease_seconds))
        running = []
        for config in configs:
            if records[config.name].chain_id != config.chain_id:
                raise ChainIdMismatch(
                    f"deployments record of {config.name}", config.chain_id, records[config.name].chain_id
                )
            clients.append(await ChainClient(config).connect())
            running.append(ChainIndexer(clients[-1], records[config.name], database, settings=config_for))
        await supervise_all([(f"indexer-{i.chain_id}", partial(i.run, stop)) for i in running], stop)
    finally:
        for client in clients:
            await client.close()
        database.dispose()


async def relay_outbox(settings: Settings, stop: asyncio.Event) -> None:
    """``creditmesh relay``: the outbox relay in this process alone, under the same lease as the API's."""
    database = Database(settings.resolved_database_url)
    database.migrate()
    try:
        await supervise("outbox-relay", partial(relay_events, settings, database, stop), stop)
    finally:
        database.dispose()


async def keep_chains(settings: Settings, chain_names: list[str] | None, stop: asyncio.Event) -> None:
    """``creditmesh keeper``: the liquidation keepers of the configured chains (or of ``chain_names``) in this
    process alone, from the keeper account, under the same leases as the API's, until ``stop`` is set."""
    from api.bootstrap import role_signers

    registry = chain_registry(settings)
    configs = [config for config in registry if not chain_names or config.name in chain_names]
    unknown = set(chain_names or ()) - {config.name for config in configs}
    if unknown:
        raise ConfigurationError(f"no chain named {sorted(unknown)} in the chain registry")
    signer = role_signers(settings).get(Role.KEEPER)
    if signer is None:
        raise ConfigurationError("the keeper needs its account: set CREDITMESH_KEEPER_KEY")
    records = load_records(settings.resolved_deployments_dir, registry)
    database = Database(settings.resolved_database_url)
    database.migrate()
    report_unserviced_loans(database, (records[config.name] for config in configs))
    store = SqlChainStore(database.sessions)
    clients: list[ChainClient] = []
    managers: list[TransactionManager] = []
    try:
        running = []
        for config in configs:
            if records[config.name].chain_id != config.chain_id:
                raise ChainIdMismatch(
                    f"deployments record of {config.name}", config.chain_id, records[config.name].chain_id
                )
            clients.append(await ChainClient(config).connect())
            managers.append(
                await TransactionManager(
                    clients[-1],
                    signer,
                    store,
                    settings=LifecycleSettings.for_chain(clients[-1], claim_after=settings.intent_lease_seconds),
                    revert_artifacts=REVERT_ARTIFACTS,
                ).start()
            )
            running.append(
                Keeper(clients[-1], records[config.name], database, managers[-1], settings=keeper_settings(settings))
            )
        await supervise_all([(f"keeper-{k.chain_id}", partial(k.run, stop)) for k in running], stop)
    finally:
        for manager in managers:
            await manager.close()
        for client in clients:
            await client.close()
        database.dispose()
