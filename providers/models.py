"""What the aggregator asks a provider and what a provider answers, normalized to the loan model of DESIGN.md:
fixed rate, fixed term, simple interest, an origination fee deducted from the proceeds, a single payment at
maturity or equal installments. Amounts are integer base units of the asset."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

#: what a correlation id may be: anything else from a caller is replaced, never forwarded to a lender or logged raw
CORRELATION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def is_valid_correlation_id(value: str) -> bool:
    return CORRELATION_ID.fullmatch(value) is not None


class ProviderKind(StrEnum):
    TRADITIONAL = "traditional"
    POOL = "pool"


class RepaymentShape(StrEnum):
    SINGLE = "single"
    INSTALLMENTS = "installments"


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    """A borrower's credit request as every provider sees it (no identity, only what pricing needs)."""

    request_id: str
    asset: str
    asset_decimals: int
    principal: int
    term_days: int
    purpose: str
    collateral_asset: str
    collateral_amount: int
    collateral_decimals: int
    chains: tuple[str, ...]
    grade: int
    jurisdiction: str
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class ProviderOffer:
    """One normalized offer. ``chain`` is the pool's chain for a pool offer, or None for a traditional offer
    (recorded on the chain where the borrower's collateral is locked)."""

    provider_id: str
    kind: ProviderKind
    asset: str
    principal: int
    rate_bps: int
    origination_fee: int
    term_days: int
    repayment: RepaymentShape
    expires_at: datetime
    provider_ref: str
    chain: str | None = None
    pool_address: str | None = None
    installments: int = 1


@dataclass(frozen=True, slots=True)
class Decline:
    provider_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FundingResult:
    """A provider's answer to an accepted offer."""

    provider_id: str
    provider_ref: str
    funded: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    assets: frozenset[str]
    chains: frozenset[str] = frozenset()
    min_principal: int = 1
    max_principal: int = 2**255
    min_term_days: int = 1
    max_term_days: int = 3_650
    collateral_assets: frozenset[str] = frozenset()
    jurisdictions: frozenset[str] = frozenset()

    def accepts(self, request: QuoteRequest) -> str | None:
        """Why the provider cannot quote ``request``, or None when it can."""
        if request.asset not in self.assets:
            return f"asset {request.asset} not offered"
        if not self.min_principal <= request.principal <= self.max_principal:
            return "amount out of range"
        if not self.min_term_days <= request.term_days <= self.max_term_days:
            return "term out of range"
        if self.collateral_assets and request.collateral_asset not in self.collateral_assets:
            return f"collateral {request.collateral_asset} not accepted"
        if self.jurisdictions and request.jurisdiction not in self.jurisdictions:
            return f"jurisdiction {request.jurisdiction} not served"
        return None

    def as_document(self) -> dict[str, Any]:
        """JSON form (amounts as decimal strings: base units may exceed a JSON number's exact range)."""
        return {
            "assets": sorted(self.assets),
            "chains": sorted(self.chains),
            "min_principal": str(self.min_principal),
            "max_principal": str(self.max_principal),
            "min_term_days": self.min_term_days,
            "max_term_days": self.max_term_days,
            "collateral_assets": sorted(self.collateral_assets),
            "jurisdictions": sorted(self.jurisdictions),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Capabilities:
        defaults = cls(assets=frozenset())
        return cls(
            assets=frozenset(document.get("assets", ())),
            chains=frozenset(document.get("chains", ())),
            min_principal=int(document.get("min_principal", defaults.min_principal)),
            max_principal=int(document.get("max_principal", defaults.max_principal)),
            min_term_days=int(document.get("min_term_days", defaults.min_term_days)),
            max_term_days=int(document.get("max_term_days", defaults.max_term_days)),
            collateral_assets=frozenset(document.get("collateral_assets", ())),
            jurisdictions=frozenset(document.get("jurisdictions", ())),
        )


class FundingState(StrEnum):
    """Where an offer stands at its provider (Provider Quote Protocol ``GET /v1/offers/{ref}``)."""

    OFFERED = "offered"
    RESERVED = "reserved"  # held for an accept (two-phase accept), not funded
    ACCEPTED = "accepted"
    FUNDED = "funded"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"  # a reservation released: the loan was not opened on-chain
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class FundingStatus:
    provider_id: str
    provider_ref: str
    state: FundingState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    provider_id: str
    healthy: bool
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)
