"""Typed settings from ``CREDITMESH_*`` environment variables, read once at start-up. The defaults run the
platform locally (SQLite in ./.creditmesh/, the three devnets, a simulated lender) and are refused elsewhere."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from api.readiness import READINESS_CACHE_SECONDS
from chain.config import LOCAL_CHAINS, ChainRegistry
from chain.errors import ConfigurationError
from chain.signers import loopback_host, production_guard
from compliance.adverse_action import FTC, LOCAL_CREDITOR, MANIFEST_PLACEHOLDER_CREDITOR, NoticeParties, Party
from compliance.sim import DEFAULT_PORT as IDENTITY_SIM_PORT
from compliance.sim import LOCAL_KYC_SECRET, LOCAL_MLA_SECRET
from providers.destinations import LOOPBACK_NETWORKS, check_https, check_url_shape
from providers.policy import ResiliencePolicy

LOCAL_ADMIN_KEY = "cm_admin_local_devnet_only"
LOCAL_LENDER_SECRET = "sim-lender-local-secret"  # noqa: S105 - idem
LOCAL_PII_MASTER_KEY = "00" * 31 + "01"  # a published local-only key: local PII is test data, refused elsewhere
LOCAL_KYC_WEBHOOK_SECRET = LOCAL_KYC_SECRET  # the simulated identity provider's (compliance.sim)
LOCAL_IDENTITY_SIM_URL = f"http://127.0.0.1:{IDENTITY_SIM_PORT}"
LOCAL_INPUTS_HASH_KEY = "00" * 31 + "02"  # a published local-only key, refused in production
KMS_SCHEME = "kms://"
#: settings holding a role's private key: each is checked by chain.signers.production_guard
ROLE_KEY_FIELDS = (
    "deployer_key",
    "relayer_key",
    "quote_signer_key",
    "risk_signer_key",
    "operator_key",
    "guardian_key",
    "keeper_key",
    "audit_anchor_key",
)


_NEVER_OUTSIDE_LOCAL = [
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10", "0.0.0.0/32", "::/128")
]


def _reaches_host_or_metadata(network: str) -> bool:
    allowed = ipaddress.ip_network(network, strict=False)
    return any(allowed.version == n.version and allowed.overlaps(n) for n in _NEVER_OUTSIDE_LOCAL)


class HttpLenderSetting(BaseModel):
    """An HTTP lender speaking the Provider Quote Protocol, configured at start-up."""

    provider_id: str
    base_url: str
    secret: str
    assets: list[str] = Field(default_factory=lambda: ["USDC"])
    #: the HTTP client's timeout; below the fan-out deadline, like the resilience policy's ``call_timeout_seconds``
    timeout_seconds: float = 1.5
    #: where its loan events go (signed with ``secret``); None: it gets none
    webhook_url: str | None = None
    #: the creditor it lends as, named by the adverse-action notices given for it (12 CFR 1002.9(g)): both or neither
    #: (neither: none on file, refused in production)
    legal_name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=400, description="postal address")

    @field_validator("webhook_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url_shape(value)
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> HttpLenderSetting:
        if (self.legal_name is None) != (self.address is None):
            raise ValueError(f"{self.provider_id}: give both legal_name and address, or neither")
        return self

    @property
    def creditor(self) -> Party | None:
        if self.legal_name is None or self.address is None:
            return None
        return Party(self.legal_name, self.address)


def _default_sim_lenders() -> list[HttpLenderSetting]:
    """The simulated lenders `creditmesh run` starts (providers.sim's default fleet on port 8600)."""
    from providers.sim.fleet import DEFAULT_FLEET, DEFAULT_PORT, http_lender_settings

    return [
        HttpLenderSetting.model_validate(entry)
        for entry in http_lender_settings(f"http://127.0.0.1:{DEFAULT_PORT}", DEFAULT_FLEET)
    ]


def _placeholder_creditor_setting(creditor: Party) -> tuple[str, str] | None:
    """The first creditor setting (``CREDITMESH_CREDITOR_NAME``, ``…_ADDRESS``, ``…_TELEPHONE``) left at the
    deployment manifests' placeholder (``MANIFEST_PLACEHOLDER_CREDITOR``), with its value: an operator who deployed
    the manifest unedited would give borrowers notices naming a company that does not exist. None when none is."""
    for part in ("name", "address", "telephone"):
        value = getattr(creditor, part)
        if value == getattr(MANIFEST_PLACEHOLDER_CREDITOR, part):
            return f"CREDITMESH_CREDITOR_{part.upper()}", value
    return None


#: the oldest a sanctions list (names, addresses) may be in production, days (OFAC publishes changes weekly or more)
PRODUCTION_LIST_MAX_AGE = 31
MIN_SHARED_SECRET = 16  # characters of a secret shared with a provider (an HMAC key)


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value (a lender's secret, a key, a URL with its password) is never printed back
    model_config = SettingsConfigDict(env_prefix="CREDITMESH_", env_nested_delimiter="__", hide_input_in_errors=True)

    environment: Literal["local", "production"] = "local"
    data_dir: Path = Path(".creditmesh")
    database_url: str = ""
    #: reporting reads (reconciliation runs, their discrepancies and reports, decision lists) go here: a replica, or a
    #: read-only role on the primary; "" = the primary (``store.db.Database.read_only``)
    database_readonly_url: str = ""
    redis_url: str | None = None
    chains_file: Path | None = None
    deployments_dir: Path | None = None
    http_lenders: list[HttpLenderSetting] = Field(default_factory=lambda: _default_sim_lenders())
    admin_api_key: str = LOCAL_ADMIN_KEY
    # OAuth2 client credentials (api.oauth): the PEM private key signing access tokens (EC P-256 → ES256, Ed25519 →
    # EdDSA); unset: a published local key in local runs, no tokens issued elsewhere
    jwt_signing_key: str | None = None
    jwt_issuer: str = "creditmesh"
    jwt_audience: str = "creditmesh-api"
    jwt_ttl_seconds: int = Field(default=300, ge=30, le=3_600)
    relayer_key: str | None = None
    quote_signer_key: str | None = None
    risk_signer_key: str | None = None
    # the accounts that send for their contract roles, each through its own transaction manager per chain; unset:
    # the role's devnet account locally (4, 5, 10, 11), no such sender in production (a worker needing it refuses)
    operator_key: str | None = None
    guardian_key: str | None = None
    keeper_key: str | None = None
    audit_anchor_key: str | None = None
    fanout_deadline_seconds: float = Field(default=2.0, gt=0, le=30)
    quote_ttl_seconds: int = Field(default=600, ge=30, le=86_400)
    #: how long an accept's driver holds it without renewing; after a crash another process takes it over then
    accept_lease_seconds: float = Field(default=30.0, gt=0.5, le=600)
    #: seconds a POST /accept waits for confirmation before answering 409 "in progress" (the saga carries on)
    accept_wait_seconds: float = Field(default=120.0, gt=0, le=600)
    #: how long after a loan funded off-chain opens its undelivered funding instruction is sent again; past it the
    #: loan is unfunded (``fund-refused``): cancelled once its lender confirms it, or settled by an admin
    funding_window_seconds: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    #: test hook: the API process SIGKILLs itself at this named point of the accept saga (empty: never)
    test_accept_kill_point: str = ""
    asset_prices_usd: dict[str, Decimal] = Field(
        default_factory=lambda: {"USDC": Decimal(1), "WETH": Decimal(3000)},
        description="the assets the platform lends and takes, and the devnet price feeds' first answers (USD); "
        "quotes value collateral on the CollateralManager's feeds, never on these",
    )
    provider_resilience: ResiliencePolicy = Field(default_factory=ResiliencePolicy)
    provider_policies: dict[str, ResiliencePolicy] = Field(default_factory=dict)
    pii_master_key: str = Field(default=LOCAL_PII_MASTER_KEY, pattern=r"^[0-9a-fA-F]{64}$")
    key_store_url: str = Field(
        default="",
        description="where the subjects' data keys live, apart from the database: a SQLAlchemy URL of their own "
        "database (default: SQLite <data dir>/subject-keys.db, keys wrapped under the PII master key) or "
        "kms://<region> (one AWS KMS key per subject; CREDITMESH_KMS_ENDPOINT_URL for a VPC endpoint or moto)",
    )
    kms_endpoint_url: str | None = None
    inputs_hash_key: str = Field(
        default=LOCAL_INPUTS_HASH_KEY,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="64 hex characters: the platform key of the HMAC-SHA256 inputs hashes over personal data",
    )
    kyc_provider_url: str = Field(
        default=f"{LOCAL_IDENTITY_SIM_URL}/kyc", description="the identity-verification provider's API base URL"
    )
    kyc_webhook_secret: str = Field(
        default=LOCAL_KYC_WEBHOOK_SECRET,
        min_length=MIN_SHARED_SECRET,  # an empty one made every KYC verdict forgeable (an HMAC under an empty key)
        description="shared with the KYC provider: signs our API requests and its webhooks (POST /v1/kyc/webhooks)",
    )
    mla_provider_url: str = Field(default=f"{LOCAL_IDENTITY_SIM_URL}/mla", description="the MLA status service")
    mla_provider_secret: str = Field(default=LOCAL_MLA_SECRET, min_length=MIN_SHARED_SECRET)
    mla_cache_size: int = Field(default=10_000, gt=0, description="MLA statuses cached (per borrower and day)")
    sanctions_dir: Path | None = None
    jurisdictions_dir: Path | None = None
    sanctions_address_list_max_age_days: int = Field(default=365, gt=0)
    sanctions_name_list_max_age_days: int = Field(default=4 * 365, gt=0)
    #: how often each process looks for a newer imported name list (0: only at start-up)
    sanctions_reload_seconds: float = Field(default=5.0, ge=0, le=3_600)
    #: this API process's name in the X-Creditmesh-Process response header ("" = no header); serve --processes sets it
    process_name: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    #: how long /readyz answers from its last probe of the database, Redis and the chains (0: probes again for every
    #: call, though simultaneous calls still share one probe)
    readiness_cache_seconds: float = Field(default=READINESS_CACHE_SECONDS, ge=0, le=60)
    #: how often each process polls the provider registrations' change counter (0: only at start-up)
    providers_reload_seconds: float = Field(default=0.5, ge=0, le=60)
    outbound_allowed_networks: list[str] | None = Field(
        default=None,
        description="networks a lender's base_url may resolve to although loopback, link-local or private "
        "(CIDR list); unset: loopback in local runs (the simulated lenders), none in production",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDR networks of the reverse proxies in front of the API: only a request from one of them has "
        "its X-Forwarded-For read for the client address (velocity, refused webhooks) and its X-Forwarded-Proto for "
        "the scheme of the links the API builds (next pages, redirects); none by default",
    )
    workers: str = Field(
        default="",
        description='background workers this process runs: "all", "none"/"" or names ("indexer", "outbox", '
        '"keeper", "defaulter"); `creditmesh run`/`serve` default to all, tests opt in',
    )
    indexer_lease_seconds: float = Field(default=15.0, gt=0, le=600)
    intent_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="a relay intent's lease: another process takes over a dead process's open transactions after it",
    )
    outbox_lease_seconds: float = Field(default=15.0, gt=0, le=600)
    outbox_poll_seconds: float = Field(default=1.0, gt=0, le=60, description="pause between the relay's rounds")
    outbox_max_backoff_seconds: float = Field(
        default=300.0, gt=0, le=86_400, description="the longest pause between two rounds of a failing delivery"
    )
    audit_anchor_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="how often the audit head is anchored"
    )
    audit_seal_seconds: float = Field(
        default=1.0, gt=0, le=86_400, description="how often new audit entries are sealed (numbered and chained)"
    )
    servicing_lease_seconds: float = Field(default=15.0, gt=0, le=600, description="the keeper's and defaulter's")
    keeper_interval_seconds: float = Field(default=5.0, gt=0, le=3600, description="between health-factor rounds")
    defaulter_interval_seconds: float = Field(default=30.0, gt=0, le=3600, description="between past-due rounds")
    velocity_window_seconds: int = Field(default=3_600, gt=0)
    velocity_per_borrower: int = Field(default=5, gt=0)
    velocity_per_wallet: int = Field(default=5, gt=0)
    velocity_per_ip: int = Field(default=20, gt=0)
    kyc_submissions_per_day: int = Field(
        default=5,
        gt=0,
        description="identity verifications (POST /v1/borrowers/me/kyc) a borrower may submit in 24 hours: each "
        "creates an applicant at the KYC provider, billed per applicant",
    )
    # the parties of the adverse-action notices (12 CFR 1002.9(a)(2)) a refused credit request is given
    creditor_name: str = Field(
        default=LOCAL_CREDITOR.name,
        min_length=1,
        max_length=200,
        description="the platform's legal name: the creditor giving the adverse-action notices (for itself and the "
        "lenders considered); the default says it is not configured",
    )
    creditor_address: str = Field(
        default=LOCAL_CREDITOR.address,
        min_length=1,
        max_length=400,
        description="the platform's postal address, printed on the adverse-action notices",
    )
    creditor_telephone: str = Field(
        default=LOCAL_CREDITOR.telephone or "",
        min_length=1,
        max_length=80,
        description="the platform's telephone number, printed on the adverse-action notices as where to ask for the "
        "statement of specific reasons with its name and address (12 CFR 1002.9(a)(2)(ii))",
    )
    ecoa_agency_name: str = Field(
        default=FTC.name,
        min_length=1,
        max_length=200,
        description="the federal agency that administers ECOA compliance concerning the creditor (Regulation B, "
        "Appendix A), named in the adverse-action notices; default: the Federal Trade Commission",
    )
    ecoa_agency_address: str = Field(default=FTC.address, min_length=1, max_length=400)

    @model_validator(mode="after")
    def _refuse_local_secrets_elsewhere(self) -> Settings:
        if self.environment != "local":
            for field, shipped in (
                ("sanctions_name_list_max_age_days", "2024 name list"),
                ("sanctions_address_list_max_age_days", "2026-08-20 address list"),
            ):
                if field not in self.model_fields_set or getattr(self, field) > PRODUCTION_LIST_MAX_AGE:
                    raise ValueError(
                        f"set CREDITMESH_{field.upper()} (at most {PRODUCTION_LIST_MAX_AGE} days) outside local runs: "
                        f"the local default lets the shipped {shipped} pass; screening then fails closed once the "
                        "newest list is older (creditmesh sanctions import brings both lists up to date)"
                    )
            if self.admin_api_key == LOCAL_ADMIN_KEY:
                raise ValueError("CREDITMESH_ADMIN_API_KEY must be set outside local runs")
            if self.test_accept_kill_point:
                raise ValueError("CREDITMESH_TEST_ACCEPT_KILL_POINT is a test hook: refused outside local runs")
            missing = [n for n in ("relayer_key", "quote_signer_key", "risk_signer_key") if not getattr(self, n)]
            if missing:
                raise ValueError(f"set CREDITMESH_{missing[0].upper()} outside local runs (devnet keys are public)")
            if self.pii_master_key == LOCAL_PII_MASTER_KEY or self.kyc_webhook_secret == LOCAL_KYC_WEBHOOK_SECRET:
                raise ValueError("set CREDITMESH_PII_MASTER_KEY and CREDITMESH_KYC_WEBHOOK_SECRET outside local runs")
            if any(lender.secret == LOCAL_LENDER_SECRET for lender in self.http_lenders):
                raise ValueError("an HTTP lender uses the local simulated lender's secret outside local runs")
            exposed = [n for n in self.resolved_outbound_allowed_networks if _reaches_host_or_metadata(n)]
            if exposed:
                raise ValueError(
                    f"CREDITMESH_OUTBOUND_ALLOWED_NETWORKS {exposed[0]} reaches loopback or link-local addresses "
                    "(this host, the cloud metadata service): refused outside local runs"
                )
            try:
                production_guard(
                    environment=self.environment,
                    role_keys=self.role_keys,
                    chains_file=self.chains_file,
                    chains=self._configured_chains(),
                    admin_api_key=self.admin_api_key,
                )
            except ConfigurationError as err:
                raise ValueError(str(err)) from err
        return self

    @property
    def role_keys(self) -> dict[str, str | None]:
        """Every role key these settings hold (issues adding a role's key add its field to ``ROLE_KEY_FIELDS``)."""
        return {
            name.removesuffix("_key"): getattr(self, name)
            for name in ROLE_KEY_FIELDS
            if name in type(self).model_fields
        }

    def _configured_chains(self) -> list[tuple[str, int, list[str]]]:
        if self.chains_file is None:
            return [(c.name, c.chain_id, [f"http://127.0.0.1:{c.port}"]) for c in LOCAL_CHAINS]
        return [(c.name, c.chain_id, list(c.rpc_urls)) for c in ChainRegistry.from_file(self.chains_file)]

    @field_validator("database_url", "database_readonly_url", "key_store_url")
    @classmethod
    def _database_urls(cls, value: str) -> str:
        """A database URL SQLAlchemy can parse (or "" for the default; ``kms://`` is the key store's other kind)."""
        if value and not value.startswith("kms://"):
            try:
                make_url(value)
            except ArgumentError:
                raise ValueError("not a database URL (e.g. sqlite:///path/to.db, postgresql://user@host/db)") from None
        return value

    @field_validator("outbound_allowed_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for network in value or ():
            ipaddress.ip_network(network, strict=False)
        return value

    @property
    def notice_parties(self) -> NoticeParties:
        """Who the adverse-action notices name (``compliance.adverse_action``)."""
        return NoticeParties(self.creditor_party, Party(self.ecoa_agency_name, self.ecoa_agency_address))

    @property
    def creditor_party(self) -> Party:
        """The platform as the notices name it: it gives them, and is where to ask for a statement of reasons."""
        return Party(self.creditor_name, self.creditor_address, self.creditor_telephone)

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(network, strict=False) for network in self.trusted_proxies]

    @property
    def resolved_outbound_allowed_networks(self) -> list[str]:
        if self.outbound_allowed_networks is not None:
            return self.outbound_allowed_networks
        return list(LOOPBACK_NETWORKS) if self.environment == "local" else []

    @model_validator(mode="after")
    def _refuse_local_identity_providers(self) -> Settings:
        """Production asks real identity providers: never the simulator's URLs, a loopback host or its secrets; and
        its lenders over https:// only."""
        if self.environment != "production":
            return self
        for lender in self.http_lenders:
            for what, url in (("base_url", lender.base_url), ("webhook_url", lender.webhook_url)):
                if url is not None:
                    check_https(f"CREDITMESH_HTTP_LENDERS {lender.provider_id} {what}", url)
            if lender.creditor is None:
                raise ValueError(
                    f"CREDITMESH_HTTP_LENDERS {lender.provider_id}: give its legal_name and address in production: "
                    "every adverse-action notice given for it names them (12 CFR 1002.9(g))"
                )
        for what, url in (("KYC", self.kyc_provider_url), ("MLA", self.mla_provider_url)):
            if url.startswith(LOCAL_IDENTITY_SIM_URL) or loopback_host(urlsplit(url).hostname or ""):
                raise ValueError(f"the {what} provider is the local simulator ({url}); configure the real one")
        if self.mla_provider_secret == LOCAL_MLA_SECRET:
            raise ValueError("set CREDITMESH_MLA_PROVIDER_SECRET in production (the simulator's is public)")
        if self.inputs_hash_key == LOCAL_INPUTS_HASH_KEY:
            raise ValueError("set CREDITMESH_INPUTS_HASH_KEY in production (the local one is public)")
        if (
            LOCAL_CREDITOR.name == self.creditor_name
            or LOCAL_CREDITOR.address == self.creditor_address
            or LOCAL_CREDITOR.telephone == self.creditor_telephone
        ):
            raise ValueError(
                "set CREDITMESH_CREDITOR_NAME, CREDITMESH_CREDITOR_ADDRESS and CREDITMESH_CREDITOR_TELEPHONE in "
                "production: every adverse-action notice names the creditor giving it, where to write and whom to call "
                "for the statement of reasons (12 CFR 1002.9(a)(2))"
            )
        placeholder = _placeholder_creditor_setting(self.creditor_party)
        if placeholder is not None:
            raise ValueError(
                f"{placeholder[0]} is the deployment manifests' placeholder {placeholder[1]!r} "
                "(deploy/kubernetes/configmap.yaml): set your own legal name, postal address and telephone number "
                "there before deploying; every adverse-action notice names them (12 CFR 1002.9(a)(2))"
            )
        if self.resolved_key_store_url == self.resolved_database_url:
            raise ValueError("CREDITMESH_KEY_STORE_URL must not be the platform database: keys live apart from it")
        return self

    @property
    def resolved_key_store_url(self) -> str:
        return self.key_store_url or f"sqlite:///{(self.data_dir / 'subject-keys.db').resolve()}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'creditmesh.db').resolve()}"

    @property
    def resolved_deployments_dir(self) -> Path:
        return self.deployments_dir or self.data_dir / "deployments"
