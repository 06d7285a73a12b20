"""A credit request's offers, from the providers' answers to signed quotes: each offer disclosed (Regulation Z) and
kept within the usury caps, the kept ones ranked, then signed as EIP-712 offers with one risk attestation per chain.

Pure work on the request's data and the two signers (no I/O): ``aggregator.quote_pipeline`` runs it beside and after
the fan-out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak

from aggregator.assets import Asset
from aggregator.borrowers import BorrowerFile
from aggregator.collateral_limits import DebtCeiling, largest_debt
from aggregator.errors import InvalidCreditRequest
from aggregator.fanout import ProviderOutcome
from aggregator.offer_terms import (
    lender_schedule,
    offer_terms,
    schedule_mismatch,
    schedule_past_maximum,
    schedule_past_term,
)
from aggregator.platform import ChainRuntime
from aggregator.quote_adverse import case
from aggregator.quote_store import QuoteRecord
from aggregator.ranking import RankedCandidate, rank
from chain.signers import Signer
from compliance import ComplianceService, DecisionRecord, Disclosure, SecurityInterest, random_ids
from compliance.decisions import Outcome
from compliance.errors import ComplianceInputError
from compliance.jurisdiction import Reason as ComplianceReason
from contracts.typed_data import ZERO_ADDRESS, Offer, RiskAttestation, offer_typed_data
from contracts.typed_data import risk_attestation_typed_data as attestation_document
from providers.models import ProviderKind, ProviderOffer
from risk.policy import RiskDecision
from risk.reasons import COLLATERAL_NOT_ACCEPTED, RATE_OVER_LEGAL_LIMIT, Reason

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class ValidRequest:
    """A credit request validated: its asset and collateral (priced), amounts in base units, the chains asked; once
    they are known, the largest debt the collateral carries on each (``debt_ceilings``: an offer whose schedule's
    debt goes past its chain's is dropped in disclosure)."""

    asset: Asset
    principal: int
    collateral: Asset
    collateral_amount: int
    chains: list[str]
    debt_ceilings: Mapping[str, DebtCeiling] = field(default_factory=dict)

    @property
    def amount(self) -> Decimal:
        return self.asset.from_base_units(self.principal)

    @property
    def security_interest(self) -> SecurityInterest:
        """The collateral, as every offer's disclosure names it (12 CFR 1026.18(m))."""
        return SecurityInterest(self.collateral.symbol, self.collateral.from_base_units(self.collateral_amount))

    @property
    def collateral_value(self) -> Decimal:
        """The collateral valued in the loan asset's units."""
        usd = self.collateral.usd_price * self.collateral.from_base_units(self.collateral_amount)
        return usd / self.asset.usd_price


@dataclass(frozen=True, slots=True)
class SignedOffer:
    """A draft's offer as signed with ``nonce`` (``QuoteSigning.sign_offer``)."""

    nonce: int
    expiry: int
    offer: Offer
    digest: bytes
    signature: bytes


@dataclass
class Draft:
    """An offer disclosed and kept: what its quote is signed and stored from."""

    offer: ProviderOffer
    disclosure: Disclosure
    chain: ChainRuntime
    # what the quote stores beside the signed offer, built before the write takes its turn (no nonce in them)
    lender_terms: dict[str, Any]
    disclosure_json: dict[str, Any]
    #: the offer signed while the other providers answered, when its chain's nonce was already reserved
    signed: SignedOffer | None = None


@dataclass(frozen=True, slots=True)
class Dropped:
    """Why an offer is not kept (``why``: its outcome's words), and the adverse-action reason when the borrower's
    request decided it (a usury cap, the collateral's debt ceiling); None when the offer itself is at fault."""

    why: str
    adverse: Reason | None = None


def disclose(
    compliance: ComplianceService,
    chains: dict[str, ChainRuntime],
    borrower: BorrowerFile,
    valid: ValidRequest,
    outcomes: list[ProviderOutcome],
    records: list[DecisionRecord],
    covered: bool,
    now: datetime,
) -> list[Draft]:
    """Disclose every offer (Regulation Z) and keep it only within the jurisdiction's usury caps. An offer whose terms
    cannot be disclosed is dropped, never the request: one lender's offer whose payments outgrow what an amount can
    hold (a high rate over hundreds of installments) raised out of the whole credit request, every borrower's. A
    provider's outcome becomes ``dropped`` only when none of its offers is kept; otherwise its detail names the offers
    dropped and why (one dropped offer marked the whole outcome dropped, though its other offers were quoted)."""
    drafts = []
    collateral = valid.security_interest
    for outcome in outcomes:
        kept, reasons = [], []
        for offer in outcome.offers:
            try:
                draft = _draft(
                    compliance, chains, borrower, valid, offer, records, covered, now, collateral, outcome.chains
                )
            except (ComplianceInputError, InvalidCreditRequest) as err:  # a rate finer than a basis point, never
                # rounded; a payment larger than the asset's largest amount
                draft = Dropped(f"dropped: the terms cannot be disclosed: {err}")
            except ArithmeticError:  # amounts past the disclosure's decimal precision
                draft = Dropped("dropped: the terms cannot be disclosed: amounts too large")
            if isinstance(draft, Dropped):
                reasons.append((offer.provider_ref, draft.why))
                if draft.adverse is not None and draft.adverse.code not in {r.code for r in outcome.adverse}:
                    outcome.adverse.append(draft.adverse)
                continue
            kept.append(draft)
        if reasons:
            _note_dropped(outcome, len(kept), reasons)
        if kept:  # an offer kept: no reason held this provider back
            outcome.adverse.clear()
        drafts += kept
    return drafts


def _note_dropped(outcome: ProviderOutcome, kept: int, reasons: list[tuple[str, str]]) -> None:
    """``outcome`` with its offers dropped in disclosure (``reasons``: each offer's reference and why): ``dropped``
    with the reason when none is kept (each offer named when several were dropped), else still ``offered`` with the
    kept count and every dropped offer named."""
    named = [f"offer {ref[:64]!r} {reason}" for ref, reason in reasons]
    outcome.dropped += named
    if kept:
        outcome.detail = "; ".join([f"{kept} offer(s)", *outcome.dropped])[:512]
        return
    outcome.outcome = "dropped"
    alone = len(outcome.dropped) == 1
    outcome.detail = (reasons[0][1] if alone else "; ".join(outcome.dropped))[:512]


def _draft(
    compliance: ComplianceService,
    chains: dict[str, ChainRuntime],
    borrower: BorrowerFile,
    valid: ValidRequest,
    offer: ProviderOffer,
    records: list[DecisionRecord],
    covered: bool,
    now: datetime,
    collateral: SecurityInterest | None,
    served: frozenset[str] = frozenset(),
) -> Draft | Dropped:
    """One offer disclosed and checked: its draft, or why it is dropped (a schedule past the maximum term or past the
    term asked before its disclosure is computed; a debt its collateral does not carry on its chain, ``DebtCeiling``).
    A pool's offer is placed on its pool's chain; a traditional lender's on the first of the requested chains among
    those it lends on (``served``; none declared: the first requested chain). Its compliance decision record is kept
    after its last check: ``allow`` for a kept offer, and for one the checks after compliance's drop, a ``deny``
    naming why (``_dropped_after``) — an allow was recorded for offers never quoted."""
    # the offer's term is still the one asked here (``offer_checks.offer_mismatch``): ``offer_terms`` below makes it
    # the schedule's, so the schedule is held to the term asked first
    too_long = schedule_past_maximum(offer, now) or schedule_past_term(offer, now, offer.term_days)
    if too_long is not None:
        return Dropped(f"dropped: {too_long}")
    placed = offer.chain or next((name for name in valid.chains if not served or name in served), None)
    if placed is None or placed not in valid.chains:
        where = placed or ", ".join(sorted(served))
        return Dropped(f"dropped: offered on {where}, none of the requested chains")
    offer, terms = offer_terms(offer, valid.asset, now, collateral)  # an amortizing offer takes its schedule's term
    decision = compliance.check_offer(offer.provider_ref, terms, borrower.jurisdiction, covered)
    if not decision.kept:
        records.append(decision.record)
        capped = "; ".join(r.message for r in decision.check.reasons)
        return Dropped(f"dropped by compliance: {capped}", case(RATE_OVER_LEGAL_LIMIT, capped))
    mismatch = schedule_mismatch(offer, decision.disclosure, valid.asset)
    if mismatch is not None:
        records.append(_dropped_after(decision.record, "offer.schedule-mismatch", mismatch))
        return Dropped(f"dropped: {mismatch}")
    ceiling = valid.debt_ceilings.get(placed)
    if ceiling is not None:
        debt = largest_debt(decision.disclosure)
        uncovered = ceiling.refusal(debt, valid.asset, valid.collateral, valid.collateral_amount)
        if uncovered is not None:
            records.append(_dropped_after(decision.record, "offer.collateral-ceiling", uncovered))
            return Dropped(f"dropped: {uncovered}", case(COLLATERAL_NOT_ACCEPTED, uncovered))
    records.append(decision.record)
    chain = chains[placed]
    lender = _lender_terms(offer) | {"schedule": lender_schedule(offer, decision.disclosure, valid.asset)}
    return Draft(offer, decision.disclosure, chain, lender, _disclosure_json(decision.disclosure))


def _dropped_after(record: DecisionRecord, code: str, why: str) -> DecisionRecord:
    """The offer's decision record when a check after compliance's drops it: compliance's ``record`` (its inputs,
    versions and time) as a ``deny`` of its own for ``why``."""
    return replace(
        record,
        decision_id=str(random_ids.uuid4()),
        outcome=Outcome.DENY,
        reasons=(*record.reasons, ComplianceReason(code, why[:512])),
    )


def rank_drafts(
    valid: ValidRequest, drafts: list[Draft], reliability: Mapping[str, float] | None = None
) -> list[Draft]:
    """The kept offers, best first (``aggregator.ranking``): ``reliability`` is each provider's recent success ratio,
    which breaks ties of cost and APR (a provider not in it counts as reliable)."""
    candidates = [
        RankedCandidate(
            str(i),
            d.offer.provider_id,
            int(d.disclosure.finance_charge.scaleb(valid.asset.decimals)),
            d.disclosure.apr_percent,
        )
        for i, d in enumerate(drafts)
    ]
    return [drafts[int(candidate.key)] for candidate in rank(candidates, reliability or {})]


class QuoteSigning:
    """Signs a request's ranked offers as quotes: each offer with the quote signer, one risk attestation per chain with
    the risk signer; a quote expires with its lender's offer, at most ``quote_ttl`` after the request."""

    def __init__(
        self, chains: dict[str, ChainRuntime], quote_signer: Signer, risk_signer: Signer, quote_ttl: timedelta
    ) -> None:
        self._chains, self._quote_signer, self._risk_signer = chains, quote_signer, risk_signer
        self._quote_ttl = quote_ttl

    def sign(
        self,
        borrower: BorrowerFile,
        valid: ValidRequest,
        decision: RiskDecision,
        ranked: list[Draft],
        nonces: dict[str, int],
        request_id: str,
        now: datetime,
    ) -> list[QuoteRecord]:
        """ONE offer nonce per chain for all of the request's quotes on it (``nonces`` by chain name; see
        aggregator.quote_store): the contract spends it with the first loan opened, so it refuses a second quote of
        the same request by itself. The risk attestation names only the borrower, the decision and that nonce, so
        ONE attestation per chain serves all the chain's quotes; it expires with the last of them."""
        expiries = [self._expiry(draft.offer, now) for draft in ranked]
        last_expiry: dict[str, int] = {}
        for draft, expiry in zip(ranked, expiries, strict=True):
            last_expiry[draft.chain.name] = max(expiry, last_expiry.get(draft.chain.name, 0))
        decision_hash = decision.decision_hash()
        attestations = {
            name: self._attest(borrower, decision, decision_hash, self._chains[name], expiry, nonces[name])
            for name, expiry in last_expiry.items()
        }
        return [
            self._sign_one(
                borrower,
                valid,
                draft,
                nonces[draft.chain.name],
                expiry,
                attestations[draft.chain.name],
                request_id,
                position,
                now,
            )
            for position, (draft, expiry) in enumerate(zip(ranked, expiries, strict=True), start=1)
        ]

    def sign_offer(
        self, borrower: BorrowerFile, valid: ValidRequest, draft: Draft, nonce: int, now: datetime
    ) -> SignedOffer:
        """``draft``'s offer signed with its chain's ``nonce``, expiring as ``sign`` has it expire: what ``sign``
        does for each quote, done ahead when the nonce is known before the last answer (``Draft.signed``)."""
        offer, chain = draft.offer, draft.chain
        expiry = self._expiry(offer, now)
        signed_offer = Offer(
            providerId=_provider_id_hash(offer.provider_id),
            pool=offer.pool_address if offer.kind is ProviderKind.POOL and offer.pool_address else ZERO_ADDRESS,  # type: ignore[arg-type]
            borrower=borrower.wallet,
            asset=valid.asset.addresses[chain.name],
            principal=offer.principal,
            rateBps=offer.rate_bps,
            term=offer.term_days * SECONDS_PER_DAY,
            originationFee=offer.origination_fee,
            collateralAsset=valid.collateral.addresses[chain.name],
            collateralAmount=valid.collateral_amount,
            chainId=chain.chain_id,
            termsHash=draft.disclosure.terms_hash(),
            expiry=expiry,
            nonce=nonce,
        )
        # the offer is encoded once for its digest and its signature
        digest, signature = self._quote_signer.sign_typed_data_with_digest(
            offer_typed_data(chain.aggregator_domain, signed_offer)
        )
        return SignedOffer(nonce, expiry, signed_offer, digest, signature)

    def _expiry(self, offer: ProviderOffer, now: datetime) -> int:
        """When the quote of ``offer`` expires: the lender's expiry, at most the quote TTL, in whole seconds."""
        return int(min(offer.expires_at, now + self._quote_ttl).replace(microsecond=0).timestamp())

    def _attest(
        self,
        borrower: BorrowerFile,
        decision: RiskDecision,
        decision_hash: bytes,
        chain: ChainRuntime,
        expiry: int,
        nonce: int,
    ) -> tuple[dict[str, Any], str]:
        """The risk attestation for the borrower's quotes on ``chain`` and the risk signer's signature."""
        assert decision.grade is not None
        attestation = RiskAttestation(
            borrower=borrower.wallet,
            grade=decision.grade,
            maxLtvBps=decision.max_ltv_bps,
            expiry=expiry,
            decisionHash=decision_hash,
            nonce=nonce,
        )
        signature = self._risk_signer.sign_typed_data(attestation_document(chain.oracle_domain, attestation))
        return _jsonable(attestation.as_message()), "0x" + signature.hex()

    def _sign_one(
        self,
        borrower: BorrowerFile,
        valid: ValidRequest,
        draft: Draft,
        nonce: int,
        expiry: int,
        attestation: tuple[dict[str, Any], str],
        request_id: str,
        position: int,
        now: datetime,
    ) -> QuoteRecord:
        offer, chain = draft.offer, draft.chain
        signed = draft.signed
        if signed is None or signed.nonce != nonce or signed.expiry != expiry:
            signed = self.sign_offer(borrower, valid, draft, nonce, now)
        return QuoteRecord(
            id=str(uuid.uuid4()),
            request_id=request_id,
            borrower_id=borrower.id,
            provider_id=offer.provider_id,
            kind=offer.kind.value,
            chain_name=chain.name,
            chain_id=chain.chain_id,
            contract=chain.record.address("CreditAggregator"),
            rank=position,
            offer=_jsonable(signed.offer.as_message()) | draft.lender_terms,
            offer_digest="0x" + signed.digest.hex(),
            offer_signature="0x" + signed.signature.hex(),
            attestation=attestation[0],
            attestation_signature=attestation[1],
            disclosure=draft.disclosure_json,
            status="offered",
            expires_at=datetime.fromtimestamp(expiry, UTC),
            created_at=now,
        )


def risk_summary(decision: RiskDecision) -> dict[str, Any]:
    """What the borrower is told about the risk decision (the adverse-action reasons included)."""
    return {
        "approved": decision.approved,
        "score": decision.score,
        "scorecard_score": decision.scorecard_score,
        "onchain_points": decision.onchain_points,
        "grade": decision.grade_letter,
        "probability_of_default": format(decision.pd, "f"),
        "max_ltv_bps": decision.max_ltv_bps,
        "max_amount": format(decision.max_amount, "f"),
        "spread_bps": decision.spread_bps,
        "reasons": [{"code": r.code, "text": r.text} for r in decision.reasons],
        "model_version": decision.model_version,
        "policy_version": decision.policy_version,
        "inputs_hash": decision.inputs_hash,
        "decision_hash": "0x" + decision.decision_hash().hex(),
    }


@lru_cache(maxsize=1024)
def _provider_id_hash(provider_id: str) -> bytes:
    """An offer's ``providerId``: keccak256 of the provider's id (the same few providers answer every request)."""
    return keccak(provider_id.encode())


def _lender_terms(offer: ProviderOffer) -> dict[str, Any]:
    """What the lender needs back at accept: its own reference and repayment schedule."""
    return {"providerRef": offer.provider_ref, "repayment": offer.repayment.value, "installments": offer.installments}


def _jsonable(message: dict[str, Any]) -> dict[str, Any]:
    return {key: "0x" + value.hex() if isinstance(value, bytes) else value for key, value in message.items()}


def _disclosure_json(disclosure: Disclosure) -> dict[str, Any]:
    # parsed from text: json.loads of bytes first sniffs their encoding in Python (RFC 8785 JSON is UTF-8)
    document: dict[str, Any] = json.loads(disclosure.to_canonical_json().decode())
    return document | {"termsHash": "0x" + disclosure.terms_hash().hex()}
