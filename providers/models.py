"""What the aggregator asks a provider and what a provider answers, normalized to the loan model of DESIGN.md:
fixed rate, fixed term, simple interest, an origination fee deducted from the proceeds, a single payment at
maturity or installments on the lender's schedule (``InstallmentSchedule``). Amounts are integer base units of the
asset."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from compliance.jurisdiction import covers

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


PaymentFrequency = Literal["monthly", "semimonthly", "biweekly", "weekly", "quarterly"]
InterestDayCount = Literal["30/360", "actual/365", "actual/actual"]


@dataclass(frozen=True, slots=True)
class ScheduledPayment:
    """One installment as the lender computed it: its number (from 1), due date and amount in base units."""

    number: int
    due: date
    amount: int


@dataclass(frozen=True, slots=True)
class InstallmentSchedule:
    """How an amortizing offer is repaid (the Provider Quote Protocol's ``schedule``): the offer's ``installments``
    equal payments at ``frequency``, interest under ``day_count``; the first due on ``first_due`` when given (an odd
    first period), else one period after the start; ``balloon`` base units of principal repaid on top of the last
    installment. ``payments`` is the lender's own computation when it sent one: creditmesh discloses the schedule
    by its stated method (docs/compliance.md) and refuses an offer whose payments differ from it."""

    frequency: PaymentFrequency = "monthly"
    day_count: InterestDayCount = "30/360"
    first_due: date | None = None
    balloon: int = 0
    payments: tuple[ScheduledPayment, ...] = ()

    def as_document(self) -> dict[str, Any]:
        """JSON form (amounts as decimal strings, dates ISO 8601): what a quote keeps and a reservation carries."""
        return {
            "frequency": self.frequency,
            "day_count": self.day_count,
            "first_due": None if self.first_due is None else self.first_due.isoformat(),
            "balloon": str(self.balloon),
            "payments": [
                {"number": p.number, "due": p.due.isoformat(), "amount": str(p.amount)} for p in self.payments
            ],
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> InstallmentSchedule:
        first_due = document.get("first_due")
        return cls(
            frequency=document.get("frequency", "monthly"),
            day_count=document.get("day_count", "30/360"),
            first_due=None if first_due is None else date.fromisoformat(first_due),
            balloon=int(document.get("balloon", 0)),
            payments=tuple(
                ScheduledPayment(int(p["number"]), date.fromisoformat(p["due"]), int(p["amount"]))
                for p in document.get("payments", ())
            ),
        )


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
    #: the day interest starts for the disclosure (the quote's date, UTC): what a lender's schedule counts from
    start_date: date | None = None
    #: (chain name, head block) of each chain whose head this request read (its on-chain history): a pool reads its
    #: state pinned to that block, shared with the other requests at the same block (``providers.pool``)
    chain_heads: tuple[tuple[str, int], ...] = ()

    def head_of(self, chain: str) -> int | None:
        """The head block this request read for ``chain``; None when it read none there (the chain was skipped)."""
        return next((block for name, block in self.chain_heads if name == chain), None)


@dataclass(frozen=True, slots=True)
class ProviderOffer:
    """One normalized offer. ``chain`` is the pool's chain for a pool offer, or None for a traditional offer
    (recorded on the chain where the borrower's collateral is locked). An amortizing offer (``repayment``
    installments) carries its ``schedule``; its term is then the schedule's (its last due date), not the request's."""

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
    schedule: InstallmentSchedule | None = None


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
    """What a provider lends. ``chains``: the chains its loans may be opened on (empty: any of the platform's); a
    traditional lender's offer is signed on the first of the request's chains it lends on."""

    assets: frozenset[str]
    chains: frozenset[str] = frozenset()
    min_principal: int = 1
    max_principal: int = 2**255
    min_term_days: int = 1
    max_term_days: int = 3_650
    collateral_assets: frozenset[str] = frozenset()
    jurisdictions: frozenset[str] = frozenset()

    def accepts(self, request: QuoteRequest) -> str | None:
        """Why the provider cannot quote ``request``, or None when it can. A provider that declared ``chains`` is
        asked only when one of them is among the request's (none declared: it lends on any chain)."""
        if request.asset not in self.assets:
            return f"asset {request.asset} not offered"
        if request.chains:
            elsewhere = self.lends_elsewhere(request.chains)
            if elsewhere is not None:
                return elsewhere
        if not self.min_principal <= request.principal <= self.max_principal:
            return "amount out of range"
        if not self.min_term_days <= request.term_days <= self.max_term_days:
            return "term out of range"
        if self.collateral_assets and request.collateral_asset not in self.collateral_assets:
            return f"collateral {request.collateral_asset} not accepted"
        if self.jurisdictions and not self.serves(request.jurisdiction):
            return f"jurisdiction {request.jurisdiction} not served"
        return None

    def serves(self, jurisdiction: str) -> bool:
        """Whether one of ``jurisdictions`` covers the borrower's ``jurisdiction``: the same code, or its country
        ("US" serves "US-FL": ``compliance.jurisdiction.covers``)."""
        return jurisdiction.upper() in self.jurisdictions or any(
            covers(code, jurisdiction) for code in self.jurisdictions
        )

    def lends_elsewhere(self, chains: Sequence[str]) -> str | None:
        """Why the provider cannot lend on any of ``chains``, or None when it lends on one of them (or on any)."""
        if self.chains and self.chains.isdisjoint(chains):
            return f"lends on {', '.join(sorted(self.chains))}, none of the requested chains"
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
            # upper case, as a borrower's (a registration stored before read "us-ny", and never matched a request)
            jurisdictions=frozenset(str(code).strip().upper() for code in document.get("jurisdictions", ())),
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
