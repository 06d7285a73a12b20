"""The borrower's exposure at accept: open principal across every chain and lender — what is still owed on active
and defaulted loans, and the accepts in flight — plus the quote being accepted, against risk's limit and the KYC
tier's. Pure: the open principal is read by the repository."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from aggregator.accept_saga import Exposure, QuoteView
from aggregator.assets import AssetRegistry
from aggregator.errors import ExposureLimitExceeded, ExposureUnvalued
from compliance import Product
from compliance.kyc import DEFAULT_TIER_LIMITS, KycStatus, KycTier, TierLimits

PRODUCT_OF_KIND = {"traditional": Product.TRADITIONAL, "pool": Product.DEFI}


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


def check_exposure(
    exposure: Exposure, quote: QuoteView, kyc: KycStatus | None, limits: ExposureLimits, assets: AssetRegistry
) -> None:
    """ExposureLimitExceeded naming the first limit the accept would pass."""
    after = open_principal(exposure, assets) + assets.get(quote.asset).from_base_units(quote.principal)
    risk_limit = Decimal(str(quote.risk_max_amount))
    if after > risk_limit:
        raise ExposureLimitExceeded("risk.max_amount", risk_limit, after)
    tier = kyc.tier if kyc is not None else KycTier.NONE
    ceiling = tier_ceiling(limits.tier_limits, tier, PRODUCT_OF_KIND.get(quote.kind, Product.DEFI))
    if ceiling is not None and after > ceiling:
        raise ExposureLimitExceeded(f"kyc.tier_limit.{tier.name.lower()}", ceiling, after)
