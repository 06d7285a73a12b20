"""Builds the platform from settings once at start-up: database (migrated), chains (with their deployment
records), signers, assets, provider adapters and the services. Nothing here runs at import time."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio

from aggregator.accepting import AcceptanceService
from aggregator.assets import AssetRegistry
from aggregator.borrowers import BorrowerFiles, Borrowers
from aggregator.earlier_deployments import UnservicedLoans
from aggregator.errors import AssetListingConflict
from aggregator.platform import SENDING_ROLES, ChainRuntime, connect_chain
from aggregator.quoting import QuotingConfig, QuotingService
from aggregator.risk_gate import spreads_of
from aggregator.sanctions_reviews import SanctionsReviews
from aggregator.token_domains import TokenDomains
from aggregator.valuation import FeedPricer
from api.auth import ensure_bootstrap_admin, lookup
from api.readiness import READINESS_CACHE_SECONDS, SharedProbe
from api.settings import KMS_SCHEME, LOCAL_ADMIN_KEY, Settings
from chain.config import LOCAL_CHAINS, ChainConfig, ChainRegistry
from chain.deployment import DeploymentRecord
from chain.errors import ConfigurationError
from chain.keccak import use_fast_keccak
from chain.signers import LocalSigner, Role, Signer, devnet_signer, production_guard
from compliance import ComplianceService, SanctionsPolicy, SanctionsScreen, load_newest, load_rules
from compliance.identity_http import HttpKycProvider, HttpMlaStatusProvider
from compliance.kms import KmsKeyStore
from compliance.kyc import KycProvider
from compliance.mla import MlaStatusCache
from compliance.pii import KeyProvider, PiiVault
from providers.assembly import build_providers
from providers.destinations import DestinationGuard, LenderClient, lender_client
from providers.registry import ProviderRegistry
from risk.onchain_source import ChainOnchainSource
from risk.redis_clients import async_redis
from risk.shared_state import DegradableVelocityStore, SharedStateHealth
from risk.velocity import InMemoryVelocityStore, RedisVelocityStore, VelocityLimits, VelocityStore
from store.accepts import SqlAcceptStore, SqlScreeningLog
from store.borrowers import SqlBorrowerStore
from store.chain import SqlChainStore
from store.db import Database
from store.keystore import SqlKeyStore
from store.loans import SqlLoanStore
from store.quoting import SqlQuotingStore
from store.sanctions_lists import SqlSanctionsListRepository
from store.sanctions_reviews import SqlSanctionsReviewStore

log = logging.getLogger(__name__)

#: connections of ``/readyz``'s Redis client: a probe is one short write, made at most once per
#: ``CREDITMESH_READINESS_CACHE_SECONDS`` (``Platform.readiness``)
READINESS_REDIS_CONNECTIONS = 2


@dataclass
class Platform:
    settings: Settings
    database: Database
    chains: dict[str, ChainRuntime]
    assets: AssetRegistry
    providers: ProviderRegistry
    quoting: QuotingService
    acceptance: AcceptanceService
    http: httpx.AsyncClient
    borrowers: Borrowers
    kyc: KycProvider
    sanctions_reviews: SanctionsReviews
    mla: MlaStatusCache
    identity_http: httpx.AsyncClient  # the KYC and MLA providers' client, apart from the lenders'
    compliance: ComplianceService
    #: ``/readyz``'s Redis client (None without ``CREDITMESH_REDIS_URL``): a small pool kept, not a connection per probe
    readiness_redis: redis.asyncio.Redis | None = None
    #: the state shared through Redis (velocity limits, providers' breakers and rate limits), for ``/readyz``
    shared_state: tuple[SharedStateHealth, ...] = ()
    #: ``/readyz``'s probe, shared by simultaneous callers and reused for ``CREDITMESH_READINESS_CACHE_SECONDS``
    readiness: SharedProbe[dict[str, Any]] = field(default_factory=lambda: SharedProbe(READINESS_CACHE_SECONDS))
    #: the velocity counters the credit requests' limits share, also counting each borrower's KYC submissions
    velocity: VelocityStore = field(default_factory=InMemoryVelocityStore)
    #: the assets' permit domains per chain, read from the tokens once (``GET /v1/platform``)
    token_domains: TokenDomains = field(default_factory=TokenDomains)
    #: the open loans of earlier deployments of each chain's contracts, not serviced (``GET /health``); None: not read
    unserviced_loans: UnservicedLoans | None = None

    async def close(self) -> None:
        if self.readiness_redis is not None:
            await self.readiness_redis.aclose()
        await self.providers.close()
        self.acceptance.close()
        for chain in self.chains.values():
            await chain.close()
        await self.http.aclose()
        await self.identity_http.aclose()
        self.database.dispose()


def refuse_stored_local_admin_key(settings: Settings, database: Database) -> None:
    """A database once started in local mode still accepts the published local admin key: production refuses to
    start on it (``chain.signers.production_guard``; the settings' own secrets were checked when they were read)."""
    if settings.environment == "production":
        production_guard(
            environment=settings.environment,
            chains_file=settings.chains_file,
            local_admin_key_stored=lookup(database, LOCAL_ADMIN_KEY) is not None,
        )


def chain_registry(settings: Settings) -> ChainRegistry:
    if settings.chains_file is not None:
        return ChainRegistry.from_file(settings.chains_file)
    return ChainRegistry(
        [ChainConfig(name=c.name, chain_id=c.chain_id, rpc_urls=[f"http://127.0.0.1:{c.port}"]) for c in LOCAL_CHAINS]
    )


def _signer(settings: Settings, configured: str | None, role: Role) -> Signer:
    if configured:
        return LocalSigner.from_key(configured)
    if settings.environment != "local":
        raise ConfigurationError(f"no key configured for {role.value}")
    return devnet_signer(role)


def role_signers(settings: Settings) -> dict[Role, Signer]:
    """The signer of each sending role with a key (``CREDITMESH_<ROLE>_KEY``); locally the role's devnet account
    when unset, elsewhere an unset role has no sender (whatever needs it refuses, naming the setting)."""
    signers: dict[Role, Signer] = {}
    for role in SENDING_ROLES:
        configured: str | None = getattr(settings, f"{role.value}_key")
        if configured or settings.environment == "local":
            signers[role] = _signer(settings, configured, role)
    return signers


def _assets(settings: Settings, records: dict[str, DeploymentRecord]) -> AssetRegistry:
    """The assets of the chains' deployment records that have a price, refused when a record does not list its
    tokens' decimals or one symbol's decimals differ between chains (``AssetRegistry.from_listings``)."""
    listings = {name: record.token_listings() for name, record in records.items()}
    unpriced = sorted({symbol for listed in listings.values() for symbol in listed} - set(settings.asset_prices_usd))
    if unpriced:  # not lent nor taken as collateral: "unknown asset" to a borrower, so said once here
        log.warning("listed in the deployments records but not served, no CREDITMESH_ASSET_PRICES_USD price: %s",
                    ", ".join(unpriced))  # fmt: skip
    try:
        return AssetRegistry.from_listings(listings, settings.asset_prices_usd)
    except AssetListingConflict as err:
        raise ConfigurationError(f"the deployments records' tokens cannot be served: {err}") from err


def report_unserviced_loans(database: Database, records: Iterable[DeploymentRecord]) -> UnservicedLoans:
    """At a process's start: one error per chain of ``records`` whose ledger has open loans of an earlier deployment
    of its contracts, which no worker services, and the gauge ``creditmesh_unserviced_loans``
    (``aggregator.earlier_deployments``); said, never refused: the newest deployment is served. The reader, for
    ``GET /health``."""
    unserviced = UnservicedLoans(SqlLoanStore(database).open_loans_of_other_contracts)
    unserviced.report_at_start(records)
    return unserviced


def load_records(directory: Path, registry: ChainRegistry) -> dict[str, DeploymentRecord]:
    records = {}
    for chain in registry:
        path = directory / f"{chain.name}.json"
        if not path.exists():
            raise ConfigurationError(
                f"no deployments record for {chain.name} at {path}: deploy first (`creditmesh run`)"
            )
        records[chain.name] = DeploymentRecord.load(path)
    return records


async def build_platform(settings: Settings) -> Platform:
    use_fast_keccak()  # before the quote path hashes: pysha3, not pycryptodome (chain/keccak.py)
    database = Database(settings.resolved_database_url, settings.database_readonly_url or None)
    database.migrate()
    refuse_stored_local_admin_key(settings, database)
    rotated = ensure_bootstrap_admin(database, settings.admin_api_key)
    if rotated:
        log.warning("CREDITMESH_ADMIN_API_KEY changed: the previous bootstrap admin key is revoked (%s)", rotated)
    registry = chain_registry(settings)
    records = load_records(settings.resolved_deployments_dir, registry)
    assets = _assets(settings, records)  # before any chain is connected: a record it refuses needs a re-run of deploy
    unserviced = report_unserviced_loans(database, records.values())
    relayer = _signer(settings, settings.relayer_key, Role.RELAYER)
    chain_store = SqlChainStore(database.sessions)
    senders = role_signers(settings)
    chains = {
        chain.name: await connect_chain(
            chain, records[chain.name], relayer, chain_store, senders, intent_lease=settings.intent_lease_seconds
        )
        for chain in registry
    }
    # every lender call goes through the SSRF guard, connecting to the address it checked (providers.destinations)
    destinations = DestinationGuard(settings.resolved_outbound_allowed_networks)
    http = lender_client(destinations, max_connections=100)  # no cookies kept: lenders share hosts
    limits = VelocityLimits(
        window_seconds=settings.velocity_window_seconds,
        per_borrower=settings.velocity_per_borrower,
        per_wallet=settings.velocity_per_wallet,
        per_ip=settings.velocity_per_ip,
    )
    quoting_config = QuotingConfig(
        fanout_deadline=settings.fanout_deadline_seconds,
        quote_ttl=timedelta(seconds=settings.quote_ttl_seconds),
        velocity=limits,
        inputs_key=bytes.fromhex(settings.inputs_hash_key),
        notice=settings.notice_parties,
    )
    # a pool registered through the API must lend the token listed for its asset on its chain
    tokens = {
        name: {symbol: assets.get(symbol).addresses.get(name, "") for symbol in assets.symbols()} for name in chains
    }
    # the pools' risk spread from the policy the requests are graded on (not risk's default policy)
    providers = await build_providers(
        settings,
        chains,
        database,
        http,
        settings.redis_url,
        spread_for_grade=spreads_of(quoting_config.policy),
        destinations=destinations,
        tokens=tokens,
    )
    keys = key_store(settings)
    compliance = await asyncio.to_thread(_compliance, settings, database, keys)
    velocity: VelocityStore = (
        DegradableVelocityStore(RedisVelocityStore(async_redis(settings.redis_url)))
        if settings.redis_url
        else InMemoryVelocityStore()
    )
    # no cookies kept either: the KYC and MLA providers may share a host, and one's cookie would reach the other
    identity_http = LenderClient(timeout=httpx.Timeout(5.0), limits=httpx.Limits(max_connections=20))
    kyc = HttpKycProvider(settings.kyc_provider_url, settings.kyc_webhook_secret.encode(), identity_http)
    mla = MlaStatusCache(
        HttpMlaStatusProvider(settings.mla_provider_url, settings.mla_provider_secret.encode(), identity_http),
        capacity=settings.mla_cache_size,
    )
    quoting = QuotingService(
        SqlQuotingStore(database),
        chains,
        assets,
        providers.adapters(),
        quote_signer=_signer(settings, settings.quote_signer_key, Role.QUOTE_SIGNER),
        risk_signer=_signer(settings, settings.risk_signer_key, Role.RISK_SIGNER),
        compliance=compliance,
        velocity=velocity,
        config=quoting_config,
        mla=mla,
        pricer=FeedPricer(chains),
        onchain=ChainOnchainSource(
            {name: runtime.client for name, runtime in chains.items()},
            {name: runtime.record for name, runtime in chains.items()},
            usd_prices={symbol: assets.get(symbol).usd_price for symbol in assets.symbols()},
        ),
    )
    acceptance = AcceptanceService(
        SqlAcceptStore(database),
        chains,
        providers,
        compliance,
        assets,
        loans=SqlLoanStore(database),
        screenings=SqlScreeningLog(database),
        lease=timedelta(seconds=settings.accept_lease_seconds),
        relay_timeout=settings.accept_wait_seconds,
        kill_at=settings.test_accept_kill_point,
        funding_window=timedelta(seconds=settings.funding_window_seconds),
    )
    borrowers = BorrowerFiles(SqlBorrowerStore(database), keys)
    reviews = SanctionsReviews(SqlSanctionsReviewStore(database), borrowers, compliance)
    return Platform(
        settings,
        database,
        chains,
        assets,
        providers,
        quoting,
        acceptance,
        http,
        borrowers,
        kyc,
        reviews,
        mla,
        identity_http,
        compliance,
        async_redis(settings.redis_url, max_connections=READINESS_REDIS_CONNECTIONS) if settings.redis_url else None,
        velocity=velocity,
        unserviced_loans=unserviced,
        readiness=SharedProbe(settings.readiness_cache_seconds),
        shared_state=(
            *providers.shared_state,
            *([velocity.health] if isinstance(velocity, DegradableVelocityStore) else []),
        ),
    )


def key_store(settings: Settings) -> KeyProvider:
    """The subjects' data keys, apart from the platform database: KMS, or a SQL database of their own."""
    url = settings.resolved_key_store_url
    if url.startswith(KMS_SCHEME):
        import boto3  # only production deployments on KMS need it loaded

        region = url.removeprefix(KMS_SCHEME).strip("/") or None
        return KmsKeyStore(boto3.client("kms", region_name=region, endpoint_url=settings.kms_endpoint_url))
    return SqlKeyStore(url, bytes.fromhex(settings.pii_master_key))


def _compliance(settings: Settings, database: Database, keys: KeyProvider | None = None) -> ComplianceService:
    """Sanctions lists (the newest files in the directory, or the newest lists imported into the database when they
    are newer; indexing the names takes about a second) and rules."""
    addresses, names = load_newest(settings.sanctions_dir) if settings.sanctions_dir else load_newest()
    with database.unit_of_work() as uow:
        lists = SqlSanctionsListRepository(uow.session)
        imported, imported_addresses = lists.newest(), lists.newest_addresses()
    if imported is not None and imported.version.published >= names.version.published:
        names = imported
    if imported_addresses is not None and imported_addresses.version.published >= addresses.version.published:
        addresses = imported_addresses
    policy = SanctionsPolicy(
        address_list_max_age=timedelta(days=settings.sanctions_address_list_max_age_days),
        name_list_max_age=timedelta(days=settings.sanctions_name_list_max_age_days),
    )
    rules = load_rules(settings.jurisdictions_dir) if settings.jurisdictions_dir else load_rules()
    return ComplianceService(
        SanctionsScreen(addresses, names, policy),
        rules,
        clock=lambda: datetime.now(UTC),
        inputs_key=bytes.fromhex(settings.inputs_hash_key),
        vault=None if keys is None else PiiVault(keys),  # the screened name sealed under the subject's key
    )


def write_chains_file(path: Path, chains: list[ChainConfig]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([chain.model_dump() for chain in chains], indent=2))
