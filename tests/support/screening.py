"""The accept's re-screen (``ComplianceService.screen_acceptance``) for the tests of what it screens besides the KYC
status: a borrower verified at STANDARD accepting a 1,000 USDC DeFi quote, which that tier covers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from compliance import BorrowerFacts, ComplianceService, DecisionRecord, Product
from compliance.kyc import KycState, KycStatus, KycTier

VERIFIED = KycStatus("applicant-1", "b-1", KycState.APPROVED, KycTier.STANDARD, (), datetime(2026, 1, 1, tzinfo=UTC))


def screen_accept(service: ComplianceService, borrower: BorrowerFacts, quote_id: str) -> DecisionRecord:
    """The accept of ``quote_id`` by ``borrower``, whose KYC is approved at a tier the quote needs no more than."""
    return service.screen_acceptance(borrower, quote_id, kyc=VERIFIED, product=Product.DEFI, amount=Decimal("1000"))
