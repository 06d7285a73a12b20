"""Stored rows → API output schemas, in one place."""

from __future__ import annotations

from typing import Any

from aggregator.assets import AssetRegistry
from aggregator.offers import acceptance_document
from api.schemas import CollateralIn, CreditRequestOut, DisclosureOut, LoanOut, ProviderOutcomeOut, QuoteOut
from store.aggregator import CreditRequestRow, LoanRow, ProviderOutcomeRow, QuoteRow


def _jsonable_document(document: dict[str, object]) -> dict[str, object]:
    def convert(value: object) -> object:
        if isinstance(value, bytes):
            return "0x" + value.hex()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {k: convert(v) for k, v in document.items()}


def disclosure_out(stored: dict[str, Any]) -> DisclosureOut:
    document = {k: v for k, v in stored.items() if k != "termsHash"}
    return DisclosureOut(
        apr=document["annualPercentageRate"],
        finance_charge=document["financeCharge"],
        amount_financed=document["amountFinanced"],
        total_of_payments=document["totalOfPayments"],
        origination_fee=document["prepaidFinanceCharges"]["originationFee"],
        payments=document["payments"],
        terms_hash=stored["termsHash"],
        document=document,
    )


def quote_out(row: QuoteRow, request: CreditRequestRow, assets: AssetRegistry) -> QuoteOut:
    asset = assets.get(request.asset)
    offer = {k: v for k, v in row.offer.items() if k != "providerRef"}
    return QuoteOut(
        id=row.id,
        rank=row.rank,
        provider_id=row.provider_id,
        kind=row.kind,
        chain=row.chain_name,
        chain_id=row.chain_id,
        contract=row.contract,
        asset=request.asset,
        principal=asset.format(int(row.offer["principal"])),
        rate_bps=int(row.offer["rateBps"]),
        term_days=int(row.disclosure["termDays"]),
        collateral=CollateralIn(asset=request.collateral_asset, amount=request.collateral_amount),
        disclosure=disclosure_out(row.disclosure),
        expires_at=row.expires_at.isoformat().replace("+00:00", "Z"),
        status=row.status,
        offer=offer,
        offer_signature=row.offer_signature,
        acceptance_typed_data=_jsonable_document(acceptance_document(row)),
    )


def credit_request_out(
    request: CreditRequestRow, quotes: list[QuoteRow], outcomes: list[ProviderOutcomeRow], assets: AssetRegistry
) -> CreditRequestOut:
    return CreditRequestOut(
        id=request.id,
        status=request.status,
        risk=request.risk,
        quotes=[quote_out(q, request, assets) for q in sorted(quotes, key=lambda q: q.rank)],
        provider_outcomes=[
            ProviderOutcomeOut(provider_id=o.provider_id, outcome=o.outcome, detail=o.detail, latency_ms=o.latency_ms)
            for o in outcomes
        ],
    )


def loan_out(loan: LoanRow, assets: AssetRegistry) -> LoanOut:
    return LoanOut(
        id=loan.id,
        quote_id=loan.quote_id,
        status=loan.status,
        provider_id=loan.provider_id,
        chain=loan.chain_name,
        chain_id=loan.chain_id,
        contract=loan.contract,
        onchain_loan_id=None if loan.onchain_loan_id is None else str(loan.onchain_loan_id),
        transaction_hash=loan.tx_hash,
        block_number=loan.block_number,
        asset=loan.asset,
        principal=assets.get(loan.asset).format(loan.principal),
        created_at=loan.created_at.isoformat().replace("+00:00", "Z"),
    )
