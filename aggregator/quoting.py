"""Credit request → validation → risk → concurrent fan-out with one deadline → disclose → rank → signed quotes.

Every provider's outcome is recorded; the quotes and the request are written in one unit of work, or nothing is."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak

from aggregator.assets import AssetRegistry, parse_amount
from aggregator.errors import InvalidCreditRequest
from aggregator.platform import ChainRuntime
from aggregator.ranking import RankedCandidate, rank
from aggregator.risk_gate import GRADE_LETTERS, SkeletonRiskDecision, skeleton_decision
from aggregator.terms import SECONDS_PER_DAY, SinglePaymentDisclosure, disclose_single_payment
from chain.signers import Signer
from contracts.typed_data import (
    ZERO_ADDRESS,
    Offer,
    RiskAttestation,
    digest,
    offer_typed_data,
    risk_attestation_typed_data,
)
from providers.base import ProviderAdapter, ProviderError
from providers.models import Decline, ProviderKind, ProviderOffer, QuoteRequest
from store.aggregator import CreditRequestRow, ProviderOutcomeRow, QuoteRow
from store.db import Database

MIN_TERM_DAYS, MAX_TERM_DAYS = 1, 365


@dataclass(frozen=True, slots=True)
class CreditRequestSpec:
    amount: str
    asset: str
    term_days: int
    purpose: str
    collateral_asset: str
    collateral_amount: str
    preferred_chains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Borrower:
    id: str
    wallet: ChecksumAddress
    jurisdiction: str


@dataclass
class QuotingConfig:
    fanout_deadline: float = 2.0
    quote_ttl: timedelta = timedelta(minutes=10)
    lendable_assets: frozenset[str] = frozenset({"USDC"})


@dataclass
class _Outcome:
    provider_id: str
    outcome: str
    detail: str
    latency_ms: int
    offers: list[ProviderOffer] = field(default_factory=list)


class QuotingService:
    def __init__(
        self,
        database: Database,
        chains: dict[str, ChainRuntime],
        assets: AssetRegistry,
        providers: Sequence[ProviderAdapter],
        quote_signer: Signer,
        risk_signer: Signer,
        config: QuotingConfig,
    ) -> None:
        self._db, self._chains, self._assets = database, chains, assets
        self._providers, self._quote_signer, self._risk_signer = providers, quote_signer, risk_signer
        self._config = config

    async def request_credit(self, borrower: Borrower, spec: CreditRequestSpec, correlation_id: str = "") -> str:
        """Validate, score, fan out, sign and store; returns the credit request id. Writes nothing when invalid."""
        asset, principal, collateral, collateral_amount, chains = self._validate(spec)
        risk = skeleton_decision(borrower.wallet)
        self._check_ltv(
            risk,
            asset.usd_price * asset.from_base_units(principal),
            collateral.usd_price * collateral.from_base_units(collateral_amount),
        )
        request_id = str(uuid.uuid4())
        query = QuoteRequest(
            request_id=request_id,
            asset=asset.symbol,
            asset_decimals=asset.decimals,
            principal=principal,
            term_days=spec.term_days,
            purpose=spec.purpose,
            collateral_asset=collateral.symbol,
            collateral_amount=collateral_amount,
            collateral_decimals=collateral.decimals,
            chains=tuple(chains),
            grade=risk.grade,
            jurisdiction=borrower.jurisdiction,
            correlation_id=correlation_id,
        )
        outcomes = await self._fan_out(query)
        now = datetime.now(UTC)
        quotes = self._sign_quotes(borrower, query, risk, outcomes, chains, now)
        request_row = CreditRequestRow(
            id=request_id,
            borrower_id=borrower.id,
            asset=asset.symbol,
            amount=asset.format(principal),
            term_days=spec.term_days,
            purpose=spec.purpose,
            collateral_asset=collateral.symbol,
            collateral_amount=collateral.format(collateral_amount),
            preferred_chains=list(spec.preferred_chains),
            status="quoted" if quotes else "no_offers",
            risk={
                "grade": GRADE_LETTERS[risk.grade],
                "maxLtvBps": risk.max_ltv_bps,
                "spreadBps": risk.spread_bps,
                "modelVersion": risk.model_version,
                "decisionHash": "0x" + risk.decision_hash.hex(),
            },
            created_at=now,
        )
        outcome_rows = [
            ProviderOutcomeRow(
                request_id=request_id,
                provider_id=o.provider_id,
                outcome=o.outcome,
                detail=o.detail[:512],
                latency_ms=o.latency_ms,
            )
            for o in outcomes
        ]

        def write() -> None:
            with self._db.unit_of_work() as uow:
                uow.session.add(request_row)
                uow.session.flush()
                uow.session.add_all([*outcome_rows, *quotes])
                uow.commit()

        await asyncio.to_thread(write)
        return request_id

    # ------------------------------------------------------------------ validation

    def _validate(self, spec: CreditRequestSpec):  # type: ignore[no-untyped-def]
        asset = self._assets.get(spec.asset, "asset")
        if asset.symbol not in self._config.lendable_assets:
            raise InvalidCreditRequest(
                "asset", f"{asset.symbol} is not lent; lent: {', '.join(sorted(self._config.lendable_assets))}"
            )
        principal = asset.to_base_units(parse_amount(spec.amount, "amount"), "amount")
        if not MIN_TERM_DAYS <= spec.term_days <= MAX_TERM_DAYS:
            raise InvalidCreditRequest("term_days", f"must be between {MIN_TERM_DAYS} and {MAX_TERM_DAYS} days")
        collateral = self._assets.get(spec.collateral_asset, "collateral.asset")
        collateral_amount = collateral.to_base_units(
            parse_amount(spec.collateral_amount, "collateral.amount"), "collateral.amount"
        )
        unknown = [name for name in spec.preferred_chains if name not in self._chains]
        if unknown:
            raise InvalidCreditRequest(
                "preferred_chains", f"unknown chain {unknown[0]!r}; known: {', '.join(self._chains)}"
            )
        chains = list(spec.preferred_chains) or list(self._chains)
        return asset, principal, collateral, collateral_amount, chains

    @staticmethod
    def _check_ltv(risk: SkeletonRiskDecision, loan_usd: Decimal, collateral_usd: Decimal) -> None:
        limit = collateral_usd * risk.max_ltv_bps / 10_000
        if loan_usd > limit:
            raise InvalidCreditRequest(
                "collateral.amount",
                f"collateral worth {collateral_usd:.2f} USD supports at most {limit:.2f} USD at a "
                f"{risk.max_ltv_bps / 100:.0f}% loan-to-value",
            )

    # ------------------------------------------------------------------ fan-out

    async def _ask(self, provider: ProviderAdapter, query: QuoteRequest) -> _Outcome:
        started = time.perf_counter()
        reason = provider.capabilities().accepts(query)
        if reason is not None:
            return _Outcome(provider.provider_id, "ineligible", reason, 0)
        try:
            answer = await provider.quote(query)
        except ProviderError as err:
            return _Outcome(provider.provider_id, "failed", str(err), _ms(started))
        if isinstance(answer, Decline):
            return _Outcome(provider.provider_id, "declined", answer.reason, _ms(started))
        return _Outcome(provider.provider_id, "offered", f"{len(answer)} offer(s)", _ms(started), answer)

    async def _fan_out(self, query: QuoteRequest) -> list[_Outcome]:
        tasks = {asyncio.create_task(self._ask(p, query)): p.provider_id for p in self._providers}
        done, pending = await asyncio.wait(tasks, timeout=self._config.fanout_deadline)
        for task in pending:
            task.cancel()
        outcomes = [task.result() for task in done]
        deadline_ms = int(self._config.fanout_deadline * 1000)
        outcomes += [_Outcome(tasks[t], "timeout", f"no answer within {deadline_ms} ms", deadline_ms) for t in pending]
        return sorted(outcomes, key=lambda o: o.provider_id)

    # ------------------------------------------------------------------ signing

    def _sign_quotes(
        self,
        borrower: Borrower,
        query: QuoteRequest,
        risk: SkeletonRiskDecision,
        outcomes: list[_Outcome],
        chains: list[str],
        now: datetime,
    ) -> list[QuoteRow]:
        drafts: list[tuple[ProviderOffer, SinglePaymentDisclosure, ChainRuntime]] = []
        for outcome in outcomes:
            for offer in outcome.offers:
                chain = self._chains[offer.chain] if offer.chain else self._chains[chains[0]]
                disclosure = disclose_single_payment(
                    query.asset,
                    query.asset_decimals,
                    offer.principal,
                    offer.origination_fee,
                    offer.rate_bps,
                    offer.term_days,
                )
                drafts.append((offer, disclosure, chain))
        candidates = [
            RankedCandidate(str(i), offer.provider_id, disclosure.finance_charge, disclosure.apr_percent)
            for i, (offer, disclosure, _) in enumerate(drafts)
        ]
        ordered = rank(candidates, {})
        rows = []
        for position, candidate in enumerate(ordered, start=1):
            offer, disclosure, chain = drafts[int(candidate.key)]
            rows.append(self._sign_one(borrower, query, risk, offer, disclosure, chain, position, now))
        return rows

    def _sign_one(
        self,
        borrower: Borrower,
        query: QuoteRequest,
        risk: SkeletonRiskDecision,
        offer: ProviderOffer,
        disclosure: SinglePaymentDisclosure,
        chain: ChainRuntime,
        position: int,
        now: datetime,
    ) -> QuoteRow:
        expires_at = min(offer.expires_at, now + self._config.quote_ttl).replace(microsecond=0)
        asset = self._assets.get(query.asset)
        collateral = self._assets.get(query.collateral_asset)

        signed_offer = Offer(
            providerId=keccak(text=offer.provider_id),
            pool=offer.pool_address if offer.kind is ProviderKind.POOL and offer.pool_address else ZERO_ADDRESS,  # type: ignore[arg-type]
            borrower=borrower.wallet,
            asset=asset.addresses[chain.name],
            principal=offer.principal,
            rateBps=offer.rate_bps,
            term=offer.term_days * SECONDS_PER_DAY,
            originationFee=offer.origination_fee,
            collateralAsset=collateral.addresses[chain.name],
            collateralAmount=query.collateral_amount,
            chainId=chain.chain_id,
            termsHash=disclosure.terms_hash(),
            expiry=int(expires_at.timestamp()),
            nonce=secrets.randbits(128),
        )
        attestation = RiskAttestation(
            borrower=borrower.wallet,
            grade=risk.grade,
            maxLtvBps=risk.max_ltv_bps,
            expiry=int(expires_at.timestamp()),
            decisionHash=risk.decision_hash,
        )
        offer_doc = offer_typed_data(chain.aggregator_domain, signed_offer)

        return QuoteRow(
            id=str(uuid.uuid4()),
            request_id=query.request_id,
            borrower_id=borrower.id,
            provider_id=offer.provider_id,
            kind=offer.kind.value,
            chain_name=chain.name,
            chain_id=chain.chain_id,
            contract=chain.record.address("CreditAggregator"),
            rank=position,
            offer=_jsonable(signed_offer.as_message()) | {"providerRef": offer.provider_ref},
            offer_digest="0x" + digest(offer_doc).hex(),
            offer_signature="0x" + self._quote_signer.sign_typed_data(offer_doc).hex(),
            attestation=_jsonable(attestation.as_message()),
            attestation_signature="0x"
            + self._risk_signer.sign_typed_data(risk_attestation_typed_data(chain.oracle_domain, attestation)).hex(),
            disclosure=disclosure.as_document() | {"termsHash": "0x" + disclosure.terms_hash().hex()},
            status="offered",
            expires_at=expires_at,
            created_at=now,
        )


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _jsonable(message: dict[str, object]) -> dict[str, object]:
    return {key: "0x" + value.hex() if isinstance(value, bytes) else value for key, value in message.items()}
