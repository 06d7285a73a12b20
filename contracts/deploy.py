"""The contract set's recipe, per profile, run on ``chain/``'s generic deployment machinery.

Order: (devnet) mock tokens → CreditScoringOracle → CollateralManager → CreditAggregator → one LendingPool per
pool asset → role wiring → (devnet) seed pool liquidity and fund the devnet borrowers. Every step is recorded, so a
re-run on the same chain skips what is done.

Profiles: ``devnet`` deploys mocks and funds local accounts; ``production`` deploys no mocks and takes token
addresses from its parameters (a per-chain config file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import Web3

from chain.deployment import Deployer, DeploymentRecord
from chain.signers import DEVNET_BORROWER_INDEXES, Role, devnet_account, devnet_signer


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
class RoleAddresses:
    admin: ChecksumAddress
    quote_signer: ChecksumAddress
    risk_signer: ChecksumAddress
    operator: ChecksumAddress
    guardian: ChecksumAddress


@dataclass(frozen=True, slots=True)
class DevnetFunding:
    """Devnet seeding, in whole tokens: pool liquidity deposited by the deployer, balances for borrowers."""

    pool_liquidity: int = 1_000_000
    borrowers: tuple[ChecksumAddress, ...] = ()
    borrower_balances: dict[str, int] = field(default_factory=lambda: {"WETH": 100, "USDC": 10_000})


DEVNET_TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec("USDC", "Devnet USD Coin", "USDC", 6),
    TokenSpec("WETH", "Devnet Wrapped Ether", "WETH", 18),
)
POOL_ASSETS: tuple[str, ...] = ("USDC",)
DEFAULT_GRACE_PERIOD_SECONDS = 7 * 86_400

AGGREGATOR_ROLE = keccak(text="AGGREGATOR_ROLE")
QUOTE_SIGNER_ROLE = keccak(text="QUOTE_SIGNER_ROLE")
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")


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
    grace_period: int = DEFAULT_GRACE_PERIOD_SECONDS,
) -> DeploymentRecord:
    """Deploy (or finish deploying) the contract set on ``deployer``'s chain and return its record."""
    record = deployer.record
    record.profile = profile.value
    tokens = _tokens(deployer, profile, token_addresses or {})
    oracle = deployer.deploy("CreditScoringOracle", "CreditScoringOracle", roles.admin, roles.risk_signer)
    manager = deployer.deploy("CollateralManager", "CollateralManager", roles.admin)
    aggregator = deployer.deploy("CreditAggregator", "CreditAggregator", roles.admin, manager, oracle, grace_period)
    for asset in POOL_ASSETS:
        deployer.deploy(
            pool_key(asset), "LendingPool", tokens[asset], f"creditmesh {asset} pool", f"cm{asset}", roles.admin,
            rate_model.base_bps, rate_model.slope1_bps, rate_model.slope2_bps, rate_model.optimal_utilization_bps,
        )  # fmt: skip
        deployer.step(f"grant-pool-{asset}", pool_key(asset), "grantRole", AGGREGATOR_ROLE, aggregator)
    deployer.step("grant-manager", "CollateralManager", "grantRole", AGGREGATOR_ROLE, aggregator)
    deployer.step("grant-quote-signer", "CreditAggregator", "grantRole", QUOTE_SIGNER_ROLE, roles.quote_signer)
    deployer.step("grant-operator", "CreditAggregator", "grantRole", OPERATOR_ROLE, roles.operator)
    deployer.step("grant-guardian", "CreditAggregator", "grantRole", GUARDIAN_ROLE, roles.guardian)
    record.parameters["gracePeriodSeconds"] = grace_period
    record.parameters["rateModel"] = {
        "baseBps": rate_model.base_bps,
        "slope1Bps": rate_model.slope1_bps,
        "slope2Bps": rate_model.slope2_bps,
        "optimalUtilizationBps": rate_model.optimal_utilization_bps,
    }
    if profile is Profile.DEVNET:
        _seed_devnet(deployer, funding or DevnetFunding())
    return record


def _tokens(deployer: Deployer, profile: Profile, given: dict[str, ChecksumAddress]) -> dict[str, ChecksumAddress]:
    if profile is Profile.PRODUCTION:
        missing = [asset for asset in POOL_ASSETS if asset not in given]
        if missing:
            raise ValueError(f"production profile needs token addresses for {', '.join(missing)}")
        return given
    addresses = {}
    for token in DEVNET_TOKENS:
        addresses[token.key] = deployer.deploy(token.key, "MockERC20", token.name, token.symbol, token.decimals)
        deployer.record.parameters.setdefault("tokens", {})[token.key] = {
            "symbol": token.symbol,
            "decimals": token.decimals,
        }
    return addresses


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


def _decimals(asset: str) -> int:
    return next(token.decimals for token in DEVNET_TOKENS if token.key == asset)


def deploy_to_devnet(chain_name: str, chain_id: int, rpc_url: str, record_path: Path | None = None) -> DeploymentRecord:
    """Deploy the devnet profile to a local anvil with the devnet role keys, funding the devnet borrowers."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    if record_path is not None and record_path.exists():
        record = DeploymentRecord.load(record_path)
    else:
        record = DeploymentRecord(chain_name=chain_name, chain_id=chain_id, profile=Profile.DEVNET.value)
    deployer = Deployer(w3, devnet_signer(Role.DEPLOYER), record, record_path)
    roles = RoleAddresses(
        admin=deployer.signer.address,
        quote_signer=devnet_signer(Role.QUOTE_SIGNER).address,
        risk_signer=devnet_signer(Role.RISK_SIGNER).address,
        operator=devnet_signer(Role.OPERATOR).address,
        guardian=devnet_signer(Role.GUARDIAN).address,
    )
    borrowers = tuple(devnet_account(index).address for index in DEVNET_BORROWER_INDEXES)
    liquidity = DEVNET_POOL_LIQUIDITY.get(chain_name, 1_000_000)
    return deploy_contract_set(
        deployer, Profile.DEVNET, roles, funding=DevnetFunding(pool_liquidity=liquidity, borrowers=borrowers)
    )


# Different liquidity per devnet so that the same loan size meets a different utilization, hence rate, per chain.
DEVNET_POOL_LIQUIDITY: dict[str, int] = {
    "ethereum-local": 2_000_000,
    "polygon-local": 250_000,
    "arbitrum-local": 600_000,
}
