"""The contract set's recipe, per profile, run on ``chain/``'s generic deployment machinery.

Order: (devnet) mock tokens and price feeds → Timelock → CreditScoringOracle → CollateralManager →
CreditAggregator → AuditAnchor (``ANCHOR_ROLE``: the audit anchor key) → one LendingPool per pool asset,
registered with the aggregator → wiring (aggregator, price feeds, collateral parameters, relayer, signer, operator
and guardian roles, settlement addresses per provider) → (devnet) seed pool liquidity and fund the devnet borrowers
and the keeper (account 10: minted USDC, approving the CollateralManager from its own key) → hand every contract's
admin role to the Timelock and renounce the deployer's. Every step is recorded, so a re-run on the same chain skips
what is done.

Profiles: ``devnet`` deploys mocks (6- and 18-decimal tokens, Chainlink-style feeds WETH/USD 3,000 and USDC/USD 1
with 8 decimals, and on a devnet its configuration marks ``layer2`` — ``arbitrum-local`` — a sequencer-uptime feed
reporting the sequencer up since long before the grace period) and funds local accounts, with a timelock delay of
seconds; ``production`` deploys no mocks, takes token and feed addresses from its parameters (a per-chain config
file), requires a sequencer-uptime feed on a chain the configuration marks as an L2, gives its pools a shares
decimals offset (OZ ERC-4626's virtual shares, against a first depositor's donation) and uses a 48-hour delay.

After deployment the deployer holds no role: parameters, unpausing and signer/operator rotation go through the
Timelock (proposer and canceller: ``RoleAddresses.admin``, a Safe — on devnets one deployed here, owners devnet
accounts 12-14, 2 of 3 — plus ``RoleAddresses.extra_proposers``, on devnets the deployer, so that contract tests can
govern directly; executor: anyone once the delay has passed). ``verify_deployment`` checks that the runtime code at
every recorded address is the compiled artifact's (immutables masked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import Web3

from chain.deployment import TOKENS_PARAMETER, Deployer, DeploymentRecord, TokenListing
from chain.safe import deploy_safe
from chain.signers import DEVNET_BORROWER_INDEXES, Role, Signer, devnet_account, devnet_signer
from chain.verification import CodeCheck, verify_record
from contracts.deploy_config import DEVNET_CONFIG, ChainDeployConfig, load_deploy_config
from contracts.deploy_tokens import list_tokens


class Profile(StrEnum):
    DEVNET = "devnet"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class TokenSpec:
    key: str
    name: str
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class RateModel:
    """The pool's utilization-kinked model, basis points."""

    base_bps: int = 200
    slope1_bps: int = 800
    slope2_bps: int = 6_000
    optimal_utilization_bps: int = 8_000


@dataclass(frozen=True, slots=True)
class CollateralParameters:
    """A collateral asset's risk parameters (basis points) and supply cap (whole tokens)."""

    ltv_bps: int = 8_000
    liquidation_threshold_bps: int = 8_250
    liquidation_bonus_bps: int = 500
    supply_cap: int = 1_000_000


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A USD price feed: Chainlink style, 8 decimals; ``heartbeat`` in seconds."""

    asset: str
    answer: int
    heartbeat: int


@dataclass(frozen=True, slots=True)
class RoleAddresses:
    admin: ChecksumAddress  # the Timelock's proposer and canceller: a Safe
    relayer: ChecksumAddress
    quote_signer: ChecksumAddress
    risk_signer: ChecksumAddress
    operator: ChecksumAddress
    guardian: ChecksumAddress
    audit_anchor: ChecksumAddress  # ANCHOR_ROLE on the AuditAnchor: anchors the audit log's head
    extra_proposers: tuple[ChecksumAddress, ...] = ()  # devnet: the deployer too
    keeper: ChecksumAddress | None = None  # liquidates; holds no role (liquidate is open to anyone)


@dataclass(frozen=True, slots=True)
class DevnetFunding:
    """Devnet seeding, in whole tokens: pool liquidity deposited by the deployer, balances for borrowers."""

    pool_liquidity: int = 1_000_000
    borrowers: tuple[ChecksumAddress, ...] = ()
    borrower_balances: dict[str, int] = field(default_factory=lambda: {"WETH": 100, "USDC": 10_000})
    # the keeper's signer (devnet account 10): minted the pool assets and approving the CollateralManager for them
    keeper: Signer | None = None
    keeper_balance: int = 1_000_000


DEVNET_TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec("USDC", "Devnet USD Coin", "USDC", 6),
    TokenSpec("WETH", "Devnet Wrapped Ether", "WETH", 18),
)
POOL_ASSETS: tuple[str, ...] = ("USDC",)
COLLATERAL_ASSETS: dict[str, CollateralParameters] = {"WETH": CollateralParameters()}
DEVNET_FEEDS: tuple[FeedSpec, ...] = (
    FeedSpec("WETH", 3_000 * 10**8, 3_600),
    FeedSpec("USDC", 1 * 10**8, 86_400),
)
FEED_DECIMALS = 8
DEFAULT_GRACE_PERIOD_SECONDS = 7 * 86_400
DEFAULT_RESERVE_FACTOR_BPS = 1_000
# The longest term a new pool funds (LendingPool.DEFAULT_MAX_TERM; governance changes it with setMaxTerm): the
# platform quotes terms up to 365 days.
POOL_MAX_TERM_SECONDS = 365 * 86_400
# Extra decimals of pool shares over the asset: 6 on production pools (donation griefing costs 10^6 times the
# griefer's loss), none on devnets (share amounts equal asset amounts, as the tests and examples read them).
SHARES_DECIMALS_OFFSET: dict[str, int] = {"devnet": 0, "production": 6}
# Chainlink's recommended grace period after an L2 sequencer comes back up, seconds.
SEQUENCER_GRACE_PERIOD_SECONDS = 3_600
# Aave v3.3's MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD and MIN_LEFTOVER_BASE, USD with 8 decimals.
FULL_CLOSE_VALUE = 2_000 * 10**8
MIN_LEFTOVER_VALUE = 1_000 * 10**8
TIMELOCK_DELAY_SECONDS: dict[str, int] = {"devnet": 2, "production": 48 * 3_600}
ZERO = "0x0000000000000000000000000000000000000000"
DEFAULT_ADMIN_ROLE = b"\x00" * 32

AGGREGATOR_ROLE = keccak(text="AGGREGATOR_ROLE")
QUOTE_SIGNER_ROLE = keccak(text="QUOTE_SIGNER_ROLE")
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
ANCHOR_ROLE = keccak(text="ANCHOR_ROLE")
SAFE_KEY = "Safe"  # the Timelock's proposer in the deployments record
GOVERNED: tuple[str, ...] = ("CreditScoringOracle", "CollateralManager", "CreditAggregator")
AUDIT_ANCHOR_KEY = "AuditAnchor"


def feed_key(asset: str) -> str:
    return f"PriceFeed:{asset}"


def pool_key(asset: str) -> str:
    return f"LendingPool:{asset}"


def deploy_contract_set(
    deployer: Deployer,
    profile: Profile,
    roles: RoleAddresses,
    *,
    rate_model: RateModel = RateModel(),
    funding: DevnetFunding | None = None,
    token_addresses: dict[str, ChecksumAddress] | None = None,
    token_decimals: Mapping[str, int] | None = None,
    feed_addresses: dict[str, tuple[ChecksumAddress, int]] | None = None,
    grace_period: int = DEFAULT_GRACE_PERIOD_SECONDS,
    timelock_delay: int | None = None,
    layer2: bool = False,
    sequencer_feed: ChecksumAddress | None = None,
    settlement_addresses: dict[str, ChecksumAddress] | None = None,
    feed_answers_usd: Mapping[str, Decimal] | None = None,
) -> DeploymentRecord:
    """Deploy (or finish deploying) the contract set on ``deployer``'s chain and return its record.

    ``token_addresses`` (production): the platform's name for a token → its address; each is listed in the record's
    ``tokens`` with the symbol and decimals read from chain, refused when they differ from ``token_decimals`` (the
    decimals the configuration expects of a token, where it says). ``feed_addresses`` (production): asset key →
    (USD feed address, heartbeat seconds). ``layer2``: the chain is an L2 (its configuration says so), whose prices
    are used only while ``sequencer_feed`` (Chainlink's L2 sequencer-uptime feed; required in production, a mock on
    devnets) reports the sequencer up past the grace period. ``settlement_addresses``: provider id (text, hashed to
    the on-chain bytes32) → the account a liquidator of a loan that provider funded off-chain pays.
    ``feed_answers_usd`` (devnet): the mock feeds' first answers by asset, USD (the platform's
    ``CREDITMESH_ASSET_PRICES_USD``); ``DEVNET_FEEDS``' otherwise."""
    record = deployer.record
    if profile is Profile.PRODUCTION:  # refused before anything is read or sent
        _refuse_incomplete(token_addresses or {}, feed_addresses or {}, layer2, sequencer_feed)
    record.profile = profile.value
    tokens = _tokens(deployer, profile, token_addresses or {}, token_decimals or {})
    feeds = _feeds(deployer, profile, feed_addresses or {}, feed_answers_usd or {})
    sequencer = _sequencer_feed(deployer, profile, sequencer_feed) if layer2 else None
    delay = TIMELOCK_DELAY_SECONDS[profile.value] if timelock_delay is None else timelock_delay
    me = deployer.signer.address
    timelock = _deploy_timelock(deployer, delay, (roles.admin, *roles.extra_proposers))
    oracle = deployer.deploy("CreditScoringOracle", "CreditScoringOracle", me, roles.risk_signer)
    manager = deployer.deploy("CollateralManager", "CollateralManager", me, FULL_CLOSE_VALUE, MIN_LEFTOVER_VALUE)
    aggregator = deployer.deploy("CreditAggregator", "CreditAggregator", me, manager, oracle, grace_period)
    deployer.deploy(AUDIT_ANCHOR_KEY, "AuditAnchor", me, roles.audit_anchor)
    for asset in POOL_ASSETS:
        pool = deployer.deploy(
            pool_key(asset),
            "LendingPool",
            tokens[asset].address,
            f"creditmesh {asset} pool",
            f"cm{asset}",
            me,
            aggregator,
            rate_model.base_bps,
            rate_model.slope1_bps,
            rate_model.slope2_bps,
            rate_model.optimal_utilization_bps,
            DEFAULT_RESERVE_FACTOR_BPS,
            SHARES_DECIMALS_OFFSET[profile.value],
        )
        deployer.step(f"grant-guardian-pool-{asset}", pool_key(asset), "grantRole", GUARDIAN_ROLE, roles.guardian)
        deployer.step(f"register-pool-{asset}", "CreditAggregator", "registerPool", pool)
    deployer.step("manager-aggregator", "CollateralManager", "setCreditAggregator", aggregator)
    for asset, (feed, heartbeat) in feeds.items():
        deployer.step(
            f"price-feed-{asset}", "CollateralManager", "setPriceFeed", tokens[asset].address, feed, heartbeat
        )
    if sequencer is not None:
        deployer.step(
            "sequencer-feed", "CollateralManager", "setSequencerFeed", sequencer, SEQUENCER_GRACE_PERIOD_SECONDS
        )
        record.parameters["sequencerFeed"] = {
            "address": sequencer,
            "gracePeriodSeconds": SEQUENCER_GRACE_PERIOD_SECONDS,
        }
    for asset, params in COLLATERAL_ASSETS.items():
        cap = params.supply_cap * 10 ** tokens[asset].decimals
        deployer.step(
            f"collateral-{asset}",
            "CollateralManager",
            "setCollateralParameters",
            tokens[asset].address,
            params.ltv_bps,
            params.liquidation_threshold_bps,
            params.liquidation_bonus_bps,
            cap,
        )
    deployer.step("grant-guardian-manager", "CollateralManager", "grantRole", GUARDIAN_ROLE, roles.guardian)
    deployer.step("grant-quote-signer", "CreditAggregator", "grantRole", QUOTE_SIGNER_ROLE, roles.quote_signer)
    deployer.step("grant-relayer", "CreditAggregator", "grantRole", RELAYER_ROLE, roles.relayer)
    deployer.step("grant-operator", "CreditAggregator", "grantRole", OPERATOR_ROLE, roles.operator)
    deployer.step("grant-guardian", "CreditAggregator", "grantRole", GUARDIAN_ROLE, roles.guardian)
    for provider, account in sorted((settlement_addresses or {}).items()):
        provider_id = keccak(text=provider)
        deployer.step(f"settlement-{provider}", "CreditAggregator", "setSettlementAddress", provider_id, account)
        record.parameters.setdefault("settlementAddresses", {})[provider] = account
    if roles.keeper is not None:
        record.parameters["keeper"] = roles.keeper
    record.parameters["gracePeriodSeconds"] = grace_period
    record.parameters["timelockDelaySeconds"] = delay
    record.parameters["reserveFactorBps"] = DEFAULT_RESERVE_FACTOR_BPS
    record.parameters["poolMaxTermSeconds"] = POOL_MAX_TERM_SECONDS
    record.parameters["sharesDecimalsOffset"] = SHARES_DECIMALS_OFFSET[profile.value]
    record.parameters["liquidation"] = {
        "fullCloseValueUsd8": FULL_CLOSE_VALUE,
        "minLeftoverValueUsd8": MIN_LEFTOVER_VALUE,
    }
    record.parameters["collateral"] = {
        asset: {
            "ltvBps": params.ltv_bps,
            "liquidationThresholdBps": params.liquidation_threshold_bps,
            "liquidationBonusBps": params.liquidation_bonus_bps,
            "supplyCapWhole": params.supply_cap,
        }
        for asset, params in COLLATERAL_ASSETS.items()
    }
    record.parameters["priceFeeds"] = {
        asset: {"decimals": FEED_DECIMALS, "heartbeat": hb} for asset, (_, hb) in feeds.items()
    }
    record.parameters["rateModel"] = {
        "baseBps": rate_model.base_bps,
        "slope1Bps": rate_model.slope1_bps,
        "slope2Bps": rate_model.slope2_bps,
        "optimalUtilizationBps": rate_model.optimal_utilization_bps,
    }
    if profile is Profile.DEVNET:
        _seed_devnet(deployer, funding or DevnetFunding())
    _hand_over_to_timelock(deployer, timelock)
    return record


def _deploy_timelock(deployer: Deployer, delay: int, proposers: tuple[ChecksumAddress, ...]) -> ChecksumAddress:
    """The Timelock: ``proposers`` propose and cancel, anyone executes after ``delay``, no admin but itself.
    The artifact is OpenZeppelin's own build of the pinned version (see scripts/toolchain/export_artifacts.py)."""
    return deployer.deploy("Timelock", "TimelockController", delay, list(proposers), [ZERO], ZERO)


def _hand_over_to_timelock(deployer: Deployer, timelock: ChecksumAddress) -> None:
    """Make the Timelock every contract's admin, then renounce the deployer's admin role (last, once), and record
    the block of the last renounce: the reconciler takes the deployer's role changes after it for someone using the
    deployer's key, not the deployment's wiring."""
    me = deployer.signer.address
    keys = [*GOVERNED, *(pool_key(asset) for asset in POOL_ASSETS), AUDIT_ANCHOR_KEY]
    for key in keys:
        deployer.step(f"admin-timelock-{key}", key, "grantRole", DEFAULT_ADMIN_ROLE, timelock)
    renounced = [deployer.step(f"renounce-deployer-{key}", key, "renounceRole", DEFAULT_ADMIN_ROLE, me) for key in keys]
    blocks = [int(receipt["blockNumber"]) for receipt in renounced if receipt is not None]
    if blocks:
        deployer.record.handover_block = max(blocks)
        deployer.save()


def verify_deployment(deployer: Deployer) -> list[CodeCheck]:
    """The runtime code at every address of the deployer's record against the compiled artifacts."""
    return verify_record(deployer.w3, deployer.record)


def _feeds(
    deployer: Deployer,
    profile: Profile,
    given: dict[str, tuple[ChecksumAddress, int]],
    answers_usd: Mapping[str, Decimal],
) -> dict[str, tuple[ChecksumAddress, int]]:
    if profile is Profile.PRODUCTION:
        return given
    feeds = {}
    for spec in DEVNET_FEEDS:
        usd = answers_usd.get(spec.asset)
        answer = spec.answer if usd is None else int(usd * 10**FEED_DECIMALS)
        address = deployer.deploy(feed_key(spec.asset), "MockPriceFeed", FEED_DECIMALS, answer)
        feeds[spec.asset] = (address, spec.heartbeat)
    return feeds


def _sequencer_feed(deployer: Deployer, profile: Profile, given: ChecksumAddress | None) -> ChecksumAddress:
    if profile is Profile.PRODUCTION:
        assert given is not None  # _refuse_incomplete
        return given
    # Answer 0: the sequencer is up; up since the epoch, so the grace period is long over.
    address = deployer.deploy("SequencerFeed", "MockPriceFeed", 0, 0)
    deployer.step("sequencer-feed-up-since", "SequencerFeed", "setTimes", 1, 0)
    return address


def _refuse_incomplete(
    tokens: Mapping[str, ChecksumAddress],
    feeds: Mapping[str, tuple[ChecksumAddress, int]],
    layer2: bool,
    sequencer_feed: ChecksumAddress | None,
) -> None:
    """What a production deployment needs from its configuration, checked before anything is read or sent."""
    missing = [asset for asset in (*POOL_ASSETS, *COLLATERAL_ASSETS) if asset not in tokens]
    if missing:
        raise ValueError(f"production profile needs token addresses for {', '.join(missing)}")
    missing = sorted({*POOL_ASSETS, *COLLATERAL_ASSETS} - feeds.keys())
    if missing:
        raise ValueError(f"production profile needs price feeds for {', '.join(missing)}")
    if layer2 and sequencer_feed is None:
        raise ValueError("production profile on an L2 needs the sequencer-uptime feed (sequencer_feed)")


def _tokens(
    deployer: Deployer, profile: Profile, given: dict[str, ChecksumAddress], expected_decimals: Mapping[str, int]
) -> dict[str, TokenListing]:
    """The listed tokens, written to the record's ``tokens`` (and saved: a re-run of a finished deployment sends
    nothing, and lists its tokens all the same): production's read from chain, devnet's mocks deployed."""
    if profile is Profile.PRODUCTION:
        listings = list_tokens(deployer.w3, given, expected_decimals)
    else:
        listings = {
            token.key: TokenListing(
                symbol=token.symbol,
                decimals=token.decimals,
                address=deployer.deploy(token.key, "MockERC20", token.name, token.symbol, token.decimals),
            )
            for token in DEVNET_TOKENS
        }
    deployer.record.parameters[TOKENS_PARAMETER] = {
        name: listing.model_dump(mode="json") for name, listing in listings.items()
    }
    deployer.save()
    return listings


def _seed_devnet(deployer: Deployer, funding: DevnetFunding) -> None:
    me = deployer.signer.address
    for asset in POOL_ASSETS:
        decimals = _decimals(asset)
        amount = funding.pool_liquidity * 10**decimals
        pool = deployer.record.address(pool_key(asset))
        deployer.step(f"seed-mint-{asset}", asset, "mint", me, amount)
        deployer.step(f"seed-approve-{asset}", asset, "approve", pool, amount)
        deployer.step(f"seed-deposit-{asset}", pool_key(asset), "deposit", amount, me)
    for borrower in funding.borrowers:
        for asset, whole in funding.borrower_balances.items():
            deployer.step(f"fund-{borrower}-{asset}", asset, "mint", borrower, whole * 10 ** _decimals(asset))
    if funding.keeper is not None:
        _seed_keeper(deployer, funding.keeper, funding.keeper_balance)


def _seed_keeper(deployer: Deployer, keeper: Signer, whole: int) -> None:
    """Mint the keeper each pool asset and approve the CollateralManager for it, from the keeper's own key (the
    approval is the keeper's to give)."""
    manager = deployer.record.address("CollateralManager")
    for asset in POOL_ASSETS:
        amount = whole * 10 ** _decimals(asset)
        deployer.step(f"fund-keeper-{asset}", asset, "mint", keeper.address, amount)
    if all(f"keeper-approve-{asset}" in deployer.record.steps for asset in POOL_ASSETS):
        return
    with Deployer(deployer.w3, keeper, deployer.record, deployer.record_path) as as_keeper:
        for asset in POOL_ASSETS:
            as_keeper.step(f"keeper-approve-{asset}", asset, "approve", manager, 2**256 - 1)


def _decimals(asset: str) -> int:
    return next(token.decimals for token in DEVNET_TOKENS if token.key == asset)


def deploy_to_devnet(
    chain_name: str,
    chain_id: int,
    rpc_url: str,
    record_path: Path | None = None,
    feed_answers_usd: Mapping[str, Decimal] | None = None,
) -> DeploymentRecord:
    """Deploy the devnet profile (``contracts/config/devnet.toml``) to a local anvil with the devnet deployer key,
    funding the devnet borrowers; ``feed_answers_usd``: the mock price feeds' first answers."""
    config = load_deploy_config(DEVNET_CONFIG, chain_name, require_chain=False)
    return deploy_from_config(
        chain_name, chain_id, rpc_url, config, devnet_signer(Role.DEPLOYER), record_path, feed_answers_usd
    )


def deploy_from_config(
    chain_name: str,
    chain_id: int,
    rpc_url: str,
    config: ChainDeployConfig,
    signer: Signer,
    record_path: Path | None = None,
    feed_answers_usd: Mapping[str, Decimal] | None = None,
) -> DeploymentRecord:
    """Deploy (or finish deploying) one chain's contract set as ``config`` says: its profile, Safe (deployed from
    owners and threshold when no address is given), role holders, delay, and in production its tokens and feeds."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    profile = Profile(config.profile)
    if record_path is not None and record_path.exists():
        record = DeploymentRecord.load(record_path)
    else:
        record = DeploymentRecord(chain_name=chain_name, chain_id=chain_id, profile=profile.value)
    token_addresses = {asset: token.address for asset, token in config.tokens.items()}
    token_decimals = {asset: token.decimals for asset, token in config.tokens.items() if token.decimals is not None}
    if profile is Profile.PRODUCTION:
        list_tokens(w3, token_addresses, token_decimals)  # a token that is not what its configuration says: none sent
    deployer = Deployer(w3, signer, record, record_path)
    safe = config.safe.address or deploy_safe(deployer, SAFE_KEY, config.safe.owners, config.safe.threshold)
    roles = RoleAddresses(
        admin=safe,
        extra_proposers=config.roles.extra_proposers,
        relayer=config.roles.relayer,
        quote_signer=config.roles.quote_signer,
        risk_signer=config.roles.risk_signer,
        operator=config.roles.operator,
        guardian=config.roles.guardian,
        audit_anchor=config.roles.audit_anchor,
        keeper=config.roles.keeper,
    )
    if profile is Profile.PRODUCTION:
        return deploy_contract_set(
            deployer,
            profile,
            roles,
            token_addresses=token_addresses,
            token_decimals=token_decimals,
            feed_addresses={asset: (feed.address, feed.heartbeat) for asset, feed in config.price_feeds.items()},
            timelock_delay=config.timelock_delay_seconds,
            layer2=config.layer2,
            sequencer_feed=config.sequencer_feed,
            settlement_addresses=dict(config.settlement_addresses),
        )
    borrowers = tuple(devnet_account(index).address for index in DEVNET_BORROWER_INDEXES)
    keeper = devnet_signer(Role.KEEPER)
    return deploy_contract_set(
        deployer,
        profile,
        roles,
        funding=DevnetFunding(
            pool_liquidity=config.pool_liquidity,
            borrowers=borrowers,
            keeper=keeper if config.roles.keeper == keeper.address else None,
        ),
        timelock_delay=config.timelock_delay_seconds,
        layer2=config.layer2,
        settlement_addresses=dict(config.settlement_addresses),
        feed_answers_usd=feed_answers_usd,
    )
