"""A credit request's exposure before its lenders are asked, so that what a borrower is quoted is what they may
accept: the borrower's open principal (``QuotingStore.open_principal``: every chain and lender, the accepts in flight,
read without a lock while the borrower is screened) with the amount asked for, against the risk decision's
``max_amount`` and the KYC tier's ceiling of each product (``aggregator.exposure.exposure_at_quote``).

A request past risk's limit, or past the ceiling of every product its lenders offer, is refused with the accept's
problem (409 ``exposure-limit``; 409 ``exposure-unvalued`` when an open loan is in an asset the platform does not
list): recorded as a declined request — its risk decision as ``assess`` made it, the screening's records, a
credit-request decision record denying it for the exposure (``refusal_record``: reason R42 or R43, the open principal
and the limit named), and in its ``risk`` the refusal (``refused_risk``: ``approved`` false, the refusal's reason) —
and never fanned out. The providers of a product past its
ceiling are left out, ``ineligible`` with the ceiling named (``split_by_exposure``). The accept checks again, under
the borrower's lock (``aggregator.exposure.check_exposure``): a loan may open between the quote and the accept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aggregator.assets import AssetRegistry
from aggregator.errors import ExposureLimitExceeded, ExposureUnvalued
from aggregator.exposure import PRODUCT_OF_KIND, ExposureLimits, exposure_at_quote, open_principal
from aggregator.fanout import ProviderOutcome
from aggregator.owed import Exposure
from aggregator.quote_adverse import case, denied_risk, request_denial
from compliance.decisions import DecisionRecord
from compliance.jurisdiction import Reason
from compliance.kyc import KycStatus
from providers.base import ProviderAdapter
from risk.policy import RiskDecision
from risk.reasons import EXCESSIVE_OBLIGATIONS, UNVALUED_OBLIGATIONS

#: what refuses a credit request for the borrower's exposure
ExposureRefusal = ExposureLimitExceeded | ExposureUnvalued


def split_by_exposure(
    providers: Sequence[ProviderAdapter],
    exposure: Exposure,
    amount: Decimal,
    risk_limit: Decimal,
    kyc: KycStatus | None,
    limits: ExposureLimits,
    assets: AssetRegistry,
) -> tuple[Decimal, list[ProviderAdapter], list[ProviderOutcome]]:
    """The open principal, and ``providers`` split into those to ask and the outcomes of those left out: a provider
    whose product's KYC-tier ceiling the open principal with ``amount`` would pass is ``ineligible``, the ceiling
    named. Raises ``ExposureRefusal`` when no accept could take the request: past ``risk_limit`` (risk's
    ``max_amount``), past every product's ceiling, or an open loan that cannot be valued."""
    owed = open_principal(exposure, assets)
    products = {PRODUCT_OF_KIND[provider.kind] for provider in providers if provider.kind in PRODUCT_OF_KIND}
    passed = exposure_at_quote(owed, amount, risk_limit, kyc, products, limits)
    asked, left = [], []
    for provider in providers:
        product = PRODUCT_OF_KIND.get(provider.kind)
        refusal = passed.get(product) if product is not None else None
        if refusal is None:
            asked.append(provider)
        else:
            assert product is not None
            reason = f"{product.value} loans: {refusal}"[:512]
            adverse = [case(EXCESSIVE_OBLIGATIONS, reason)]
            left.append(ProviderOutcome(provider.provider_id, "ineligible", reason, 0, adverse=adverse))
    return owed, asked, left


def refusal_summary(refusal: ExposureRefusal) -> dict[str, Any]:
    """What a refused request records in its ``risk`` (``exposure``): the problem it was answered with, and for a
    limit its figures as the problem names them."""
    if isinstance(refusal, ExposureUnvalued):
        return {"refused": "exposure-unvalued", "detail": str(refusal)}
    return {
        "refused": "exposure-limit",
        "detail": str(refusal),
        "limit": refusal.limit,
        "limit_amount": str(refusal.ceiling),
        "open_principal": str(refusal.owed),
        "open_principal_after": str(refusal.after),
    }


def refusal_reason(refusal: ExposureRefusal) -> Reason:
    """The adverse-action reason of a refusal (R42 past a limit, R43 an open loan not valued), its message naming the
    figures as the problem does."""
    reason = UNVALUED_OBLIGATIONS if isinstance(refusal, ExposureUnvalued) else EXCESSIVE_OBLIGATIONS
    return Reason(reason.code, f"{reason.text}: {refusal}")


def refused_risk(risk: dict[str, Any], refusal: ExposureRefusal) -> dict[str, Any]:
    """The refused request's ``risk``: denied for the refusal's reason (``quote_adverse.denied_risk``: the scoring's
    verdict kept under ``assessed``), the refusal's figures under ``exposure``."""
    reason = refusal_reason(refusal)
    return denied_risk(risk, [(reason.code, reason.message)]) | {"exposure": refusal_summary(refusal)}


def refusal_record(
    refusal: ExposureRefusal,
    borrower_id: str,
    request_id: str,
    amount: Decimal,
    decision: RiskDecision,
    now: datetime,
    inputs_key: bytes | None,
    notice: Mapping[str, Any] | None = None,
) -> DecisionRecord:
    """The credit-request decision record denying the request for the exposure, so that the decisions list shows
    the request refused and why: its inputs the request, the amount asked for, the scoring decision it was refused
    after, the refusal's figures and the adverse-action ``notice`` (about the borrower: hashed under ``inputs_key``)."""
    why = {"exposure": refusal_summary(refusal)}
    reasons = [refusal_reason(refusal)]
    return request_denial(reasons, why, borrower_id, request_id, amount, decision, now, inputs_key, notice)
