"""The quoting service's own logic on the in-memory store: ranking, one offer nonce and ONE risk attestation per
chain per request (both signed over what the contract checks), the request stored as it is answered, and nothing
of a failed write kept. Real compliance (the shipped sanctions lists, the jurisdiction rules), real signers; the
providers are in-process fakes and the chains are only their EIP-712 domains."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from eth_utils.address import to_checksum_address

from aggregator.errors import ComplianceDenied
from aggregator.offers import attestation_from_row, offer_from_row
from aggregator.quote_offers import QuoteSigning
from aggregator.quote_store import InMemoryQuotingRepository, InMemoryQuotingStore, OfferNonceKey, QuotedRequest
from aggregator.quoting import CreditRequestSpec
from compliance import ComplianceService
from compliance.decisions import DecisionKind, Outcome
from compliance.errors import KycProviderError
from compliance.kyc import IdentityProfile
from compliance.mla import CoveredPeriod, LocalMlaStatusProvider, MlaQuery, MlaStatus, MlaStatusCache
from contracts.typed_data import Domain, digest, offer_typed_data, recover, risk_attestation_typed_data
from providers.base import AdapterContext, ProviderRegistration
from providers.http_lender import HttpLenderAdapter
from providers.models import ProviderKind, QuoteRequest
from risk.onchain import OnchainFeatures
from risk.onchain_source import ChainOnchainSource, ChainReading, OnchainReading, merge
from tests.support.quoting import (
    CHAINS,
    ORACLES,
    QUOTE_SIGNER,
    RISK_SIGNER,
    SPEC,
    WALLET,
    FixedRateLender,
    borrower_file,
    quoting_service,
    shipped_compliance,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


async def test_one_nonce_and_one_attestation_per_chain(compliance: ComplianceService) -> None:
    store = InMemoryQuotingStore()
    quoted = await quoting_service(store, compliance).request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "quoted"
    assert [q.rank for q in quoted.quotes] == list(range(1, 6))
    assert {q.chain_name for q in quoted.quotes} == set(CHAINS)  # the lenders' offers on the first chain
    for name in CHAINS:
        on_chain = [q for q in quoted.quotes if q.chain_name == name]
        # one nonce per chain, shared: the contract refuses a second loan from the request by itself
        assert len({q.offer["nonce"] for q in on_chain}) == 1
        # one attestation per chain, for that nonce, expiring with the chain's last quote
        assert len({(str(q.attestation), q.attestation_signature) for q in on_chain}) == 1
        attestation = attestation_from_row(on_chain[0])
        assert attestation.nonce == on_chain[0].offer["nonce"]
        assert attestation.expiry == max(int(q.expires_at.timestamp()) for q in on_chain)
        assert attestation.borrower == WALLET
        oracle = Domain(on_chain[0].chain_id, to_checksum_address(ORACLES[CHAINS.index(name)]))
        document = risk_attestation_typed_data(oracle, attestation)
        assert recover(document, bytes.fromhex(on_chain[0].attestation_signature[2:])) == RISK_SIGNER.address
    for quote in quoted.quotes:
        offer = offer_from_row(quote)
        assert offer.expiry == int(quote.expires_at.timestamp())
        document = offer_typed_data(Domain(quote.chain_id, to_checksum_address(quote.contract)), offer)
        assert quote.offer_digest == "0x" + digest(document).hex()  # the digest of what was signed
        assert recover(document, bytes.fromhex(quote.offer_signature[2:])) == QUOTE_SIGNER.address
    # stored as answered, and read back the same
    assert store.tables.requests[quoted.request.id] == quoted
    with store.unit_of_work() as uow:
        assert uow.quoting.get_request(quoted.request.id) == (quoted, None)
    assert len(store.tables.risk_decisions) == 1
    assert store.tables.risk_decisions[0].request_id == quoted.request.id
    # the compliance records (the screening, each offer's check) are kept with the request they were made for
    kinds = {record.kind for record in store.tables.decision_records}
    assert {DecisionKind.CREDIT_REQUEST, DecisionKind.OFFER} <= kinds
    assert set(store.tables.decision_requests) == {r.decision_id for r in store.tables.decision_records}
    assert set(store.tables.decision_requests.values()) == {quoted.request.id}


async def test_the_next_request_signs_with_the_next_nonces(compliance: ComplianceService) -> None:
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance)
    first = await service.request_credit(borrower_file(), SPEC)
    second = await service.request_credit(borrower_file(), SPEC)

    def nonces(quoted: QuotedRequest) -> dict[str, int]:
        return {q.chain_name: int(q.offer["nonce"]) for q in quoted.quotes}

    assert nonces(second) == {name: nonce + 1 for name, nonce in nonces(first).items()}


async def test_a_failed_write_keeps_nothing_and_spends_no_nonce(
    compliance: ComplianceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance)

    def refuse(self: InMemoryQuotingRepository, quoted: QuotedRequest, *_records: object) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(InMemoryQuotingRepository, "add_quoted", refuse)
        with pytest.raises(RuntimeError, match="went away"):
            await service.request_credit(borrower_file(), SPEC)
    assert store.tables.requests == {}
    assert store.tables.next_nonce == {}  # the reservation rolled back with the write
    quoted = await service.request_credit(borrower_file(), SPEC)
    assert {int(q.offer["nonce"]) for q in quoted.quotes} == {1}


async def test_a_declined_request_is_stored_without_quotes_or_nonces(compliance: ComplianceService) -> None:
    store = InMemoryQuotingStore()
    far_too_much = CreditRequestSpec("20000.00", "USDC", 30, "general", "WETH", "0.1")
    quoted = await quoting_service(store, compliance).request_credit(borrower_file(), far_too_much)
    assert quoted.request.status == "declined"
    assert quoted.quotes == []
    assert quoted.outcomes == []
    assert store.tables.requests[quoted.request.id] == quoted
    assert store.tables.next_nonce == {}
    assert quoted.request.risk["approved"] is False
    assert quoted.request.risk["reasons"]


async def test_a_held_borrower_is_refused_with_a_review_and_nothing_else_written(
    compliance: ComplianceService,
) -> None:
    store = InMemoryQuotingStore()
    held = replace(borrower_file(), identity=IdentityProfile("Mazen", "Hussein", date(1985, 12, 10), "US-FL"))
    with pytest.raises(ComplianceDenied) as refused:
        await quoting_service(store, compliance).request_credit(held, SPEC)
    review = next(iter(store.tables.reviews.values()))
    assert [key[0] for key in store.tables.reviews] == ["b1"]
    messages = {code: message for code, message in refused.value.reasons}
    assert review in messages["sanctions.review-pending"]  # the borrower is told the review, not who is listed
    assert "HUSSEIN" not in messages["sanctions.review-pending"].upper()
    # the screening decisions are kept (the request they were made for never was), nothing else
    assert {(r.kind, r.outcome) for r in store.tables.decision_records} == {
        (DecisionKind.CREDIT_REQUEST, Outcome.REVIEW)
    }
    assert store.tables.decision_requests == {}
    assert store.tables.requests == {}
    assert store.tables.risk_decisions == []
    assert store.tables.next_nonce == {}


async def test_a_quote_and_its_request_are_found_as_written(compliance: ComplianceService) -> None:
    service = quoting_service(InMemoryQuotingStore(), compliance)
    quoted = await service.request_credit(borrower_file(), SPEC)
    assert service.find_request(quoted.request.id) == (quoted, None)
    best = quoted.quotes[0]
    assert service.find_quote(best.id) == (best, quoted.request)
    assert service.find_quote("no-such-quote") is None
    assert service.find_request("no-such-request") is None


class _ReservingAhead(InMemoryQuotingStore):
    """The in-memory store reserving the nonces ahead of the write, as the PostgreSQL store does."""

    def reserve_ahead(self, nonce_keys: Iterable[OfferNonceKey]) -> dict[OfferNonceKey, int]:
        with self.unit_of_work() as uow:
            reserved = uow.quoting.reserve_offer_nonces(nonce_keys)
            uow.commit()
        return reserved


async def test_offers_answered_after_the_nonces_are_reserved_are_signed_as_they_come_and_once(
    compliance: ComplianceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pools answer at once, before the nonces are reserved ahead: their offers are signed when the nonces come;
    the banks answer later: theirs are signed as they are disclosed. Both on the event loop while the banks are still
    asked, none left to the write; every quote signed once, over what the contract checks, with its chain's nonce."""
    answer = FixedRateLender.quote

    async def later_for_banks(self: FixedRateLender, request: QuoteRequest) -> Any:
        if self.kind == ProviderKind.TRADITIONAL.value:
            await asyncio.sleep(0.3)
        return await answer(self, request)

    signed_on: list[bool] = []
    sign_offer = QuoteSigning.sign_offer

    def recorded(self: QuoteSigning, *args: Any) -> Any:
        signed_on.append(threading.current_thread() is threading.main_thread())
        return sign_offer(self, *args)

    monkeypatch.setattr(FixedRateLender, "quote", later_for_banks)
    monkeypatch.setattr(QuoteSigning, "sign_offer", recorded)
    quoted = await quoting_service(_ReservingAhead(), compliance).request_credit(borrower_file(), SPEC)

    banks = [q for q in quoted.quotes if q.kind == ProviderKind.TRADITIONAL.value]
    assert banks
    assert len(signed_on) == len(quoted.quotes)  # once each
    assert all(signed_on)  # on the event loop, during the fan-out
    for quote in quoted.quotes:
        offer = offer_from_row(quote)
        assert offer.nonce == attestation_from_row(quote).nonce
        document = offer_typed_data(Domain(quote.chain_id, to_checksum_address(quote.contract)), offer)
        assert quote.offer_digest == "0x" + digest(document).hex()
        assert recover(document, bytes.fromhex(quote.offer_signature[2:])) == QUOTE_SIGNER.address
    assert len({q.offer["nonce"] for q in quoted.quotes if q.chain_name == CHAINS[0]}) == 1


class _MlaService:
    """The DoD MLA service as the platform's adapter sees it: answers ``covered`` or, while ``down``, fails."""

    def __init__(self, covered: bool) -> None:
        self.covered, self.down, self.asked = covered, False, 0

    async def check(self, query: MlaQuery, now: datetime) -> MlaStatus:
        self.asked += 1
        if self.down:
            raise KycProviderError("the MLA service did not answer")
        return MlaStatus(self.covered, query.as_of, "certificate-1")


async def test_an_mla_service_that_cannot_answer_holds_the_borrower_to_the_36_percent_mapr(
    compliance: ComplianceService,
) -> None:
    """Ten days at a 1% fee is an MAPR above 36% for every offer (nominal rates under Florida's cap): a borrower the
    service says is not covered gets them, one it cannot answer for is treated as covered and gets none, and one
    who gave no SSN or DoD ID is not asked about (treated as not covered, no safe harbour claimed)."""
    spec = replace(SPEC, term_days=10)
    service_answers = _MlaService(covered=False)
    servicemember = replace(borrower_file(), military_id="1234567890")

    answered = await quoting_service(
        InMemoryQuotingStore(), compliance, MlaStatusCache(service_answers)
    ).request_credit(servicemember, spec)
    assert answered.request.status == "quoted"
    assert len(answered.quotes) == 5

    service_answers.down = True
    down = await quoting_service(InMemoryQuotingStore(), compliance, MlaStatusCache(service_answers)).request_credit(
        replace(servicemember, id="b2"), spec
    )
    assert down.quotes == [], "every offer is over the MLA's 36% MAPR"
    assert service_answers.asked == 2

    unchecked = await quoting_service(
        InMemoryQuotingStore(), compliance, MlaStatusCache(service_answers)
    ).request_credit(replace(borrower_file(), id="b3", military_id=None), spec)
    assert len(unchecked.quotes) == 5
    assert service_answers.asked == 2, "no identifier: the service is not asked"


@pytest.mark.parametrize("last_name", ["Lovelace", "Lovelace ", "Lövelace", "Ｌｏｖｅｌａｃｅ", "Love\u00adlace"])
async def test_a_covered_borrower_is_held_to_the_36_percent_mapr_whatever_spelling_the_kyc_accepted(
    compliance: ComplianceService, last_name: str
) -> None:
    """The DoD's service lists "Lovelace" and matches the name as spelt; the KYC provider accepts an identity whose
    name is the passport's with accents, blanks and width aside. The borrower was asked about as typed — "not
    covered" — and offered every MAPR above 36%; the service is now asked in each spelling it may hold."""
    file = borrower_file()
    assert file.identity is not None
    period = CoveredPeriod("Lovelace", file.identity.date_of_birth, "1234567890", date(2020, 1, 1))
    servicemember = replace(file, military_id="1234567890", identity=replace(file.identity, last_name=last_name))
    quoted = await quoting_service(
        InMemoryQuotingStore(), compliance, MlaStatusCache(LocalMlaStatusProvider([period]))
    ).request_credit(servicemember, replace(SPEC, term_days=10))
    assert quoted.request.status == "no_offers"
    assert quoted.quotes == [], "every offer is over the MLA's 36% MAPR"


@pytest.mark.parametrize("rate_bps", [5_000, 100])
async def test_an_offer_scheduled_past_the_maximum_term_is_dropped_and_the_others_are_quoted(
    compliance: ComplianceService, rate_bps: int
) -> None:
    """A protocol-valid amortizing offer of 600 quarterly installments (actual/365): 150 years. At 50% its payments
    outgrew any amount, and its disclosure raised decimal.InvalidOperation out of the credit request, every
    borrower's, for as long as that lender quoted (then it was dropped as "amounts too large"); at 1% it was disclosed
    and quoted, a borrower offered payments for 150 years where no usury cap applies. Either is now dropped before
    its disclosure, the outcome naming the maximum term, and the other lenders' offers stand."""

    def answer(request: httpx.Request) -> httpx.Response:
        offer = {
            "offer_ref": "wild-1",
            "rate_bps": rate_bps,
            "origination_fee": 0,
            "repayment": "installments",
            "installments": 600,
            "schedule": {"frequency": "quarterly", "day_count": "actual/365"},
            "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }
        return httpx.Response(200, json={"protocol_version": "1", "offers": [offer]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        registration = ProviderRegistration("wild", "http", {"base_url": "https://wild.example", "secret": "s" * 16})
        wild = HttpLenderAdapter.from_registration(registration, AdapterContext(client))
        quoted = await quoting_service(InMemoryQuotingStore(), compliance, more=[wild]).request_credit(
            borrower_file(), SPEC
        )
    assert quoted.request.status == "quoted"
    assert len(quoted.quotes) == 5
    assert "wild" not in {q.provider_id for q in quoted.quotes}
    (outcome,) = [o for o in quoted.outcomes if o.provider_id == "wild"]
    assert outcome.outcome == "dropped"
    assert outcome.detail.startswith("dropped: the schedule of 600 quarterly installments runs 150.0 years (to ")
    assert outcome.detail.endswith("longer than the maximum of 40 years (480 monthly installments)")


async def test_equal_installments_that_would_end_in_a_balloon_are_dropped_and_the_others_are_quoted(
    compliance: ComplianceService,
) -> None:
    """A protocol-valid offer of 600 biweekly installments (Actual/365, so the same from any start) of $1,500 at
    18%: 10.52 every two weeks leaves 62.04 for the last installment, a balloon payment (more than twice a regular
    one) that was disclosed and signed as `equal-installments/biweekly`; no regular installment within a cent of the
    level payment does better. It was then dropped with that reason, the other lenders' offers quoted; it is now
    dropped before its disclosure, its schedule (8,400 days) being no term a borrower asks for (at most 365 days,
    ``aggregator.offer_terms.schedule_past_term``). The balloon rule is checked on this schedule itself in
    tests/unit/compliance/test_schedule_no_hidden_balloon.py ("1500-18pct-600-biweekly")."""

    def answer(request: httpx.Request) -> httpx.Response:
        offer = {
            "offer_ref": "long-1",
            "rate_bps": 1_800,
            "origination_fee": 0,
            "repayment": "installments",
            "installments": 600,
            "schedule": {"frequency": "biweekly", "day_count": "actual/365"},
            "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }
        return httpx.Response(200, json={"protocol_version": "1", "offers": [offer]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        registration = ProviderRegistration("long", "http", {"base_url": "https://long.example", "secret": "s" * 16})
        long = HttpLenderAdapter.from_registration(registration, AdapterContext(client))
        quoted = await quoting_service(InMemoryQuotingStore(), compliance, more=[long]).request_credit(
            borrower_file(), SPEC
        )
    assert quoted.request.status == "quoted"
    assert len(quoted.quotes) == 5
    assert "long" not in {q.provider_id for q in quoted.quotes}
    (outcome,) = [o for o in quoted.outcomes if o.provider_id == "long"]
    assert outcome.outcome == "dropped"
    assert outcome.detail.startswith("dropped: the schedule of 600 biweekly installments runs 8,400 days (to "), (
        "its term, before the disclosure that would find the balloon"
    )


class _ChainsSkipped:
    """The wallet's history as read now: a clean record where it was read, ``skipped`` chains not read at all."""

    def __init__(self, skipped: dict[str, str]) -> None:
        clean = OnchainFeatures(400, 50, 3, 3, 0, None, (31337,))
        self.reading = OnchainReading(clean, {}, skipped)

    async def read(self, wallet: str) -> OnchainReading:
        return self.reading


async def test_a_default_on_a_chain_not_read_now_is_taken_from_the_ledger(compliance: ComplianceService) -> None:
    """polygon-local did not answer: its history is missing, not clean. The ledger records a default of the wallet
    there, so the request is declined for it (R30), as it would be were the chain read."""
    store = InMemoryQuotingStore()
    store.tables.ledger_defaults[(borrower_file().wallet.lower(), 31338)] = 1
    onchain = cast(ChainOnchainSource, _ChainsSkipped({"polygon-local": "timed out"}))
    quoted = await quoting_service(store, compliance, onchain=onchain).request_credit(borrower_file(), SPEC)
    assert quoted.request.status == "declined"
    assert "R30" in [reason["code"] for reason in quoted.request.risk["reasons"]]
    assert quoted.request.risk["onchain_chains_skipped"] == {"polygon-local": "timed out"}
    assert quoted.request.risk["onchain_ledger_defaults"] == 1

    store.tables.ledger_defaults.clear()  # nothing there: judged on the chains read
    quoted = await quoting_service(store, compliance, onchain=onchain).request_credit(borrower_file(), SPEC)
    assert quoted.request.status != "declined"
    assert quoted.request.risk["onchain_ledger_defaults"] == 0


async def test_every_chain_skipped_is_no_history_not_a_limited_one(compliance: ComplianceService) -> None:
    """No chain answered (an RPC outage): the wallet's history is unread, not thin. The borrower is told no "limited
    history" reason (R32) and loses no points for it; a default the ledger records on those chains still declines."""
    store = InMemoryQuotingStore()
    skipped = {"ethereum-local": "timed out", "polygon-local": "timed out"}
    onchain = _ChainsSkipped(skipped)
    onchain.reading = OnchainReading(merge([], len(skipped)), {}, skipped)
    service = quoting_service(store, compliance, onchain=cast(ChainOnchainSource, onchain))
    quoted = await service.request_credit(borrower_file(), SPEC)
    assert quoted.request.risk["onchain_points"] == 0
    assert "R32" not in [reason["code"] for reason in quoted.request.risk["reasons"]]
    assert quoted.request.risk["onchain_chains_skipped"] == skipped
    store.tables.ledger_defaults[(borrower_file().wallet.lower(), 31338)] = 1
    quoted = await service.request_credit(borrower_file(), SPEC)
    assert quoted.request.status == "declined"
    assert "R30" in [reason["code"] for reason in quoted.request.risk["reasons"]]


class _ChainClocks:
    """A clean history read on each chain at a head block of the given time (unix seconds)."""

    def __init__(self, head_times: dict[str, float]) -> None:
        clean = OnchainFeatures(400, 50, 3, 3, 0, None, (31337,))
        readings = {
            name: ChainReading(31337 + i, 100, int(at), 3, 0, 0, 0, None, None)
            for i, (name, at) in enumerate(head_times.items())
        }
        self.reading = OnchainReading(clean, readings, {})

    async def read(self, wallet: str) -> OnchainReading:
        return self.reading


async def test_a_chain_whose_clock_runs_ahead_is_left_out_naming_why(compliance: ComplianceService) -> None:
    """An offer's expiry is set by this clock and judged by the chain's block time: on a chain a minute and more
    ahead (a devnet moved on with evm_increaseTime), every quote of a 10-minute lifetime would expire early."""
    now = time.time()
    ahead = cast(ChainOnchainSource, _ChainClocks({"ethereum-local": now + 86_400, "polygon-local": now + 30}))
    quoted = await quoting_service(InMemoryQuotingStore(), compliance, onchain=ahead).request_credit(
        borrower_file(), SPEC
    )
    assert quoted.request.status == "quoted"
    assert {q.chain_name for q in quoted.quotes} == {"polygon-local"}  # 30 s ahead: within the margin
    assert all(q.expires_at <= datetime.now(UTC) + timedelta(minutes=10) for q in quoted.quotes)
    (pool,) = [o for o in quoted.outcomes if o.provider_id == "pool:ethereum-local"]
    assert pool.outcome == "ineligible"
    assert pool.detail.startswith(
        "ethereum-local's clock is ahead: its latest block is 86"
    )  # 86,400 s, less the test's own time
    assert "past this platform's time (more than 60 s of a quote's 600 s)" in pool.detail
