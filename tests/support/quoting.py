"""A quoting service and a borrower for tests and benchmarks of the quote write: real compliance (the shipped
sanctions lists and jurisdiction rules), real signers, in-process lenders at fixed rates, and chains that are only
their EIP-712 domains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Self, cast

from eth_utils.address import to_checksum_address

from aggregator.assets import Asset, AssetRegistry
from aggregator.borrowers import BorrowerFile
from aggregator.platform import ChainRuntime
from aggregator.quote_store import QuotingStore
from aggregator.quoting import CreditRequestSpec, QuotingConfig, QuotingService
from api.demo import DEMO_PROFILE
from chain.signers import DEVNET_BORROWER_INDEXES, Role, devnet_account, devnet_signer
from compliance import ComplianceService
from compliance.jurisdiction import load_rules
from compliance.kyc import IdentityProfile, KycState, KycStatus, KycTier
from compliance.mla import MlaStatusCache
from compliance.sanctions.lists import load_newest
from compliance.sanctions.screening import SanctionsScreen
from contracts.typed_data import Domain
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.models import (
    Capabilities,
    Decline,
    FundingResult,
    FundingStatus,
    ProviderHealth,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
)
from risk.onchain_source import ChainOnchainSource
from risk.profile import CreditProfile
from risk.velocity import InMemoryVelocityStore

CHAINS = ("ethereum-local", "polygon-local")
WALLET = devnet_account(DEVNET_BORROWER_INDEXES[0]).address
QUOTE_SIGNER, RISK_SIGNER = devnet_signer(Role.QUOTE_SIGNER), devnet_signer(Role.RISK_SIGNER)
SPEC = CreditRequestSpec("1500.00", "USDC", 30, "general", "WETH", "1.0")


def _address(seed: int) -> str:
    return to_checksum_address(f"0x{seed:040x}")


ORACLES = (_address(0xB0), _address(0xB1))


@dataclass(frozen=True)
class _Record:
    addresses: dict[str, str]

    def address(self, name: str) -> str:
        return self.addresses[name]


@dataclass(frozen=True)
class _Chain:
    """What quoting reads of a ChainRuntime: its name, id and contracts (no RPC is made)."""

    name: str
    chain_id: int
    record: _Record

    @property
    def aggregator_domain(self) -> Domain:
        return Domain(self.chain_id, to_checksum_address(self.record.address("CreditAggregator")))

    @property
    def oracle_domain(self) -> Domain:
        return Domain(self.chain_id, to_checksum_address(self.record.address("CreditScoringOracle")))


class FixedRateLender(ProviderAdapter):
    """Answers every request with its rates, each an offer on ``chain`` (None: the borrower's chain)."""

    def __init__(self, provider_id: str, kind: ProviderKind, rates: list[int], chain: str | None = None) -> None:
        self.provider_id, self.kind, self._rates, self._chain = provider_id, kind.value, rates, chain
        self._offer_kind = kind

    @classmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        raise AssertionError("never registered: built by the test")

    def capabilities(self) -> Capabilities:
        return Capabilities(assets=frozenset({"USDC"}), chains=frozenset({self._chain}) if self._chain else frozenset())

    def lending_pool(self) -> tuple[str, str] | None:
        if self._offer_kind is not ProviderKind.POOL or self._chain is None:
            return None
        return self._chain, _address(0xBEEF)

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        return [
            ProviderOffer(
                provider_id=self.provider_id,
                kind=self._offer_kind,
                asset=request.asset,
                principal=request.principal,
                rate_bps=rate,
                origination_fee=request.principal // 100,
                term_days=request.term_days,
                repayment=RepaymentShape.SINGLE,
                # the lenders' own expiries differ: the attestation must outlive the latest quote on its chain
                expires_at=datetime.now(UTC) + timedelta(minutes=2 + i),
                provider_ref=f"{self.provider_id}-{rate}",
                chain=self._chain,
                pool_address=_address(0xBEEF) if self._offer_kind is ProviderKind.POOL else None,
            )
            for i, rate in enumerate(self._rates)
        ]

    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        raise AssertionError("quoting never accepts")

    async def status(self, provider_ref: str) -> FundingStatus:
        raise AssertionError("quoting never asks a status")

    async def health(self) -> ProviderHealth:
        return ProviderHealth(self.provider_id, True)


def shipped_compliance() -> ComplianceService:
    """Compliance on the shipped sanctions lists and jurisdiction rules."""
    return ComplianceService(
        SanctionsScreen(*load_newest()), load_rules(), clock=lambda: datetime.now(UTC), inputs_key=bytes(range(32))
    )


def quoting_service(
    store: QuotingStore,
    compliance: ComplianceService,
    mla: MlaStatusCache | None = None,
    more: Sequence[ProviderAdapter] = (),
    onchain: ChainOnchainSource | None = None,
    lenders: Sequence[ProviderAdapter] | None = None,
) -> QuotingService:
    """A quoting service on two chains (their EIP-712 domains only, no RPC) with two banks and a pool per chain, and
    the ``more`` providers (``lenders``: these instead of all of them); ``mla``: the Military Lending Act status
    (None: never checked)."""
    chains = {
        name: _Chain(
            name,
            31337 + i,
            _Record({"CreditAggregator": _address(0xA0 + i), "CreditScoringOracle": _address(0xB0 + i)}),
        )
        for i, name in enumerate(CHAINS)
    }
    tokens = {name: to_checksum_address(_address(0xC0 + i)) for i, name in enumerate(CHAINS)}
    assets = AssetRegistry([Asset("USDC", 6, Decimal(1), tokens), Asset("WETH", 18, Decimal(3000), dict(tokens))])
    providers: list[ProviderAdapter] = [
        FixedRateLender("bank", ProviderKind.TRADITIONAL, [900, 1_100]),
        FixedRateLender("fintech", ProviderKind.TRADITIONAL, [1_000]),
        *(
            FixedRateLender(f"pool:{name}", ProviderKind.POOL, [800 + 50 * i], chain=name)
            for i, name in enumerate(CHAINS)
        ),
        *more,
    ]
    if lenders is not None:
        providers = list(lenders)
    return QuotingService(
        store,
        cast(dict[str, ChainRuntime], chains),
        assets,
        providers,
        quote_signer=QUOTE_SIGNER,
        risk_signer=RISK_SIGNER,
        compliance=compliance,
        velocity=InMemoryVelocityStore(),
        config=QuotingConfig(fanout_deadline=5.0),
        mla=mla,
        onchain=onchain,
    )


def borrower_file() -> BorrowerFile:
    """A verified US-FL borrower with the demo credit profile."""
    now = datetime.now(UTC)
    return BorrowerFile(
        id="b1",
        wallet=WALLET,
        jurisdiction="US-FL",
        identity=IdentityProfile("Ada", "Lovelace", date(1985, 12, 10), "US-FL"),
        kyc=KycStatus("applicant-1", "b1", KycState.APPROVED, KycTier.STANDARD, (), now),
        profile=CreditProfile.model_validate(DEMO_PROFILE),
    )
