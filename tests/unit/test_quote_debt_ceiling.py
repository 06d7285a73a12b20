"""An offer is quoted only when the collateral carries the debt its schedule reaches — the principal with the
interest accrued on it, as the CollateralManager's health factor counts it — within the LTV limit on its chain
(``aggregator.collateral_limits.DebtCeiling``), not the principal alone. Before, a grade-A loan whose principal sat at
79.99% of the collateral's value was quoted for 365 days at any rate, and the interest it accrued took its health
factor below 1 months before it was due, prices unchanged: the borrower was liquidated without being late."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from aggregator.assets import Asset
from aggregator.collateral_limits import CollateralLimit, DebtCeiling, largest_debt
from aggregator.offer_terms import offer_terms
from aggregator.quote_store import InMemoryQuotingStore
from compliance import ComplianceService, disclose
from providers.models import ProviderKind, ProviderOffer, RepaymentShape
from tests.support.quoting import SPEC, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit

USDC = Asset("USDC", 6, Decimal(1))
WETH = Asset("WETH", 18, Decimal(3000))
START = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
OFFER = ProviderOffer(
    provider_id="bank",
    kind=ProviderKind.TRADITIONAL,
    asset="USDC",
    principal=1_200 * 10**6,
    rate_bps=1_200,
    origination_fee=0,
    term_days=365,
    repayment=RepaymentShape.SINGLE,
    expires_at=datetime(2026, 1, 15, 11, tzinfo=UTC),
    provider_ref="bank-1",
)


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


def test_a_single_payments_debt_is_everything_owed_at_maturity() -> None:
    disclosure = disclose(offer_terms(OFFER, USDC, START)[1])
    assert largest_debt(disclosure) == Decimal("1344.000000"), "1,200 and 12% for a year"


def test_an_amortizing_loans_debt_peaks_before_its_first_installment() -> None:
    monthly = replace(OFFER, repayment=RepaymentShape.INSTALLMENTS, installments=12)
    disclosure = disclose(offer_terms(monthly, USDC, START)[1])
    first = disclosure.payments[0]
    assert largest_debt(disclosure) == Decimal(1200) + first.interest
    assert largest_debt(disclosure) == Decimal(1212), "a month's interest (1%), not a year's"


def test_the_ceiling_is_the_lower_ltv_a_point_under_and_names_the_collateral_that_carries_the_debt() -> None:
    limit = CollateralLimit("ethereum-local", 7_500, 8_000, 10**30, 0, False, False)
    ceiling = DebtCeiling.on("ethereum-local", Decimal(3000), 8_000, limit)
    assert (ceiling.ltv_bps, ceiling.amount) == (7_500, Decimal("2249.700000"))
    assert ceiling.refusal(Decimal("2249.70"), USDC, WETH, 10**18) is None
    assert ceiling.refusal(Decimal("2249.700001"), USDC, WETH, 10**18) is not None
    reason = ceiling.refusal(Decimal("2500"), USDC, WETH, 10**18)
    assert reason == (
        "the debt its schedule reaches, 2500.00 USDC (principal and interest), is above 75.00% of the collateral's "
        "value on ethereum-local (2249.70 USDC): the loan could be liquidated before it is due at today's prices; "
        "1.1113 WETH would carry it"
    )
    assert DebtCeiling.on("x", Decimal(3000), 8_000, None).ltv_bps == 8_000, "no limit read: the grade's"


async def test_an_offer_whose_interest_takes_the_debt_past_the_limit_is_dropped(compliance: ComplianceService) -> None:
    """2,200 USDC on 1 WETH at 3,000 for a year: 73% of the collateral's value, within the grade's 80%. At 8%, 8.5%
    and 9% the debt at maturity stays within 79.99% (2,399.70); at 10% and 11% it does not, and those offers are
    dropped with the reason, the others quoted."""
    service = quoting_service(InMemoryQuotingStore(), compliance)
    quoted = await service.request_credit(borrower_file(), replace(SPEC, amount="2200.00", term_days=365))

    assert quoted.request.status == "quoted"
    assert sorted(int(q.offer["rateBps"]) for q in quoted.quotes) == [800, 850, 900]
    outcomes = {o.provider_id: o for o in quoted.outcomes}
    assert outcomes["fintech"].outcome == "dropped"
    assert outcomes["fintech"].detail.startswith(
        "dropped: the debt its schedule reaches, 2420.00 USDC (principal and interest), is above 80.00% of the "
        "collateral's value on"
    )
    assert outcomes["fintech"].detail.endswith("1.0085 WETH would carry it")
    assert outcomes["bank"].outcome == "offered"
    assert "offer 'bank-1100' dropped: the debt its schedule reaches, 2442.00 USDC" in outcomes["bank"].detail


async def test_a_principal_at_the_limit_is_quoted_for_no_term_that_accrues_interest(
    compliance: ComplianceService,
) -> None:
    """The audit's loan: principal at 79.97% of the collateral's value, a year: every offer's interest takes the debt
    past the limit, so none is quoted (the risk decision itself, on the principal, still approves: the request is
    declined for the collateral, R45, its scoring's verdict under ``assessed``)."""
    service = quoting_service(InMemoryQuotingStore(), compliance)
    quoted = await service.request_credit(borrower_file(), replace(SPEC, amount="2399.00", term_days=365))

    assert quoted.request.risk["assessed"]["approved"] is True
    assert quoted.request.status == "no_offers"
    assert quoted.quotes == []
    assert {o.outcome for o in quoted.outcomes} == {"dropped"}
    assert quoted.request.risk["approved"] is False
    (reason,) = quoted.request.risk["reasons"]
    assert reason["code"] == "R45"
    assert reason["text"].startswith(
        "Collateral not accepted for the amount requested on the networks requested: the debt its schedule reaches"
    )
