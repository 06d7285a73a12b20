"""A credit request is quoted only what its accept may take (``aggregator.quote_exposure``): the borrower's open
principal with the amount asked for, against the risk decision's ``max_amount`` and the KYC tier's ceiling of each
product. The pure decision, then the quoting service on the in-memory store (real compliance and signers, in-process
lenders): a request past risk's limit is refused before any lender is asked and recorded declined; the lenders of a
product past its tier's ceiling are left out, named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.assets import Asset, AssetRegistry
from aggregator.errors import ExposureLimitExceeded, ExposureUnvalued
from aggregator.exposure import ExposureLimits, exposure_at_quote
from aggregator.owed import Exposure
from aggregator.quote_exposure import split_by_exposure
from aggregator.quote_store import InMemoryQuotingStore
from api import problems
from compliance import ComplianceService, Product
from compliance.decisions import DecisionKind, Outcome
from compliance.kyc import KycState, KycStatus, KycTier
from providers.models import Decline, ProviderKind, ProviderOffer, QuoteRequest
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit

USDC = 10**6
ASSETS = AssetRegistry([Asset("USDC", 6, Decimal(1), {}), Asset("WETH", 18, Decimal(3000), {})])
BOTH = (Product.TRADITIONAL, Product.DEFI)


def _kyc(tier: KycTier) -> KycStatus:
    return KycStatus("applicant-1", "b1", KycState.APPROVED, tier, (), datetime.now(UTC))


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


# ---------------------------------------------------------------------------------------------- the decision


def test_a_request_past_risks_limit_with_what_is_open_is_refused_naming_both() -> None:
    with pytest.raises(ExposureLimitExceeded) as refused:
        exposure_at_quote(
            Decimal(1000), Decimal(1500), Decimal("2399.7"), _kyc(KycTier.STANDARD), BOTH, ExposureLimits()
        )
    assert (refused.value.limit, refused.value.ceiling) == ("risk.max_amount", Decimal("2399.7"))
    assert (refused.value.owed, refused.value.after) == (Decimal(1000), Decimal(2500))
    assert "open principal would be 2500 with this loan (1000 open now)" in str(refused.value)
    assert "above the risk.max_amount limit of 2399.7" in str(refused.value)
    # exactly at the limit is within it
    assert (
        exposure_at_quote(Decimal(900), Decimal(1500), Decimal(2400), _kyc(KycTier.STANDARD), BOTH, ExposureLimits())
        == {}
    )


def test_a_product_past_its_tier_ceiling_is_named_and_the_others_kept() -> None:
    passed = exposure_at_quote(Decimal(500), Decimal(600), Decimal(2400), _kyc(KycTier.BASIC), BOTH, ExposureLimits())
    assert set(passed) == {Product.TRADITIONAL}  # 1,100 past BASIC's 1,000 for a traditional loan, within its 2,500
    assert (passed[Product.TRADITIONAL].limit, passed[Product.TRADITIONAL].ceiling) == (
        "kyc.tier_limit.basic",
        Decimal(1000),
    )
    assert exposure_at_quote(Decimal(0), Decimal(600), Decimal(2400), _kyc(KycTier.BASIC), BOTH, ExposureLimits()) == {}


def test_a_request_past_every_products_ceiling_is_refused_naming_the_largest() -> None:
    with pytest.raises(ExposureLimitExceeded) as refused:
        exposure_at_quote(Decimal(2000), Decimal(600), Decimal(5000), _kyc(KycTier.BASIC), BOTH, ExposureLimits())
    assert (refused.value.limit, refused.value.ceiling) == ("kyc.tier_limit.basic", Decimal(2500))
    # only the product the lenders offer counts: past the traditional ceiling with no pool asked is refused
    with pytest.raises(ExposureLimitExceeded) as alone:
        exposure_at_quote(
            Decimal(500), Decimal(600), Decimal(5000), _kyc(KycTier.BASIC), (Product.TRADITIONAL,), ExposureLimits()
        )
    assert alone.value.ceiling == Decimal(1000)
    # the top tier has no ceiling: only risk's limit holds
    assert (
        exposure_at_quote(Decimal(9000), Decimal(600), Decimal(10_000), _kyc(KycTier.ENHANCED), BOTH, ExposureLimits())
        == {}
    )


def test_the_lenders_of_a_product_past_its_ceiling_are_left_out_ineligible_naming_it() -> None:
    bank = FixedRateLender("bank", ProviderKind.TRADITIONAL, [900])
    pool = FixedRateLender("pool:ethereum-local", ProviderKind.POOL, [800], chain="ethereum-local")
    owed, asked, left = split_by_exposure(
        [bank, pool],
        Exposure({"USDC": 500 * USDC}),
        Decimal(600),
        Decimal(2400),
        _kyc(KycTier.BASIC),
        ExposureLimits(),
        ASSETS,
    )
    assert owed == Decimal(500)
    assert asked == [pool]
    (outcome,) = left
    assert (outcome.provider_id, outcome.outcome) == ("bank", "ineligible")
    assert outcome.detail.startswith("traditional loans: open principal would be 1100.000000 with this loan")
    assert "kyc.tier_limit.basic limit of 1000" in outcome.detail


def test_an_open_loan_in_an_unlisted_asset_refuses_the_request() -> None:
    unlisted = "0x" + "ab" * 20
    with pytest.raises(ExposureUnvalued):
        split_by_exposure(
            [], Exposure({unlisted: 5}), Decimal(600), Decimal(2400), _kyc(KycTier.STANDARD), ExposureLimits(), ASSETS
        )


# ---------------------------------------------------------------------------------------------- the quoting service


class _CountingLender(FixedRateLender):
    """A bank that counts the requests it is asked for offers."""

    asked = 0

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        self.asked += 1
        return await super().quote(request)


async def test_a_request_no_accept_could_take_is_refused_before_the_lenders_and_recorded_declined(
    compliance: ComplianceService,
) -> None:
    store = InMemoryQuotingStore()
    lender = _CountingLender("counting-bank", ProviderKind.TRADITIONAL, [950])
    service = quoting_service(store, compliance, more=[lender])
    within = await service.request_credit(borrower_file(), SPEC)  # 1,500 USDC on 1 WETH, nothing open
    limit = Decimal(within.request.risk["max_amount"])
    assert within.request.risk["exposure"] == {"open_principal": "0"}
    assert lender.asked == 1

    store.tables.owed["b1"] = {"USDC": 1_000 * USDC}  # a loan of 1,000 open: 2,500 is past risk's limit
    with pytest.raises(ExposureLimitExceeded) as refused:
        await service.request_credit(borrower_file(), SPEC)
    assert lender.asked == 1, "no lender is asked for an offer that cannot close"
    assert (refused.value.limit, refused.value.ceiling) == ("risk.max_amount", limit)
    assert (refused.value.owed, refused.value.after) == (Decimal("1000.000000"), Decimal("2500.000000"))
    request_id = refused.value.request_id
    assert request_id is not None
    declined = store.tables.requests[request_id]
    assert declined.request.status == "declined"
    assert (declined.quotes, declined.outcomes) == ([], [])
    # not approved, for the exposure: the scoring's verdict (which approved) kept under ``assessed``
    risk = declined.request.risk
    assert risk["approved"] is False
    assert risk["reasons"] == [
        {"code": "R42", "text": f"Existing credit obligations too high for the amount requested: {refused.value}"}
    ]
    assert risk["assessed"] == {"approved": True, "reasons": within.request.risk["reasons"]}
    assert risk["decision_hash"] == "0x" + store.tables.risk_decisions[-1].decision.decision_hash().hex()
    assert declined.request.risk["exposure"] == {
        "refused": "exposure-limit",
        "detail": str(refused.value),
        "limit": "risk.max_amount",
        "limit_amount": str(limit),
        "open_principal": "1000.000000",
        "open_principal_after": "2500.000000",
    }
    # recorded as a decision is: its risk decision (as ``assess`` made it), its screening's records and a record
    # denying it for the exposure, each for this request
    assert store.tables.risk_decisions[-1].request_id == request_id
    assert store.tables.risk_decisions[-1].decision.approved
    made = [r for r, on in store.tables.decision_requests.items() if on == request_id]
    records = [r for r in store.tables.decision_records if r.decision_id in made]
    assert {r.kind for r in records} == {DecisionKind.CREDIT_REQUEST}
    (denied,) = [r for r in records if r.outcome is Outcome.DENY]
    assert (denied.subject_ref, [r.code for r in denied.reasons]) == ("b1", ["R42"])
    assert "(1000.000000 open now), above the risk.max_amount limit" in denied.reasons[0].message
    assert [r.outcome for r in records].count(Outcome.ALLOW) == 2  # the screening's, one per product

    # the problem the accept answers with, naming the request
    app = FastAPI()
    problems.install(app)

    @app.post("/v1/credit-requests")
    async def create() -> None:
        raise refused.value

    problem = TestClient(app).post("/v1/credit-requests").json()
    assert (problem["status"], problem["type"].rsplit("/", 1)[1]) == (409, "exposure-limit")
    assert (problem["open_principal"], problem["limit_amount"], problem["request_id"]) == (
        "1000.000000",
        str(limit),
        request_id,
    )

    store.tables.owed["b1"] = {"USDC": 500 * USDC}  # within: quoted as before, under what is open
    quoted = await service.request_credit(borrower_file(), SPEC)
    assert quoted.request.status == "quoted"
    assert quoted.quotes
    assert quoted.request.risk["exposure"] == {"open_principal": "500.000000"}


async def test_a_tier_limited_borrower_is_quoted_only_the_products_it_may_accept(compliance: ComplianceService) -> None:
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance)
    basic = replace(borrower_file(), kyc=_kyc(KycTier.BASIC))
    spec = replace(SPEC, amount="600.00", collateral_amount="2.0")  # risk's limit far above the tier's ceilings
    store.tables.owed["b1"] = {"USDC": 500 * USDC}
    quoted = await service.request_credit(basic, spec)
    assert quoted.request.status == "quoted"
    assert {q.kind for q in quoted.quotes} == {"pool"}
    outcomes = {o.provider_id: o for o in quoted.outcomes}
    for bank in ("bank", "fintech"):
        assert outcomes[bank].outcome == "ineligible"
        assert "kyc.tier_limit.basic limit of 1000" in outcomes[bank].detail
    assert {outcomes[p].outcome for p in outcomes if p.startswith("pool:")} == {"offered"}

    store.tables.owed["b1"] = {"USDC": 2_000 * USDC}  # past the pools' 2,500 too: nothing it may accept
    with pytest.raises(ExposureLimitExceeded) as refused:
        await service.request_credit(basic, spec)
    assert (refused.value.limit, refused.value.ceiling) == ("kyc.tier_limit.basic", Decimal(2500))
    assert refused.value.request_id is not None
    assert store.tables.requests[refused.value.request_id].request.status == "declined"
