"""A credit request risk approved that ends with no offer is an adverse action (ECOA / Regulation B, 12 CFR 1002.9):
its ``risk`` says not approved, for the reasons that held the offers back, and a credit-request decision record denies
it (``aggregator.quote_adverse``). Before, such a request was answered ``no_offers`` with ``approved`` true and the
scoring's factors as its reasons, and the decisions list showed it allowed. Through the quoting service on the
in-memory store (real compliance and signers, in-process lenders)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from eth_utils.address import to_checksum_address

from aggregator.errors import ComplianceDenied
from aggregator.quote_store import InMemoryQuotingStore
from compliance import ComplianceService
from compliance.adverse_action import Party
from compliance.decisions import DecisionKind, DecisionRecord, Outcome
from compliance.kyc import IdentityProfile, KycState, KycStatus, KycTier
from providers.models import (
    Decline,
    InstallmentSchedule,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
    ScheduledPayment,
)
from tests.support.quoting import SPEC, FixedRateLender, borrower_file, quoting_service, shipped_compliance

pytestmark = pytest.mark.unit

#: Florida caps the nominal rate at 18%: every offer of these is dropped by compliance
OVER_THE_CAP = [
    FixedRateLender("bank", ProviderKind.TRADITIONAL, [2_000]),
    FixedRateLender("pool:ethereum-local", ProviderKind.POOL, [1_900], chain="ethereum-local"),
]


@pytest.fixture(scope="module")
def compliance() -> ComplianceService:
    return shipped_compliance()


#: the creditor the declining lender's registration names
FINTECH = Party("Example Fintech Lending, Inc.", "3 Market Street, Springfield, IL 62701")


class _Declining(FixedRateLender):
    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        return Decline(self.provider_id, "outside our appetite")

    def creditor(self) -> Party | None:
        return FINTECH


class _WrongPayments(FixedRateLender):
    """Its offers' payments are not the ones their terms make: dropped after compliance kept them."""

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        offers = await super().quote(request)
        assert isinstance(offers, list)
        payments = (ScheduledPayment(1, date(2000, 1, 1), 1), ScheduledPayment(2, date(2000, 2, 1), 1))
        shape = RepaymentShape.INSTALLMENTS
        return [
            replace(offer, repayment=shape, installments=2, schedule=InstallmentSchedule(payments=payments))
            for offer in offers
        ]


def _records(store: InMemoryQuotingStore, request_id: str) -> list[DecisionRecord]:
    made = {r for r, on in store.tables.decision_requests.items() if on == request_id}
    return [r for r in store.tables.decision_records if r.decision_id in made]


async def test_a_request_every_offer_of_which_is_over_the_usury_cap_is_declined_for_it(
    compliance: ComplianceService,
) -> None:
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance, lenders=OVER_THE_CAP)

    quoted = await service.request_credit(borrower_file(), SPEC)

    request = quoted.request
    assert (request.status, quoted.quotes) == ("no_offers", [])
    risk = request.risk
    assert risk["approved"] is False
    cap = "nominal-rate 20.00% exceeds the 18% cap of Florida"
    assert risk["reasons"] == [
        {"code": "R44", "text": f"Rates offered exceed the legal limit on rates for this credit: {cap}"}
    ]
    # the scoring decision as ``assess`` made it: approved on its factors, signed and stored unchanged
    stored = store.tables.risk_decisions[-1]
    assert stored.decision.approved
    scored = [{"code": r.code, "text": r.text} for r in stored.decision.reasons]
    assert risk["assessed"] == {"approved": True, "reasons": scored}
    assert risk["grade"] == "A"
    assert risk["decision_hash"] == "0x" + stored.decision.decision_hash().hex()
    # the decisions list: the screening's allows, each offer's deny, then the request's deny, last
    records = _records(store, request.id)
    assert [(r.kind, r.outcome) for r in records][-1] == (DecisionKind.CREDIT_REQUEST, Outcome.DENY)
    denied = records[-1]
    assert (denied.subject_ref, [(r.code, r.message) for r in denied.reasons]) == (
        "b1",
        [("R44", f"Rates offered exceed the legal limit on rates for this credit: {cap}")],
    )
    assert [r.outcome for r in records if r.kind is DecisionKind.OFFER] == [Outcome.DENY, Outcome.DENY]


async def test_lenders_that_decline_or_fail_are_a_reason_of_their_own_after_the_requests(
    compliance: ComplianceService,
) -> None:
    store = InMemoryQuotingStore()
    declining = _Declining("fintech", ProviderKind.TRADITIONAL, [1_000])
    service = quoting_service(store, compliance, lenders=[declining, *OVER_THE_CAP])

    quoted = await service.request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "no_offers"
    reasons = quoted.request.risk["reasons"]
    assert [r["code"] for r in reasons] == ["R44", "R46"]
    assert reasons[1]["text"] == (
        "No lender offered credit on the terms requested: fintech declined: outside our appetite"
    )
    # the notice names each lender with its own reasons (12 CFR 1002.9(g)), not the platform's merged ones
    cap = "Rates offered exceed the legal limit on rates for this credit: nominal-rate"
    lenders = {lender["provider_id"]: lender for lender in quoted.request.risk["adverse_action_notice"]["lenders"]}
    assert lenders["fintech"]["outcome"] == "declined"
    assert lenders["fintech"]["reasons"] == [reasons[1]]
    for over in ("bank", "pool:ethereum-local"):
        assert [reason["code"] for reason in lenders[over]["reasons"]] == ["R44"], over
        assert lenders[over]["reasons"][0]["text"].startswith(cap), over
    # and who each is (1002.9(g)): a provider id is no creditor's identity
    assert (lenders["fintech"]["identity"], lenders["fintech"]["legal_name"]) == ("registered", FINTECH.name)
    assert (lenders["fintech"]["address"], lenders["fintech"]["identity_note"]) == (FINTECH.address, None)
    pool = lenders["pool:ethereum-local"]
    assert (pool["identity"], pool["legal_name"], pool["address"]) == ("pool", None, None)
    assert pool["pool"] == {"chain": "ethereum-local", "contract": to_checksum_address(f"0x{0xBEEF:040x}")}
    assert f"{pool['pool']['contract']} on ethereum-local" in pool["identity_note"]
    assert "creditmesh (local development) arranges" in pool["identity_note"]
    unnamed = lenders["bank"]  # its registration gives no legal name: said so, not left out
    assert (unnamed["identity"], unnamed["legal_name"], unnamed["address"]) == ("not-on-file", None, None)
    assert unnamed["identity_note"].startswith("its legal name and postal address are not on file")


async def test_every_lender_declining_is_an_adverse_action_too(compliance: ComplianceService) -> None:
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance, lenders=[_Declining("fintech", ProviderKind.TRADITIONAL, [1_000])])

    quoted = await service.request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "no_offers"
    assert quoted.request.risk["approved"] is False
    assert [r["code"] for r in quoted.request.risk["reasons"]] == ["R46"]
    assert _records(store, quoted.request.id)[-1].outcome is Outcome.DENY


async def test_a_quoted_request_is_as_it_was(compliance: ComplianceService) -> None:
    store = InMemoryQuotingStore()
    quoted = await quoting_service(store, compliance).request_credit(borrower_file(), SPEC)

    assert quoted.request.status == "quoted"
    assert quoted.request.risk["approved"] is True
    assert "assessed" not in quoted.request.risk
    assert [r.kind for r in _records(store, quoted.request.id) if r.outcome is Outcome.DENY] == []


async def test_an_offer_dropped_after_compliance_kept_it_is_recorded_denied_not_allowed(
    compliance: ComplianceService,
) -> None:
    """Its compliance record (``allow``) was kept before the checks that dropped it: the decisions list showed an
    offer allowed that was never quoted."""
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance, lenders=[_WrongPayments("bank", ProviderKind.TRADITIONAL, [1_500])])

    # two monthly installments: a term of about 60 days asked, so that the schedule is not dropped for its length
    quoted = await service.request_credit(borrower_file(), replace(SPEC, term_days=60))

    assert quoted.request.status == "no_offers"
    (offer,) = [r for r in _records(store, quoted.request.id) if r.kind is DecisionKind.OFFER]
    assert (offer.subject_ref, offer.outcome) == ("bank-1500", Outcome.DENY)
    assert [r.code for r in offer.reasons] == ["offer.schedule-mismatch"]
    assert offer.reasons[0].message.startswith("the lender's installment 1 (2000-01-01, 0.000001) differs")
    # the lender's own doing: no reason of the borrower's request
    assert [r["code"] for r in quoted.request.risk["reasons"]] == ["R46"]
    assert quoted.request.risk["reasons"][0]["text"].endswith(": bank dropped")


async def test_the_lenders_of_a_product_the_screening_denies_are_named_ineligible_with_its_reason(
    compliance: ComplianceService,
) -> None:
    """A BASIC-tier borrower asking 1,500 USDC: traditional loans need STANDARD, so the banks are not asked. They
    were left out of the outcomes without a trace; each is now ``ineligible`` naming the screening's reason."""
    basic = replace(
        borrower_file(), kyc=KycStatus("applicant-1", "b1", KycState.APPROVED, KycTier.BASIC, (), datetime.now(UTC))
    )
    quoted = await quoting_service(InMemoryQuotingStore(), compliance).request_credit(basic, SPEC)

    assert quoted.request.status == "quoted"
    assert {q.kind for q in quoted.quotes} == {"pool"}
    outcomes = {o.provider_id: (o.outcome, o.detail) for o in quoted.outcomes}
    tier = "traditional loans: KYC tier BASIC is below the STANDARD this amount needs"
    assert outcomes["bank"] == outcomes["fintech"] == ("ineligible", tier)
    assert {outcomes[p][0] for p in ("pool:ethereum-local", "pool:polygon-local")} == {"offered"}

    # and when the pool's offer is over the cap: declined for both, the screening's reason first
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance, lenders=OVER_THE_CAP)
    none = await service.request_credit(basic, SPEC)
    assert none.request.status == "no_offers"
    assert [(r["code"], r["text"]) for r in none.request.risk["reasons"]] == [
        ("R47", f"Not eligible for this type of credit: {tier}"),
        (
            "R44",
            "Rates offered exceed the legal limit on rates for this credit: nominal-rate 19.00% exceeds the 18% "
            "cap of Florida",
        ),
    ]


async def test_a_grade_a_request_declined_for_its_collateral_names_the_collateral_alone(
    compliance: ComplianceService,
) -> None:
    """2,500 USDC on 1 WETH (3,000): above grade A's 80%, the best LTV there is. The decline listed R04 and R08 too,
    factors no better score could have overcome."""
    store = InMemoryQuotingStore()
    service = quoting_service(store, compliance)
    declined = await service.request_credit(borrower_file(), replace(SPEC, amount="2500.00"))

    assert declined.request.status == "declined"
    assert declined.request.risk["reasons"] == [
        {"code": "R41", "text": "Collateral insufficient for the amount requested"}
    ]
    assert [r.code for r in store.tables.risk_decisions[-1].decision.reasons] == ["R41"]


async def test_a_refused_borrower_is_told_at_most_four_reasons_what_it_cannot_change_first(
    compliance: ComplianceService,
) -> None:
    """A listed wallet, a name held for review, an Arkansas borrower (no DeFi credit there) under age and below the
    KYC tier the amount needs: five reasons, told sorted by code (the KYC tier before the age) and all of them."""
    listed = to_checksum_address("0x098b716b8aaf21512996dc57eb0615e2383e2f96")  # on the shipped OFAC address list
    refused_file = replace(
        borrower_file(),
        jurisdiction="US-AR",
        wallet=listed,
        identity=IdentityProfile("Mazen", "Hussein", date(2012, 12, 10), "US-AR"),
        kyc=KycStatus("applicant-1", "b1", KycState.APPROVED, KycTier.BASIC, (), datetime.now(UTC)),
    )
    with pytest.raises(ComplianceDenied) as refused:
        await quoting_service(InMemoryQuotingStore(), compliance).request_credit(
            refused_file, replace(SPEC, amount="3000.00")
        )

    assert [code for code, _ in refused.value.reasons] == [
        "sanctions.address",
        "sanctions.review-pending",
        "jurisdiction.product-not-offered",
        "kyc.under-age",
    ]
    assert refused.value.reasons[3][1] == "the borrower is under the age of majority in US-AR (18)"
