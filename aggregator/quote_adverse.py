"""A credit request risk approved that ends with no offer (``no_offers``) is an adverse action (ECOA / Regulation B,
12 CFR 1002.9): the borrower asked for credit and got none. It is answered and recorded as one — its ``risk`` not
approved, for the reasons that held the offers back (``no_offers_risk``), and a credit-request decision record
denying it (``no_offers_record``), as a request refused for the borrower's exposure is
(``aggregator.quote_exposure``).

The reasons are those of the providers' outcomes (``ProviderOutcome.adverse``, each naming its first case): R47 a
product the screening denied, R42 a product past its KYC tier's ceiling, R45 the collateral's terms on the chains
asked, R44 a usury cap (or the MLA's 36% MAPR) every offer was above, and R46 when a lender declined, did not answer,
failed or made no offer the platform could quote — in that order, one per code, at most ``MAX_REASONS``."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aggregator.exposure import PRODUCT_OF_KIND
from aggregator.fanout import ProviderOutcome
from compliance import Product
from compliance.decisions import DecisionKind, DecisionRecord, decide
from compliance.jurisdiction import Reason as ComplianceReason
from providers.base import ProviderAdapter
from risk.policy import RiskDecision
from risk.reasons import (
    COLLATERAL_NOT_ACCEPTED,
    EXCESSIVE_OBLIGATIONS,
    MAX_REASONS,
    NO_LENDER_OFFER,
    PRODUCT_NOT_AVAILABLE,
    RATE_OVER_LEGAL_LIMIT,
    Reason,
)

#: the order the reasons are listed in: the screening's, then the request's own limits, then the lenders'
ORDER = tuple(
    reason.code
    for reason in (
        PRODUCT_NOT_AVAILABLE,
        EXCESSIVE_OBLIGATIONS,
        COLLATERAL_NOT_ACCEPTED,
        RATE_OVER_LEGAL_LIMIT,
        NO_LENDER_OFFER,
    )
)


def case(reason: Reason, detail: str) -> Reason:
    """``reason`` naming its case (``detail``): a provider outcome's adverse-action reason."""
    return Reason(reason.code, f"{reason.text}: {detail}"[:512])


def split_by_screening(
    providers: Sequence[ProviderAdapter],
    allowed: Collection[Product],
    deny: Mapping[Product, Sequence[ComplianceReason]],
) -> tuple[list[ProviderAdapter], list[ProviderOutcome]]:
    """``providers`` split into those of a product the screening ``allowed`` and the outcomes of the others: each
    ``ineligible`` naming its product and the screening's reasons (``deny``: by product), its adverse-action reason
    R47. The providers of a denied product were left out without a trace."""
    asked, left = [], []
    for provider in providers:
        product = PRODUCT_OF_KIND.get(provider.kind)
        if product in allowed:
            asked.append(provider)
            continue
        if product is None:
            left.append(ProviderOutcome(provider.provider_id, "ineligible", f"{provider.kind} is no product", 0))
            continue
        why = "; ".join(r.message for r in deny.get(product, ())) or "the screening did not allow it"
        reason = f"{product.value} loans: {why}"
        adverse = [case(PRODUCT_NOT_AVAILABLE, reason)]
        left.append(ProviderOutcome(provider.provider_id, "ineligible", reason[:512], 0, adverse=adverse))
    return asked, left


def no_offer_reasons(outcomes: Sequence[ProviderOutcome]) -> list[Reason]:
    """Why no offer was kept: each outcome's adverse-action reasons, R46 for one with none (its lender's own doing)
    or when no provider was asked at all; one per code (its first case), in ``ORDER``, at most ``MAX_REASONS``."""
    found: dict[str, Reason] = {}
    for outcome in outcomes:
        for reason in lender_reasons(outcome):
            found.setdefault(reason.code, reason)
    if not found:
        found[NO_LENDER_OFFER.code] = case(NO_LENDER_OFFER, "no lender lends on these terms")
    return sorted(found.values(), key=lambda reason: ORDER.index(reason.code))[:MAX_REASONS]


def lender_reasons(outcome: ProviderOutcome) -> list[Reason]:
    """Why ``outcome``'s lender offered no credit the platform could quote, its own principal reasons (each naming its
    case, in ``ORDER``, at most ``MAX_REASONS``): its adverse-action reasons, or R46 when it was its own doing."""
    found = outcome.adverse or [case(NO_LENDER_OFFER, _lenders_own(outcome))]
    return sorted(found, key=lambda reason: ORDER.index(reason.code))[:MAX_REASONS]


def no_offers_risk(risk: dict[str, Any], reasons: Sequence[Reason]) -> dict[str, Any]:
    """The ``no_offers`` request's ``risk``: denied for ``reasons`` (``denied_risk``)."""
    return denied_risk(risk, [(reason.code, reason.text) for reason in reasons])


def denied_risk(risk: dict[str, Any], reasons: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A request's ``risk`` once it is denied after the scoring approved it (no offer, the borrower's exposure):
    not approved, for ``reasons`` ((code, text) each). The scoring decision stays as ``assess`` made it, signed and
    stored (``decision_hash`` and ``inputs_hash`` name it): its verdict and reasons are kept under ``assessed``."""
    return risk | {
        "approved": False,
        "reasons": [{"code": code, "text": text} for code, text in reasons],
        "assessed": {"approved": risk["approved"], "reasons": risk["reasons"]},
    }


def no_offers_record(
    reasons: Sequence[Reason],
    outcomes: Sequence[ProviderOutcome],
    borrower_id: str,
    request_id: str,
    amount: Decimal,
    decision: RiskDecision,
    now: datetime,
    inputs_key: bytes | None,
    notice: Mapping[str, Any] | None = None,
) -> DecisionRecord:
    """The credit-request decision record denying the request for ``reasons``, so that the decisions list shows it
    refused and why: its inputs the request, the amount asked for, the scoring decision it was approved by and each
    provider's outcome (about the borrower: hashed under ``inputs_key``), and the adverse-action ``notice`` given."""
    shown = {"outcomes": {outcome.provider_id: outcome.outcome for outcome in outcomes}}
    compliance_reasons = [ComplianceReason(reason.code, reason.text) for reason in reasons]
    return request_denial(compliance_reasons, shown, borrower_id, request_id, amount, decision, now, inputs_key, notice)


def request_denial(
    reasons: Sequence[ComplianceReason],
    why: Mapping[str, Any],
    borrower_id: str,
    request_id: str,
    amount: Decimal,
    decision: RiskDecision,
    now: datetime,
    inputs_key: bytes | None,
    notice: Mapping[str, Any] | None = None,
) -> DecisionRecord:
    """A credit-request decision record denying request ``request_id`` after the scoring ``decision`` (an adverse
    action the scoring did not decide: no offer, the borrower's exposure): its inputs the request, the amount asked
    for, the decision's hash, ``why`` and the adverse-action ``notice`` the borrower was given (about the borrower:
    hashed under ``inputs_key``, so the record commits to the notice the request keeps), its reasons ``reasons``."""
    inputs: dict[str, Any] = {
        "requestId": request_id,
        "amount": amount,
        "riskDecisionHash": "0x" + decision.decision_hash().hex(),
        **why,
    }
    if notice is not None:
        inputs["adverseActionNotice"] = dict(notice)
    return decide(
        DecisionKind.CREDIT_REQUEST,
        borrower_id,
        inputs,
        list(reasons),
        {"policy": decision.policy_version},
        now,
        inputs_key=inputs_key,
    )


def _lenders_own(outcome: ProviderOutcome) -> str:
    """The case of an outcome its lender decided: a decline or an ineligibility with its reason (the lender's words,
    or its capabilities'), a timeout, a failure or offers not its own by the outcome alone (a failure's detail is the
    platform's diagnosis, not the borrower's)."""
    named = f"{outcome.provider_id} {outcome.outcome}"
    return f"{named}: {outcome.detail}" if outcome.outcome in ("declined", "ineligible") else named
