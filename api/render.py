"""Stored rows → API output schemas, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, Context, Decimal
from functools import lru_cache
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from pydantic_core import to_json

from aggregator.assets import Asset, AssetRegistry
from aggregator.installments import DueInstallment, schedule_from_disclosure
from aggregator.loans import ChainRef, LoanDetail, LoanRecord
from aggregator.quote_store import CreditRequestRecord, QuotedRequest, QuoteRecord
from aggregator.repaying import RepaymentOutcome
from aggregator.servicing.delinquency import Delinquency
from api.loan_schemas import (
    AmountOut,
    ChainRefOut,
    CollateralMovementOut,
    LiquidationOut,
    LiveFiguresOut,
    LoanOut,
    RepaymentOut,
    RepaymentResultOut,
)
from api.schemas import CreditRequestOut, DisclosureOut, InstallmentOut, QuoteOut
from contracts.typed_data import OFFER_FIELDS, TEXT_INTEGER_TYPES, Domain, acceptance_json_typed_data

HEALTH = Decimal("0.0001")  # the health factor shown to four places, rounded down (towards liquidation)
_WIDE = Context(prec=100)  # room for a uint256 health factor and its four places
CENT = Decimal("0.01")


@lru_cache(maxsize=4096)
def _checksummed(address: str) -> ChecksumAddress:
    return to_checksum_address(address)


def _offer_value(kind: str, value: Any) -> Any:
    """A stored offer field as the API shows it: what ``aggregator.offers`` reads it as, with its bytes written back
    as 0x-hex (lower case) and a uint256 as a decimal string (``TEXT_INTEGER_TYPES``)."""
    if kind == "bytes32":
        return "0x" + bytes.fromhex(str(value).removeprefix("0x")).hex()
    if kind == "address":
        return _checksummed(value)
    if kind in TEXT_INTEGER_TYPES:
        return str(int(value))
    return int(value)


def offer_json(row: QuoteRecord) -> dict[str, Any]:
    """The signed EIP-712 offer of a stored quote as JSON values (``OfferOut``'s fields, in its order): the quote's
    ``offer``, and the offer in its ``acceptance_typed_data``."""
    return {f["name"]: _offer_value(f["type"], row.offer[f["name"]]) for f in OFFER_FIELDS}


def acceptance_json(row: QuoteRecord, offer: dict[str, Any] | None = None) -> dict[str, Any]:
    """``aggregator.offers.acceptance_document(row)`` — the EIP-712 acceptance the borrower's wallet signs — as JSON
    values (bytes as 0x-hex, each uint256 a decimal string, which a JavaScript wallet reads exactly), built from the
    stored offer's JSON values directly (``offer``: ``offer_json(row)`` when already rendered): the document used to
    be built with bytes and walked to write them back as hex, a third of rendering a quote (a unit test compares the
    two digests)."""
    offer = offer_json(row) if offer is None else offer
    return acceptance_json_typed_data(Domain(row.chain_id, _checksummed(row.contract)), offer)


def disclosure_fields(stored: dict[str, Any]) -> dict[str, Any]:
    """``DisclosureOut``'s fields, in its order."""
    document = {k: v for k, v in stored.items() if k != "termsHash"}
    return {
        "apr": document["annualPercentageRate"],
        "finance_charge": document["financeCharge"],
        "amount_financed": document["amountFinanced"],
        "total_of_payments": document["totalOfPayments"],
        "origination_fee": document["prepaidFinanceCharges"]["originationFee"],
        "payments": document["payments"],
        "terms_hash": stored["termsHash"],
        "document": document,
    }


def disclosure_out(stored: dict[str, Any]) -> DisclosureOut:
    return DisclosureOut.model_validate(disclosure_fields(stored))


def quote_fields(row: QuoteRecord, request: CreditRequestRecord, assets: AssetRegistry) -> dict[str, Any]:
    """``QuoteOut``'s fields in its order, nested models as their fields, each value of the type the model's
    validation keeps (str, int, plain dicts and lists): ``quote_out`` validates them into the model, and
    ``credit_request_json`` writes them as JSON directly, the same bytes (tests/unit/api/test_render_json.py)."""
    asset = assets.get(request.asset)
    offer = offer_json(row)  # the signed fields only: the lender's own terms (its reference, repayment) stay ours
    return {
        "id": row.id,
        "rank": row.rank,
        "provider_id": row.provider_id,
        "kind": row.kind,
        "chain": row.chain_name,
        "chain_id": row.chain_id,
        "contract": row.contract,
        "asset": request.asset,
        "principal": asset.format(int(row.offer["principal"])),
        "rate_bps": int(row.offer["rateBps"]),
        "term_days": int(row.disclosure["termDays"]),
        "collateral": {"asset": request.collateral_asset, "amount": request.collateral_amount},
        "repayment": str(row.disclosure.get("repayment", "single-payment")),
        "schedule": [_installment_fields(i, asset) for i in schedule_from_disclosure(row.disclosure)],
        "disclosure": disclosure_fields(row.disclosure),
        "expires_at": row.expires_at.isoformat().replace("+00:00", "Z"),
        "status": row.status,
        "offer": offer,
        "offer_signature": row.offer_signature,
        "acceptance_typed_data": acceptance_json(row, offer),
    }


def quote_out(row: QuoteRecord, request: CreditRequestRecord, assets: AssetRegistry) -> QuoteOut:
    return QuoteOut.model_validate(quote_fields(row, request, assets))


def credit_request_fields(quoted: QuotedRequest, assets: AssetRegistry, loan_id: str | None = None) -> dict[str, Any]:
    """``CreditRequestOut``'s fields in its order (as ``quote_fields``)."""
    request = quoted.request
    return {
        "id": request.id,
        "status": request.status,
        "loan_id": loan_id,
        "risk": request.risk,
        "quotes": [quote_fields(q, request, assets) for q in sorted(quoted.quotes, key=lambda q: q.rank)],
        "provider_outcomes": [
            {"provider_id": o.provider_id, "outcome": o.outcome, "detail": o.detail, "latency_ms": o.latency_ms}
            for o in quoted.outcomes
        ],
    }


def credit_request_out(quoted: QuotedRequest, assets: AssetRegistry, loan_id: str | None = None) -> CreditRequestOut:
    return CreditRequestOut.model_validate(credit_request_fields(quoted, assets, loan_id))


def credit_request_json(quoted: QuotedRequest, assets: AssetRegistry, loan_id: str | None = None) -> bytes:
    """The credit request as FastAPI would write ``credit_request_out``'s model (``response_model``
    ``CreditRequestOut``), byte for byte, without building and validating ~60 models a request first: pydantic-core
    writes the plain fields with the serializer it uses for the model's ``dict[str, Any]`` fields."""
    return to_json(credit_request_fields(quoted, assets, loan_id))


def _amount(assets: AssetRegistry, chain_name: str, token: str | None, base_units: int) -> AmountOut:
    asset = None if token is None else assets.by_address(chain_name, token)
    return AmountOut(
        asset=asset.symbol if asset is not None else (token or ""),
        amount=asset.format(base_units) if asset is not None else None,
        base_units=str(base_units),
    )


def _installment_fields(installment: DueInstallment, asset: Asset | None) -> dict[str, Any]:
    """``InstallmentOut``'s fields, in its order."""
    return {
        "number": installment.number,
        "due": installment.due.isoformat(),
        "amount": _money(asset, installment.amount) or "",
        "principal": _money(asset, installment.principal) or "",
        "interest": _money(asset, installment.interest) or "",
    }


def _installment_out(installment: DueInstallment, asset: Asset | None) -> InstallmentOut:
    return InstallmentOut.model_validate(_installment_fields(installment, asset))


def _money(asset: Asset | None, base_units: int | None) -> str | None:
    if base_units is None:
        return None
    return asset.format(base_units) if asset is not None else str(base_units)


def _where(ref: ChainRef) -> ChainRefOut:
    return ChainRefOut(
        block_number=ref.block_number,
        block_hash=ref.block_hash,
        transaction_hash=ref.tx_hash,
        log_index=ref.log_index,
    )


def _debt_asset(loan: LoanRecord, assets: AssetRegistry) -> Asset | None:
    """The loan's asset by its token on the loan's chain, else by the symbol the deployment record gave it: every
    amount of one loan is rendered in the same units (base units only when neither is listed)."""
    asset = assets.by_address(loan.chain_name, loan.asset_address) if loan.asset_address else None
    if asset is None and loan.asset in assets.symbols():
        asset = assets.get(loan.asset)
    return asset


def loan_out(loan: LoanRecord, assets: AssetRegistry, past_due: Delinquency | None = None) -> LoanOut:
    """A loan as lists show it: the ledger's record, without entries or live figures; ``past_due`` read when
    listed."""
    asset = _debt_asset(loan, assets)
    collateral = None
    if loan.collateral_asset is not None:
        collateral = _amount(assets, loan.chain_name, loan.collateral_asset, loan.collateral_amount or 0)
    return LoanOut(
        id=loan.id,
        quote_id=loan.quote_id,
        status=loan.status,
        flags=[flag.value for flag in loan.flags],
        provider_id=loan.provider_id,
        chain=loan.chain_name,
        chain_id=loan.chain_id,
        contract=loan.contract,
        onchain_loan_id=None if loan.onchain_loan_id is None else str(loan.onchain_loan_id),
        offer_digest=loan.offer_digest,
        transaction_hash=loan.tx_hash,
        block_number=loan.block_number,
        block_hash=loan.block_hash,
        borrower_address=loan.borrower_address,
        funder=loan.funder,
        asset=loan.asset,
        principal=_money(asset, loan.principal) or "",
        rate_bps=loan.rate_bps,
        term_seconds=loan.term_seconds,
        origination_fee=_money(asset, loan.origination_fee),
        outstanding_principal=_money(asset, loan.outstanding_principal),
        interest_paid=_money(asset, loan.interest_paid),
        principal_paid=_money(asset, loan.principal_paid),
        collateral=collateral,
        created_at=loan.created_at.isoformat().replace("+00:00", "Z"),
        days_past_due=None if past_due is None else past_due.days_past_due,
        delinquency_bucket=None if past_due is None else past_due.bucket.value,
    )


def loan_detail_out(detail: LoanDetail, assets: AssetRegistry) -> LoanOut:
    """One loan: the record, every repayment, collateral movement and liquidation, and live figures."""
    loan, entries = detail.loan, detail.entries
    out = loan_out(loan, assets)
    asset = _debt_asset(loan, assets)
    out.schedule = [_installment_out(i, asset) for i in detail.schedule]
    out.repayments = [
        RepaymentOut(
            payer=r.payer,
            interest_paid=_money(asset, r.interest_paid) or "",
            principal_paid=_money(asset, r.principal_paid) or "",
            outstanding_principal=_money(asset, r.outstanding_principal) or "",
            payment_ref=None if int(r.payment_ref, 16) == 0 else r.payment_ref,
            chain=_where(r.where),
        )
        for r in entries.repayments
    ]
    out.collateral_movements = [
        CollateralMovementOut(
            direction=m.direction,
            account=m.account,
            amount=_amount(assets, loan.chain_name, m.asset, m.amount),
            chain=_where(m.where),
        )
        for m in entries.collateral_movements
    ]
    out.liquidations = [
        LiquidationOut(
            liquidator=q.liquidator,
            debt_repaid=_money(asset, q.debt_repaid) or "",
            collateral_seized=_amount(assets, loan.chain_name, loan.collateral_asset, q.collateral_seized),
            chain=_where(q.where),
        )
        for q in entries.liquidations
    ]
    if detail.live is not None:
        live = detail.live
        out.live = LiveFiguresOut(
            block_number=live.block,
            principal_owed=_money(asset, live.principal_owed) or "",
            interest_owed=_money(asset, live.interest_owed) or "",
            total_owed=_money(asset, live.total_owed) or "",
            health_factor=None if live.health_factor is None else health_factor_text(live.health_factor),
            health_factor_error=live.health_error,
            liquidatable=live.liquidatable,
            liquidation_threshold_bps=live.liquidation_threshold_bps,
            liquidation_price_usd=None if live.liquidation_price is None else usd_up(live.liquidation_price),
            maturity=datetime.fromtimestamp(live.maturity, UTC).isoformat().replace("+00:00", "Z")
            if live.maturity
            else None,
            days_past_due=live.delinquency.days_past_due,
            delinquency_bucket=live.delinquency.bucket.value,
        )
        out.days_past_due, out.delinquency_bucket = live.delinquency.days_past_due, live.delinquency.bucket.value
    out.live_error = detail.live_error
    return out


def usd_up(amount: Decimal) -> str:
    """A USD amount to the cent, rounded up."""
    return format(amount.quantize(CENT, rounding=ROUND_CEILING, context=_WIDE), "f")


def health_factor_text(factor: Decimal) -> str:
    """A health factor to four places, rounded down (towards liquidation), whatever its size."""
    return format(factor.quantize(HEALTH, rounding=ROUND_DOWN, context=_WIDE), "f")


def repayment_out(outcome: RepaymentOutcome, loan: LoanOut, assets: AssetRegistry) -> RepaymentResultOut:
    """A relayed repayment (``aggregator.repaying``) with the loan after it."""
    asset = assets.get(loan.asset) if loan.asset in assets.symbols() else None
    confirmed = outcome.status == "confirmed"
    return RepaymentResultOut(
        loan_id=outcome.loan_id,
        status=outcome.status,
        transaction_hash=outcome.tx_hash,
        block_number=outcome.block_number,
        interest_paid=_money(asset, outcome.interest_paid) if confirmed else None,
        principal_paid=_money(asset, outcome.principal_paid) if confirmed else None,
        outstanding_principal=_money(asset, outcome.outstanding_principal),
        closed=outcome.closed,
        collateral_claim_transaction=outcome.collateral_claim_tx,
        loan=loan,
    )
