"""Jurisdiction and usury rules, MLA, KYC rules and webhooks, PII protection, decision records, the service."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from compliance.canonical import canonical_json, inputs_hash, keyed_inputs_hash
from compliance.decisions import Outcome
from compliance.errors import (
    DecisionIntegrityError,
    ErasureRefused,
    JurisdictionRulesError,
    KycProviderError,
    PiiError,
    SubjectKeyMissing,
    WebhookRejected,
)
from compliance.jurisdiction import RULES_DIR, Product, check_offer, check_request, load_rules, parse_rules
from compliance.kyc import (
    DEFAULT_TIER_LIMITS,
    SIGNATURE_HEADER,
    IdentityDocument,
    IdentityProfile,
    InMemoryReplayGuard,
    KycReview,
    KycState,
    KycStatus,
    KycTier,
    LocalKycProvider,
    review_of,
    sign_webhook,
    verify_webhook,
)
from compliance.mla import CoveredPeriod, LocalMlaStatusProvider, MlaQuery, MlaStatusCache
from compliance.pii import (
    REGULATION_B,
    InMemoryKeyProvider,
    Masked,
    PiiMaskingFilter,
    PiiVault,
    RetentionHold,
    erase_subject,
)
from compliance.sanctions.screening import SanctionsScreen
from compliance.service import BorrowerFacts, ComplianceService
from compliance.tila.disclosure import LoanTerms, MaprCharge, MaprChargeKind, disclose
from tests.support.screening import screen_accept

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
SECRET = b"webhook-secret"
INPUTS_KEY = bytes(range(32))
SANCTIONED = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"  # Lazarus Group on the 2026-08-20 list, checksum form
PROFILE = IdentityProfile("Jane", "Doe", date(1990, 5, 17), "US-FL")
GOOD_DOC = IdentityDocument("passport", "X1234567", "JANE", "DOE", date(1990, 5, 17), "US", date(2030, 1, 1))


def terms(rate_bps: int, principal: str = "1000", fee: str = "0", **kw: object) -> LoanTerms:
    return LoanTerms(Decimal(principal), "USDC", 6, rate_bps, 90, Decimal(fee), NOW, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def service(screen: SanctionsScreen) -> ComplianceService:
    return ComplianceService(
        screen, load_rules(), clock=lambda: NOW, inputs_key=INPUTS_KEY, vault=PiiVault(InMemoryKeyProvider())
    )


def approved(tier: KycTier = KycTier.STANDARD) -> KycStatus:
    return KycStatus("applicant-1", "b-1", KycState.APPROVED, tier, (), NOW)


async def reviewed(provider: LocalKycProvider, profile: IdentityProfile, document: IdentityDocument) -> KycReview:
    """Create, submit, and read the verdict from the signed webhook the fake sent (its only answer)."""
    applicant = await provider.create_applicant("b-1", profile, NOW)
    pending = await provider.submit_document(applicant.applicant_id, document, NOW)
    assert pending.state is KycState.PENDING
    body, headers = provider.outbox[-1]
    return review_of(verify_webhook(body, headers, SECRET, NOW, InMemoryReplayGuard()))


# --- jurisdictions and usury -------------------------------------------------------------------------------------


def test_rules_file_cites_a_statute_for_every_cap() -> None:
    rules = load_rules()
    assert rules.label == "jurisdictions@2026-11-29"
    caps = [cap for j in rules.jurisdictions.values() for cap in j.caps]
    assert caps
    assert all(cap.citation for cap in caps)
    assert rules.mla_cap_percent == 36
    assert rules.age_of_majority("US-MS") == 21
    doc = json.loads((RULES_DIR / "jurisdictions-2026-11-28.json").read_bytes())
    doc["jurisdictions"]["US-AR"]["caps"][0]["citation"] = ""
    with pytest.raises(JurisdictionRulesError, match="cites"):
        parse_rules(json.dumps(doc).encode())


def test_new_yorks_caps_exempt_loans_of_their_amount_or_more() -> None:
    """N.Y. Gen. Oblig. Law 5-501(6): the civil cap spares loans of $250,000 or more, the criminal one loans of
    $2,500,000 or more; the 2026-11-01 rules applied both at exactly those amounts (Florida's "up to $500,000" stays
    inclusive)."""
    rules = load_rules()
    civil, criminal = rules.jurisdictions["US-NY"].caps
    assert civil.applies_to(Decimal("249999.99"))
    assert not civil.applies_to(Decimal("250000"))
    assert criminal.applies_to(Decimal("250000"))
    assert not criminal.applies_to(Decimal("2500000"))
    florida = rules.jurisdictions["US-FL"].caps[0]
    assert florida.applies_to(Decimal("500000"))
    assert not florida.applies_to(Decimal("500000.01"))


def test_an_apr_cap_is_judged_on_the_apr_not_on_its_rounding() -> None:
    """10,000 at 35.95% for a year with a 3.68 fee: an APR of 36.000048%, disclosed as 36.00. A cap counted in APR
    kept it under 36% (the rounded figure was compared); the shipped rules cap only nominal rates and the MAPR."""
    doc = json.loads((RULES_DIR / "jurisdictions-2026-11-28.json").read_bytes())
    cap = {"max_percent": "36", "counts": "apr", "citation": "a synthetic 36% APR cap"}
    doc["jurisdictions"]["US-TX"]["caps"] = [cap]
    rules = parse_rules(json.dumps(doc).encode())
    over = LoanTerms(Decimal("10000"), "USDC", 6, 3595, 365, Decimal("3.68"), NOW)
    disclosure = disclose(over)
    assert disclosure.apr_percent == Decimal("36.00")
    assert disclosure.apr_unrounded is not None
    assert disclosure.apr_unrounded > 36
    (reason,) = check_offer(rules, over, disclosure, "US-TX", covered_borrower=False).reasons
    assert reason.code == "usury.cap-exceeded"
    under = replace(over, origination_fee=Decimal("3.00"))
    assert check_offer(rules, under, disclose(under), "US-TX", covered_borrower=False).reasons == ()


def test_requests_by_jurisdiction_and_product() -> None:
    rules = load_rules()
    assert check_request(rules, "US-FL", Product.DEFI, Decimal("5000")) == []
    assert [r.code for r in check_request(rules, "US-NY", Product.DEFI, Decimal("5000"))] == [
        "jurisdiction.product-not-offered"
    ]
    assert [r.code for r in check_request(rules, "IR", Product.TRADITIONAL, Decimal("5000"))] == [
        "jurisdiction.prohibited"
    ]
    assert [r.code for r in check_request(rules, "UA-43", Product.TRADITIONAL, Decimal("5000"))] == [
        "jurisdiction.prohibited"
    ]
    assert [r.code for r in check_request(rules, "FR", Product.TRADITIONAL, Decimal("5000"))] == [
        "jurisdiction.not-served"
    ]
    assert [r.code for r in check_request(rules, "US-FL", Product.TRADITIONAL, Decimal("10"))] == [
        "amount.out-of-limits"
    ]


@pytest.mark.parametrize(
    ("code", "order"),
    [
        ("UA-43", "Executive Order 13685"),  # the Autonomous Republic of Crimea
        ("UA-40", "Executive Order 13685"),  # the City of Sevastopol: the Crimea region too, coded apart by ISO 3166-2
        ("UA-14", "Executive Order 14065"),  # so-called Donetsk People's Republic
        ("UA-09", "Executive Order 14065"),  # so-called Luhansk People's Republic
    ],
)
def test_every_embargoed_region_of_ukraine_is_prohibited(code: str, order: str) -> None:
    """Executive Order 13685 embargoes the Crimea region of Ukraine, Sevastopol included; the 2026-11-28 rules
    listed UA-43 but not UA-40, so a Sevastopol borrower was refused only as not served, and not at all at accept."""
    rules = load_rules()
    assert order in rules.prohibited[code]
    (reason,) = check_request(rules, code, Product.TRADITIONAL, Decimal("5000"))
    assert reason.code == "jurisdiction.prohibited"
    assert reason.citation is not None
    assert order in reason.citation
    assert [r.code for r in check_request(rules, "UA-30", Product.TRADITIONAL, Decimal("5000"))] == [
        "jurisdiction.not-served"  # Kyiv: not embargoed, not served
    ]


def test_a_sevastopol_borrower_is_refused_at_accept(service: ComplianceService) -> None:
    """The accept re-screen checks only the prohibited list (a quote's jurisdiction passed the request's rules)."""
    record = screen_accept(service, BorrowerFacts("b-1", "0x" + "12" * 20, "Jane Doe", "UA-40"), "q-1")
    assert record.outcome is Outcome.DENY
    assert [r.code for r in record.reasons] == ["jurisdiction.prohibited"]
    assert record.versions["jurisdictions"] == "jurisdictions@2026-11-29"


def test_usury_cap_drops_an_offer_with_its_reason(service: ComplianceService) -> None:
    kept = service.check_offer("q-1", terms(1500), "US-NY", covered_borrower=False)
    assert kept.kept
    assert kept.record.outcome is Outcome.ALLOW
    dropped = service.check_offer("q-2", terms(1700), "US-NY", covered_borrower=False)
    assert not dropped.kept
    assert dropped.record.outcome is Outcome.DENY
    assert dropped.check.reasons[0].code == "usury.cap-exceeded"
    assert "5-501" in (dropped.check.reasons[0].citation or "")
    # Illinois counts the all-in rate: a 30% note rate passes, the same with a large fee does not
    assert service.check_offer("q-3", terms(3000), "US-IL", False).kept
    assert not service.check_offer("q-4", terms(3000, fee="50"), "US-IL", False).kept


def test_mla_cap_counts_the_mapr_for_covered_borrowers_only(service: ComplianceService) -> None:
    insured = terms(3000, mapr_charges=(MaprCharge(MaprChargeKind.CREDIT_INSURANCE, Decimal("25")),))
    assert (
        service.check_offer("q-5", insured, "US-FL", covered_borrower=False).check.reasons[0].code
        == "usury.cap-exceeded"
    )
    civilian = service.check_offer("q-6", insured, "US-TX", covered_borrower=False)
    member = service.check_offer("q-7", insured, "US-AL", covered_borrower=True)
    assert civilian.check.apr_percent < 36 < member.check.mapr_percent
    assert not member.kept
    assert [r.code for r in member.check.reasons] == ["mla.mapr-exceeded"]
    assert service.check_offer("q-8", insured, "US-AL", covered_borrower=False).kept


async def test_local_mla_provider_and_the_bounded_cache() -> None:
    provider = LocalMlaStatusProvider(
        [CoveredPeriod("Doe", date(1990, 5, 17), "123456789", date(2020, 1, 1), date(2027, 1, 1))]
    )
    query = MlaQuery("DOE", "Jane", date(1990, 5, 17), "123456789", date(2026, 11, 22))
    assert (await provider.check(query, NOW)).covered
    assert not (await provider.check(replace(query, as_of=date(2027, 1, 2)), NOW)).covered
    assert not (await provider.check(replace(query, ssn_or_dod_id="000000000"), NOW)).covered
    cache = MlaStatusCache(provider, capacity=2)
    first = await cache.status("b-1", query, NOW)
    assert await cache.status("b-1", query, NOW) == first, "asked once per borrower and day"
    for borrower in ("b-2", "b-3", "b-4"):
        await cache.status(borrower, query, NOW)
    assert len(cache) == 2
    cache.forget("b-4")
    assert len(cache) == 1


# --- KYC ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"document_type": "library-card"}, "kyc.document-type"),
        ({"expires_on": date(2026, 11, 1)}, "kyc.document-expired"),
        ({"last_name": "Dough"}, "kyc.name-mismatch"),
        ({"date_of_birth": date(1990, 5, 18)}, "kyc.dob-mismatch"),
        ({"number": " "}, "kyc.document-number"),
    ],
)
async def test_local_kyc_rejects_each_kind_of_bad_document(change: dict[str, object], code: str) -> None:
    review = await reviewed(LocalKycProvider(SECRET), PROFILE, replace(GOOD_DOC, **change))  # type: ignore[arg-type]
    assert review.state is KycState.REJECTED
    assert review.tier is KycTier.NONE
    assert code in [r.code for r in review.reasons]


async def test_local_kyc_age_of_majority_by_jurisdiction() -> None:
    minor = IdentityProfile("Sam", "Roe", date(2006, 1, 1), "US-MS")  # 20 years old, majority at 21 in Mississippi
    doc = replace(GOOD_DOC, first_name="Sam", last_name="Roe", date_of_birth=date(2006, 1, 1))
    provider = LocalKycProvider(SECRET, age_of_majority={"US-MS": 21})
    assert [r.code for r in (await reviewed(provider, minor, doc)).reasons] == ["kyc.under-age"]
    review = await reviewed(provider, replace(minor, country="US-FL"), doc)
    assert review.state is KycState.APPROVED
    assert review.tier is KycTier.STANDARD


@pytest.mark.parametrize(
    ("number", "tier"), [("X1234567", KycTier.STANDARD), ("B7", KycTier.BASIC), ("E7", KycTier.ENHANCED)]
)
async def test_the_simulated_tier_is_the_providers_choice_for_test_identities(number: str, tier: KycTier) -> None:
    review = await reviewed(LocalKycProvider(SECRET), PROFILE, replace(GOOD_DOC, number=number))
    assert review.tier is tier


async def test_the_local_provider_forgets_its_oldest_applicants() -> None:
    provider = LocalKycProvider(SECRET, max_applicants=3)
    first = await provider.create_applicant("b-0", PROFILE, NOW)
    for n in range(1, 10):
        await reviewed(provider, PROFILE, GOOD_DOC) if n % 2 else await provider.create_applicant(
            f"b-{n}", PROFILE, NOW
        )
    assert len(provider.outbox) <= 3
    with pytest.raises(KycProviderError, match="unknown applicant"):
        await provider.submit_document(first.applicant_id, GOOD_DOC, NOW)


def test_a_review_payload_must_be_consistent() -> None:
    review = KycReview("e-1", "a-1", "b-1", KycState.REJECTED, KycTier.NONE, ())
    assert review_of(review.payload()) == review
    with pytest.raises(WebhookRejected, match="tier without an approval"):
        review_of(review.payload() | {"tier": 3})
    with pytest.raises(WebhookRejected, match="not an applicant review"):
        review_of({"type": "applicantReviewed", "eventId": "e-2"})


def test_tiers_by_amount_and_product() -> None:
    assert DEFAULT_TIER_LIMITS.required_tier(Decimal("900"), Product.TRADITIONAL) is KycTier.BASIC
    assert DEFAULT_TIER_LIMITS.required_tier(Decimal("2000"), Product.TRADITIONAL) is KycTier.STANDARD
    assert DEFAULT_TIER_LIMITS.required_tier(Decimal("2000"), Product.DEFI) is KycTier.BASIC
    assert DEFAULT_TIER_LIMITS.required_tier(Decimal("100000"), Product.DEFI) is KycTier.ENHANCED


async def test_webhook_verified_and_tampered_or_replayed_refused() -> None:
    provider = LocalKycProvider(SECRET)
    await provider.submit_document((await provider.create_applicant("b-1", PROFILE, NOW)).applicant_id, GOOD_DOC, NOW)
    body, headers = provider.outbox[-1]
    guard = InMemoryReplayGuard()
    assert verify_webhook(body, headers, SECRET, NOW + timedelta(seconds=3), guard)["state"] == "approved"
    with pytest.raises(WebhookRejected, match="already delivered"):
        verify_webhook(body, headers, SECRET, NOW + timedelta(seconds=4), guard)
    tampered = body.replace(b'"approved"', b'"rejected"')
    with pytest.raises(WebhookRejected, match="signature"):
        verify_webhook(tampered, headers, SECRET, NOW, InMemoryReplayGuard())
    with pytest.raises(WebhookRejected, match="window"):
        verify_webhook(body, headers, SECRET, NOW + timedelta(hours=1), InMemoryReplayGuard())
    with pytest.raises(WebhookRejected, match="signature"):
        verify_webhook(body, headers, b"other-secret", NOW, InMemoryReplayGuard())
    with pytest.raises(WebhookRejected, match="no signature"):
        verify_webhook(body, {}, SECRET, NOW, InMemoryReplayGuard())
    non_ascii = {SIGNATURE_HEADER: headers[SIGNATURE_HEADER][:-2] + "é€"}
    with pytest.raises(WebhookRejected, match="signature"):
        verify_webhook(body, non_ascii, SECRET, NOW, InMemoryReplayGuard())
    deep = b"[" * 30_000 + b"]" * 30_000  # signed, within the 64 KiB cap, nested past the recursion limit
    with pytest.raises(WebhookRejected, match="no eventId"):
        verify_webhook(deep, sign_webhook(deep, SECRET, NOW), SECRET, NOW, InMemoryReplayGuard())
    # the same timestamp spelled as int() would also read it: refused, though the signature over it would verify
    stamp, mac = headers[SIGNATURE_HEADER].removeprefix("t=").split(",v1=")
    arabic = "".join(chr(0x0660 + int(digit)) for digit in stamp)
    for spelling in (f" +{stamp}", f"{stamp[:3]}_{stamp[3:]}", arabic):
        with pytest.raises(WebhookRejected, match="not plain digits"):
            verify_webhook(body, {SIGNATURE_HEADER: f"t={spelling},v1={mac}"}, SECRET, NOW, InMemoryReplayGuard())


# --- screening through the service -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [SANCTIONED, SANCTIONED.lower(), "0x" + SANCTIONED[2:].upper()])
def test_sanctioned_wallet_blocked_at_request_and_at_accept(service: ComplianceService, form: str) -> None:
    borrower = BorrowerFacts("b-1", form, "Jane Doe", "US-FL")
    request = service.screen_credit_request(borrower, Product.DEFI, Decimal("1000"), approved())
    assert request.outcome is Outcome.DENY
    assert "sanctions.address" in [r.code for r in request.reasons]
    accept = screen_accept(service, borrower, "q-1")
    assert accept.outcome is Outcome.DENY
    assert "ofac-sdn-digital-currency-addresses" in accept.versions
    assert not service.screen_collateral_source(form, 31337).allowed


def test_clean_request_allowed_and_kyc_enforced(service: ComplianceService) -> None:
    borrower = BorrowerFacts("b-9", "0x" + "12" * 20, "Jane Doe", "US-FL")
    ok = service.screen_credit_request(borrower, Product.TRADITIONAL, Decimal("5000"), approved())
    assert ok.outcome is Outcome.ALLOW, ok.reasons
    assert set(ok.versions) == {"ofac-sdn-digital-currency-addresses", "ofac-sdn-names", "jurisdictions"}
    low = service.screen_credit_request(borrower, Product.TRADITIONAL, Decimal("5000"), approved(KycTier.BASIC))
    assert [r.code for r in low.reasons] == ["kyc.tier-too-low"]
    none = service.screen_credit_request(borrower, Product.TRADITIONAL, Decimal("5000"), None)
    assert [r.code for r in none.reasons] == ["kyc.not-approved"]


def test_possible_name_match_goes_to_review_a_full_name_match_is_refused(service: ComplianceService) -> None:
    borrower = BorrowerFacts("b-10", "0x" + "34" * 20, "Mazen Hussein", "US-FL")  # HUSSEIN, Mazen Ali
    decision = service.screen_credit_request(borrower, Product.DEFI, Decimal("500"), approved())
    assert decision.outcome is Outcome.REVIEW
    assert not decision.allowed
    assert b"Mazen" not in canonical_json(decision.body())  # no PII in the clear
    full = BorrowerFacts("b-10", "0x" + "34" * 20, "Mahfouz Ould al Walid", "US-FL")
    refused = service.screen_credit_request(full, Product.DEFI, Decimal("500"), approved())
    assert refused.outcome is Outcome.DENY
    assert "sanctions.name-match" in {r.code for r in refused.reasons}


@pytest.mark.parametrize(
    ("wallet", "name", "jurisdiction", "amount", "kyc"),
    [
        ("0x" + "12" * 20, "Jane Doe", "US-FL", "5000", approved()),  # allowed for both products
        ("0x" + "12" * 20, "Jane Doe", "US-FL", "5000", approved(KycTier.BASIC)),  # tier too low for some
        ("0x" + "12" * 20, "Jane Doe", "US-FL", "5000", None),  # no KYC
        (SANCTIONED, "Jane Doe", "US-FL", "1000", approved()),  # sanctioned wallet
        ("0x" + "34" * 20, "Mazen Hussein", "US-FL", "500", approved()),  # possible name match: review
        ("0x" + "34" * 20, "Mahfouz Ould al Walid", "US-FL", "500", approved()),  # name match
        ("0x" + "12" * 20, "Jane Doe", "IR", "500", approved()),  # prohibited jurisdiction
        ("0x" + "12" * 20, "Jane Doe", "US-NY", "900000", approved()),  # a large amount
    ],
)
def test_the_outcomes_before_the_records_allow_exactly_what_the_records_allow(
    service: ComplianceService, wallet: str, name: str, jurisdiction: str, amount: str, kyc: KycStatus | None
) -> None:
    borrower = BorrowerFacts("b-20", wallet, name, jurisdiction)
    screened = service.screen_credit_request_outcomes(borrower, Product, Decimal(amount), kyc)
    records = service.credit_request_records(screened)
    at_once = service.screen_credit_request_products(borrower, Product, Decimal(amount), kyc)
    assert screened.allowed == {product for product, record in records.items() if record.allowed}
    assert {p: (r.outcome, r.reasons, r.inputs_hash, r.decided_at) for p, r in records.items()} == {
        p: (r.outcome, r.reasons, r.inputs_hash, r.decided_at) for p, r in at_once.items()
    }


def test_the_outcomes_from_a_cached_name_screening_are_the_screenings_and_none_before_it(
    service: ComplianceService,
) -> None:
    borrower = BorrowerFacts("b-21", "0x" + "34" * 20, "Mazen Husseyn", "US-FL")  # a possible match, not cached yet
    assert service.screen_credit_request_outcomes_if_cached(borrower, Product, Decimal("500"), approved()) is None
    screened = service.screen_credit_request_outcomes(borrower, Product, Decimal("500"), approved())
    cached = service.screen_credit_request_outcomes_if_cached(borrower, Product, Decimal("500"), approved())
    assert cached is not None
    assert screened.sanctions.hits  # the name resembles a listed one: the hits are compared too
    assert (cached.allowed, cached.deny, cached.sanctions) == (screened.allowed, screened.deny, screened.sanctions)
    renamed = BorrowerFacts("b-21", "0x" + "34" * 20, "Mazen Husseyn Jr", "US-FL")
    assert service.screen_credit_request_outcomes_if_cached(renamed, Product, Decimal("500"), approved()) is None


# --- PII and decision records ------------------------------------------------------------------------------------


def test_erased_subject_unreadable_while_records_keep_verifying(screen: SanctionsScreen) -> None:
    keys = InMemoryKeyProvider()
    keys.create_key("b-11")  # created when the borrower submitted their identity
    service = ComplianceService(screen, load_rules(), clock=lambda: NOW, inputs_key=INPUTS_KEY, vault=PiiVault(keys))
    borrower = BorrowerFacts("b-11", "0x" + "56" * 20, "Jane Doe", "US-FL")
    kyc = approved()
    record = service.screen_credit_request(borrower, Product.DEFI, Decimal("500"), kyc)
    vault = PiiVault(keys)
    assert record.pii_sealed is not None
    assert vault.decrypt("b-11", "screened-name", record.pii_sealed) == "Jane Doe"
    with pytest.raises(PiiError):
        vault.decrypt("b-12", "screened-name", record.pii_sealed)  # bound to its subject
    before = record.record_hash()
    hold = RetentionHold("Regulation B, 12 CFR 1002.12(b)", NOW, REGULATION_B)
    with pytest.raises(ErasureRefused, match=r"1002\.12") as refused:
        erase_subject(keys, "b-11", [hold], NOW + timedelta(days=30))
    assert refused.value.retain_until == NOW + REGULATION_B
    assert vault.decrypt("b-11", "screened-name", record.pii_sealed) == "Jane Doe"
    erase_subject(keys, "b-11", [hold], NOW + REGULATION_B + timedelta(days=1))
    with pytest.raises(SubjectKeyMissing):
        vault.decrypt("b-11", "screened-name", record.pii_sealed)
    assert record.record_hash() == before
    # a screening made after the erasure from a file read before it keeps no name, and creates no key
    late = service.screen_credit_request(borrower, Product.DEFI, Decimal("500"), kyc)
    assert late.pii_sealed is None
    with pytest.raises(SubjectKeyMissing):
        keys.data_key("b-11")
    inputs = {
        "borrowerId": "b-11",
        "wallet": "0x" + "56" * 20,
        "fullName": "Jane Doe",
        "jurisdiction": "US-FL",
        "product": "defi",
        "amount": Decimal("500"),
        "kyc": {"applicantId": kyc.applicant_id, "state": "approved", "tier": 2},
    }
    record.verify_inputs(inputs, INPUTS_KEY)
    with pytest.raises(DecisionIntegrityError):
        record.verify_inputs({**inputs, "amount": Decimal("501")}, INPUTS_KEY)
    # personal inputs are HMAC-SHA256 under the platform key: without it, a dictionary of names does not reverse them
    with pytest.raises(DecisionIntegrityError):
        record.verify_inputs(inputs)
    assert record.inputs_hash == "0x" + keyed_inputs_hash(INPUTS_KEY, inputs).hex() != "0x" + inputs_hash(inputs).hex()
    with pytest.raises(DecisionIntegrityError):
        record.verify_inputs(inputs, bytes(32))


def test_names_are_masked_at_the_call_site_and_the_filter_keeps_no_state(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("creditmesh.test.pii")
    logger.addFilter(PiiMaskingFilter())
    with caplog.at_level(logging.INFO, logger="creditmesh.test.pii"):
        logger.info(
            "applicant %s %s born 1990-05-17 mail jane.doe@example.com ssn 123-45-6789", Masked("Jane"), Masked("Doe")
        )
        logger.info("an error about Jane")  # a name logged bare is the call site's bug; no registry rewrites words
    text = caplog.records[-2].getMessage()
    assert "applicant J*** D**" in text
    assert "1990-05-17" not in text
    assert "123-45-6789" not in text
    assert "@example.com" in text
    assert caplog.records[-1].getMessage() == "an error about Jane", "'error' or any word is never masked globally"
    assert vars(PiiMaskingFilter()) == vars(logging.Filter()), "the filter holds nothing a borrower could extend"
    assert repr(Masked("Jane Doe")) == "'J*** D**'"
