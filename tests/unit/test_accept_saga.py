"""The accept saga's records and rules on the in-memory fake: locking supersedes, releasing restores the unexpired,
a claim is won once, exposure names the limit it would pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator._accept_lease import AcceptRecords
from aggregator.accept_saga import (
    AcceptRecord,
    AcceptStep,
    AcceptStore,
    InMemoryAcceptStore,
    LoanFacts,
    LockRefused,
    QuoteView,
    is_done,
)
from aggregator.assets import Asset, AssetRegistry
from aggregator.errors import ExposureLimitExceeded, ExposureUnvalued
from aggregator.exposure import ExposureLimits, check_exposure, tier_ceiling
from aggregator.owed import Exposure
from api import problems
from compliance import Product
from compliance.kyc import DEFAULT_TIER_LIMITS, KycState, KycStatus, KycTier

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
USDC = 10**6


def _quote(quote_id: str, request_id: str = "r1", expires: datetime = NOW + timedelta(minutes=10)) -> QuoteView:
    return QuoteView(
        id=quote_id,
        request_id=request_id,
        borrower_id="b1",
        provider_id="pool:ethereum-local:USDC",
        kind="pool",
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        offer={"principal": str(1_000 * USDC), "nonce": "7"},
        offer_digest="0x" + quote_id.encode().hex().ljust(64, "0"),
        offer_signature="0x",
        attestation={},
        attestation_signature="0x",
        disclosure={"asset": "USDC", "termDays": 30},
        status="offered",
        expires_at=expires,
        risk_max_amount="2400",
    )


def _record(quote_id: str, owner: str = "p1", lease: timedelta = timedelta(seconds=30)) -> AcceptRecord:
    return AcceptRecord(
        quote_id=quote_id,
        request_id="r1",
        borrower_id="b1",
        kind="pool",
        chain_name="ethereum-local",
        attempt=1,
        step=AcceptStep.VERIFIED,
        owner=owner,
        lease_until=NOW + lease,
        updated_at=NOW,
    )


def _store() -> InMemoryAcceptStore:
    store = InMemoryAcceptStore()
    store.tables.requests["r1"] = "quoted"
    for quote in (_quote("q1"), _quote("q2"), _quote("q3", expires=NOW - timedelta(seconds=1))):
        store.tables.quotes[quote.id] = quote
    return store


def _statuses(store: InMemoryAcceptStore) -> dict[str, str]:
    return {quote_id: quote.status for quote_id, quote in store.tables.quotes.items()}


def test_locking_a_quote_supersedes_the_others_and_a_second_lock_is_refused() -> None:
    store: AcceptStore = _store()
    with store.unit_of_work() as uow:
        uow.accepts.lock(_quote("q1"), _record("q1"))
        uow.commit()
    assert isinstance(store, InMemoryAcceptStore)
    assert _statuses(store) == {"q1": "accepting", "q2": "superseded", "q3": "superseded"}
    assert store.tables.requests["r1"] == "accepting"
    with store.unit_of_work() as uow, pytest.raises(LockRefused) as refused:
        uow.accepts.lock(_quote("q2"), _record("q2"))
    assert refused.value.reason == "superseded"


def test_a_lock_not_committed_leaves_nothing_behind() -> None:
    store = _store()
    with store.unit_of_work() as uow:
        uow.accepts.lock(_quote("q1"), _record("q1"))
    assert _statuses(store) == {"q1": "offered", "q2": "offered", "q3": "offered"}
    assert store.tables.records == {}


def test_release_restores_only_the_unexpired_superseded_quotes() -> None:
    store = _store()
    with store.unit_of_work() as uow:
        uow.accepts.lock(_quote("q1"), _record("q1"))
        uow.accepts.release(_record("q1"), NOW)
        uow.commit()
    assert _statuses(store) == {"q1": "offered", "q2": "offered", "q3": "superseded"}
    assert store.tables.requests["r1"] == "quoted"


def test_a_claim_is_won_once_and_only_after_the_lease_ran_out() -> None:
    store = _store()
    with store.unit_of_work() as uow:
        uow.accepts.lock(_quote("q1"), _record("q1", lease=timedelta(seconds=5)))
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.accepts.claimable(NOW, 10, chains=["ethereum-local"]) == []
        later = NOW + timedelta(seconds=6)
        (found,) = uow.accepts.claimable(later, 10, chains=["ethereum-local"])
        first = uow.accepts.claim(found, "p2", later + timedelta(seconds=30), later)
        second = uow.accepts.claim(found, "p3", later + timedelta(seconds=30), later)
        uow.commit()
    assert first is not None
    assert first.owner == "p2"
    assert second is None


def test_a_loan_is_recorded_once_and_moves_quote_and_request_to_accepted() -> None:
    store = _store()
    facts = LoanFacts("l1", "q1", "b1", "USDC", USDC, "0x" + "aa" * 32)
    with store.unit_of_work() as uow:
        uow.accepts.lock(_quote("q1"), _record("q1"))
        recorded = _record("q1")
        assert uow.accepts.record_loan(facts, recorded) == "l1"
        assert uow.accepts.record_loan(replace(facts, id="l2"), recorded) == "l1"
        uow.commit()
    assert list(store.tables.loans) == ["l1"]
    assert store.tables.requests["r1"] == "accepted"
    assert store.tables.quotes["q1"].status == "accepted"


def test_a_pool_accept_is_done_when_recorded_a_traditional_one_when_funded() -> None:
    assert is_done(AcceptStep.RECORDED, "pool")
    assert not is_done(AcceptStep.RECORDED, "traditional")
    assert is_done(AcceptStep.FUNDED, "traditional")
    assert not is_done(AcceptStep.SUBMITTED, "pool")


ASSETS = AssetRegistry([Asset("USDC", 6, Decimal(1), {}), Asset("WETH", 18, Decimal(3000), {})])


def _kyc(tier: KycTier) -> KycStatus:
    return KycStatus("a", "b1", KycState.APPROVED, tier, (), NOW)


def test_exposure_past_risks_limit_is_refused_naming_it() -> None:
    open_loans = Exposure({"USDC": 1_500 * USDC})
    with pytest.raises(ExposureLimitExceeded) as refused:
        check_exposure(open_loans, _quote("q1"), _kyc(KycTier.STANDARD), ExposureLimits(), ASSETS)
    assert refused.value.limit == "risk.max_amount"
    assert refused.value.after == Decimal("2500")
    check_exposure(Exposure({"USDC": 1_400 * USDC}), _quote("q1"), _kyc(KycTier.STANDARD), ExposureLimits(), ASSETS)


def test_an_open_loan_in_an_unlisted_asset_refuses_the_accept_naming_it_not_the_request() -> None:
    # the ledger names a token the registry does not list by its address: left out, the sum would be too low; it was
    # the credit request's 422 "asset: unknown asset" on an accept
    unlisted = "0x" + "ab" * 20
    with pytest.raises(ExposureUnvalued, match=f"open loan in {unlisted} cannot be valued") as refused:
        check_exposure(
            Exposure({"USDC": USDC, unlisted: 5}), _quote("q1"), _kyc(KycTier.STANDARD), ExposureLimits(), ASSETS
        )
    assert refused.value.asset == unlisted
    app = FastAPI()
    problems.install(app)

    @app.get("/accept")
    async def accept() -> None:
        raise refused.value

    answer = TestClient(app).get("/accept")
    assert (answer.status_code, answer.json()["type"].rsplit("/", 1)[1]) == (409, "exposure-unvalued")


def test_exposure_past_the_kyc_tiers_ceiling_is_refused_naming_the_tier() -> None:
    quote = _quote("q1")
    with pytest.raises(ExposureLimitExceeded) as refused:
        check_exposure(Exposure({"USDC": 1_600 * USDC}), quote, _kyc(KycTier.BASIC), ExposureLimits(), ASSETS)
    assert refused.value.limit in ("risk.max_amount", "kyc.tier_limit.basic")
    high_risk_limit = replace(quote, risk_max_amount="100000")
    with pytest.raises(ExposureLimitExceeded) as by_tier:
        check_exposure(Exposure({"USDC": 1_600 * USDC}), high_risk_limit, _kyc(KycTier.BASIC), ExposureLimits(), ASSETS)
    assert by_tier.value.limit == "kyc.tier_limit.basic"
    assert by_tier.value.ceiling == Decimal("2500")


def test_tier_ceilings() -> None:
    assert tier_ceiling(DEFAULT_TIER_LIMITS, KycTier.NONE, Product.DEFI) == Decimal(0)
    assert tier_ceiling(DEFAULT_TIER_LIMITS, KycTier.STANDARD, Product.TRADITIONAL) == Decimal("25000")
    assert tier_ceiling(DEFAULT_TIER_LIMITS, KycTier.ENHANCED, Product.DEFI) is None


async def test_closed_accept_records_run_no_more_work_on_their_threads() -> None:
    """``Platform.close`` releases the accepts' own threads: work runs on them before, none is taken after."""
    records = AcceptRecords(InMemoryAcceptStore(), "process-a", timedelta(seconds=30), lambda: datetime.now(UTC))
    assert await records.run(lambda a, b: a + b, 2, 3) == 5
    records.close()
    with pytest.raises(RuntimeError, match="shutdown"):
        await records.run(lambda: None)
