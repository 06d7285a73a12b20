"""The borrower's exposure: open principal across every chain and lender — what is still owed on active and
defaulted loans, and the accepts in flight — plus the loan asked for, against risk's limit and the KYC tier's.
Checked when the credit request is quoted (``exposure_at_quote``: a request past risk's limit is refused, a product
past its tier's ceiling is not offered) and again at accept (``check_exposure``: a loan may open between the two).
Pure: the open principal is read by the repository."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from aggregator.accept_saga import QuoteView
from aggregator.assets import AssetRegistry
from aggregator.errors import ExposureLimitExceeded, ExposureUnvalued
from aggregator.owed import Exposure
from compliance import Product
from compliance.kyc import DEFAULT_TIER_LIMITS, KycStatus, KycTier, TierLimits

PRODUCT_OF_KIND = {"traditional": Product.TRADITIONAL, "pool": Product.DEFI}
#: the name of risk's limit in an ``ExposureLimitExceeded`` (the KYC tier's: ``kyc.tier_limit.<tier>``)
RISK_LIMIT = "risk.max_amount"


@dataclass(frozen=True, slots=True)
class ExposureLimits:
    tier_limits: TierLimits = DEFAULT_TIER_LIMITS


def open_principal(exposure: Exposure, assets: AssetRegistry) -> Decimal:
    """Every asset lent is USD-pegged: the open principal in asset units, summed. ExposureUnvalued for an asset the
    registry does not list (the ledger names such a token by its address): left out, the sum would be too low."""
    listed = set(assets.symbols())
    unvalued = sorted(symbol for symbol, amount in exposure.by_asset.items() if amount and symbol not in listed)
    if unvalued:
        raise ExposureUnvalued(", ".join(unvalued))
    return sum((assets.get(symbol).from_base_units(amount) for symbol, amount in exposure.by_asset.items()), Decimal(0))


def tier_ceiling(limits: TierLimits, tier: KycTier, product: Product) -> Decimal | None:
    """The most a borrower of ``tier`` may owe for ``product`` (None: no ceiling, the top tier)."""
    if tier >= KycTier.ENHANCED:
        return None
    allowed = [ceiling for required, ceiling in limits.limits[product] if required <= tier]
    return max(allowed) if allowed else Decimal(0)


def exposure_limit(
    owed: Decimal, amount: Decimal, risk_limit: Decimal, kyc: KycStatus | None, product: Product, limits: ExposureLimits
) -> ExposureLimitExceeded | None:
    """The first limit that ``owed`` (the open principal) with a loan of ``amount`` of ``product`` would pass — risk's
    ``risk_limit``, then the KYC tier's ceiling — as its refusal; None when it passes neither."""
    after = owed + amount
    if after > risk_limit:
        return ExposureLimitExceeded(RISK_LIMIT, risk_limit, after, owed)
    tier = kyc.tier if kyc is not None else KycTier.NONE
    ceiling = tier_ceiling(limits.tier_limits, tier, product)
    if ceiling is not None and after > ceiling:
        return ExposureLimitExceeded(f"kyc.tier_limit.{tier.name.lower()}", ceiling, after, owed)
    return None


def check_exposure(
    exposure: Exposure, quote: QuoteView, kyc: KycStatus | None, limits: ExposureLimits, assets: AssetRegistry
) -> None:
    """ExposureLimitExceeded naming the first limit the accept would pass."""
    refusal = exposure_limit(
        open_principal(exposure, assets),
        assets.get(quote.asset).from_base_units(quote.principal),
        Decimal(str(quote.risk_max_amount)),
        kyc,
        PRODUCT_OF_KIND.get(quote.kind, Product.DEFI),
        limits,
    )
    if refusal is not None:
        raise refusal


def exposure_at_quote(
    owed: Decimal,
    amount: Decimal,
    risk_limit: Decimal,
    kyc: KycStatus | None,
    products: Collection[Product],
    limits: ExposureLimits,
) -> dict[Product, ExposureLimitExceeded]:
    """A credit request's exposure before its lenders are asked, as its accept would check it: ExposureLimitExceeded
    when ``owed`` with ``amount`` passes risk's ``risk_limit`` (no offer could be accepted) or the KYC tier's ceiling of
    every one of ``products`` (the largest ceiling named); else the products whose ceiling it passes, each with the
    refusal its accept would meet (their lenders are not asked)."""
    if (after := owed + amount) > risk_limit:
        raise ExposureLimitExceeded(RISK_LIMIT, risk_limit, after, owed)
    passed = {
        product: refusal
        for product in products
        if (refusal := exposure_limit(owed, amount, risk_limit, kyc, product, limits)) is not None
    }
    if passed and len(passed) == len(set(products)):
        raise max(passed.values(), key=lambda refusal: refusal.ceiling)
    return passed
