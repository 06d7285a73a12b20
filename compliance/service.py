"""The compliance entry points the aggregator calls. Pure: the lists, rules and the clock are given at
construction, and facts that need I/O (KYC status, MLA status) are fetched by the caller through their providers
and passed in. Each call returns a ``DecisionRecord`` (persist it with a ``DecisionRepository`` in the caller's
unit of work); a list too old to use raises ``SanctionsListStale`` (fail closed)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from compliance.decisions import DecisionKind, DecisionRecord, decide
from compliance.eligibility import check_age, check_residence, normalize_code
from compliance.errors import SubjectKeyMissing
from compliance.jurisdiction import JurisdictionRules, OfferCheck, Product, Reason, check_offer, check_request
from compliance.kyc import DEFAULT_TIER_LIMITS, KycStatus, TierLimits, tier_sufficient
from compliance.pii import PiiVault
from compliance.sanctions.names import unspelled_letters
from compliance.sanctions.review import (
    PriorReview,
    ReviewState,
    ScreeningOutcome,
    classify,
    identity_fingerprint,
    identity_verdict,
)
from compliance.sanctions.screening import NameHit, SanctionsScreen, normalize_evm_address
from compliance.tila.disclosure import Disclosure, LoanTerms
from compliance.tila.recent import RecentDisclosures

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
NAME_MATCH = "sanctions.name-match"
NAME_POSSIBLE_MATCH = "sanctions.name-possible-match"
NAME_NOT_SCREENED = "sanctions.name-not-screened"  # letters the screen cannot spell in Latin script: held
NAME_HITS = 3  # the best listed names a screening records


# Said without the letters or their script: a decision's reasons are kept in the clear.
_NOT_SCREENED = Reason(
    NAME_NOT_SCREENED,
    "the name has letters outside the Latin alphabet: it could not be screened in Latin script against the OFAC list "
    "(only its Latin letters were), so it is held for a manual review",
)
_NOT_SCREENED_CONFIRMED = Reason(
    NAME_MATCH,
    "a reviewer found that the name, which could not be screened in Latin script, is a listed party's (or cannot be "
    "told apart from one)",
)


@dataclass(frozen=True)
class BorrowerFacts:
    borrower_id: str
    wallet: str  # 0x address, any case
    full_name: str  # PII: screened, never stored in the clear
    jurisdiction: str  # "US-NY", "GB", ...
    sanctions_reviews: tuple[PriorReview, ...] = ()  # reviewers' verdicts on this borrower's past name hits
    date_of_birth: date | None = None  # PII: with the name, the identity a name-not-screened review is about
    residence: str | None = None  # the verified identity's country of residence ("US-FL"); None without an identity


@dataclass(frozen=True)
class _Sanctions:
    deny: list[Reason]
    review: list[Reason]
    hits: tuple[tuple[NameHit, ScreeningOutcome], ...]
    versions: dict[str, str]  # the lists (and rules) this screening used
    unscreened: str | None = None  # the identity fingerprint of a name not screened and not cleared: its review
    identity: str | None = None  # the identity fingerprint of the name and date of birth screened: hits' reviews


@dataclass(frozen=True)
class ScreenedRequest:
    """A credit request screened for several products, before its decision records are made: what denies each
    product, and what the name screening found (``ComplianceService.credit_request_records`` makes the records)."""

    borrower: BorrowerFacts
    amount: Decimal
    kyc: KycStatus | None
    now: datetime
    sanctions: _Sanctions
    deny: dict[Product, list[Reason]]

    @property
    def allowed(self) -> set[Product]:
        """The products whose record will be ALLOW: nothing denies them and nothing needs a reviewer."""
        return {product for product, deny in self.deny.items() if not deny and not self.sanctions.review}


@dataclass(frozen=True)
class OfferDecision:
    kept: bool
    disclosure: Disclosure
    check: OfferCheck
    record: DecisionRecord


class ComplianceService:
    def __init__(
        self,
        screen: SanctionsScreen,
        rules: JurisdictionRules,
        clock: Clock,
        *,
        inputs_key: bytes,
        tier_limits: TierLimits = DEFAULT_TIER_LIMITS,
        vault: PiiVault | None = None,
    ) -> None:
        """``inputs_key``: the platform key (32 bytes or more) the inputs hashes of decisions on a borrower's
        personal data are HMAC-SHA256 under; ``vault`` seals the screened name under the subject's key."""
        self.inputs_key = inputs_key
        self.screen = screen
        self.rules = rules
        self.clock = clock
        self.tier_limits = tier_limits
        self.vault = vault
        self._disclosures = RecentDisclosures()  # the same terms (a request's lenders often agree) disclosed once

    def versions(self) -> dict[str, str]:
        return {**self.screen.versions, "jurisdictions": self.rules.label}

    def _sanctions(
        self,
        borrower: BorrowerFacts,
        now: datetime,
        screen: SanctionsScreen | None = None,
        names: list[NameHit] | None = None,
    ) -> _Sanctions:
        """``names``: the name's hits on ``screen`` when the caller has them (else the name is screened now)."""
        # one list version per decision, also when a newer one is loaded meanwhile
        screen = self.screen if screen is None else screen
        deny: list[Reason] = []
        review: list[Reason] = []
        hit = screen.screen_address(borrower.wallet, now)
        if hit is not None:
            programs = ", ".join(sorted({e.program for e in hit.entries}))
            deny.append(Reason("sanctions.address", f"wallet {hit.address} is on the OFAC SDN list ({programs})"))
        if names is None:
            names = screen.screen_name(borrower.full_name, now, limit=NAME_HITS)
        identity = self.identity_fingerprint(borrower)  # a clearance holds for the identity it was given for only
        screening = classify(names, borrower.sanctions_reviews, identity)
        for name_hit, outcome in screening.hits:
            entry = f"SDN entry {name_hit.ent_num} ({name_hit.program}) at {name_hit.score:.0f}/100"
            if outcome is ScreeningOutcome.MATCH:
                deny.append(Reason(NAME_MATCH, f"name matches {entry}"))
            else:
                review.append(Reason(NAME_POSSIBLE_MATCH, f"name resembles {entry}"))
        unscreened = None
        if unspelled_letters(borrower.full_name):
            fingerprint = identity
            verdict = identity_verdict(fingerprint, borrower.sanctions_reviews)
            if verdict is ReviewState.CONFIRMED:
                deny.append(_NOT_SCREENED_CONFIRMED)
            elif verdict is not ReviewState.CLEARED:
                review.append(_NOT_SCREENED)
            unscreened = None if verdict is ReviewState.CLEARED else fingerprint
        versions = {**screen.versions, "jurisdictions": self.rules.label}
        return _Sanctions(deny, review, screening.hits, versions, unscreened, identity)

    def screened_list_version(self, records: Iterable[DecisionRecord]) -> str:
        """The name list version the screening ``records`` were made with (the screen in use now only when none
        records one): a review opened from them names the list that made the hit, not one loaded since."""
        name_list = self.screen.names.version.name
        return next((r.versions[name_list] for r in records if name_list in r.versions), self.screen.name_list_version)

    def identity_fingerprint(self, borrower: BorrowerFacts) -> str:
        """The fingerprint of the identity screened (``compliance.sanctions.review.identity_fingerprint``)."""
        return identity_fingerprint(self.inputs_key, borrower.borrower_id, borrower.full_name, borrower.date_of_birth)

    @staticmethod
    def _reviews_input(borrower: BorrowerFacts) -> list[dict[str, object]]:
        return [
            {"entNum": r.ent_num, "entryFingerprint": r.entry_fingerprint, "state": r.state.value}
            for r in sorted(borrower.sanctions_reviews, key=lambda r: (r.ent_num is None, r.ent_num or 0))
        ]

    def _sealed(self, borrower: BorrowerFacts) -> bytes | None:
        """The screened name sealed under the subject's key; None without a vault, or when the key is gone (the
        borrower was erased after their file was read): the record then keeps no name, and no key is created."""
        if self.vault is None:
            return None
        try:
            return self.vault.encrypt(borrower.borrower_id, "screened-name", borrower.full_name)
        except SubjectKeyMissing:
            log.warning("borrower %s has no data key (erased): the decision record keeps no name", borrower.borrower_id)
            return None

    def _inputs(self, borrower: BorrowerFacts) -> dict[str, object]:
        inputs: dict[str, object] = {
            "borrowerId": borrower.borrower_id,
            "wallet": normalize_evm_address(borrower.wallet),
            "fullName": borrower.full_name,
            "jurisdiction": borrower.jurisdiction.upper(),
        }
        if borrower.residence is not None:  # the identity's, screened against the account's jurisdiction
            inputs["residence"] = normalize_code(borrower.residence)
        if borrower.sanctions_reviews:
            inputs["sanctionsReviews"] = self._reviews_input(borrower)
        return inputs

    def screen_credit_request(
        self, borrower: BorrowerFacts, product: Product, amount: Decimal, kyc: KycStatus | None
    ) -> DecisionRecord:
        """KYC tier sufficient for the amount and product, borrower and wallet not sanctioned, jurisdiction allows
        the product and amount, the borrower resident and of age in it. Raises SanctionsListStale (fail closed),
        ComplianceInputError for bad input."""
        return self.screen_credit_request_products(borrower, (product,), amount, kyc)[product]

    def screen_credit_request_products(
        self, borrower: BorrowerFacts, products: Iterable[Product], amount: Decimal, kyc: KycStatus | None
    ) -> dict[Product, DecisionRecord]:
        """``screen_credit_request`` for several products at once: the wallet and the name are screened once, and
        each product gets its own decision record (the name sealed once for all of them: one data-key read)."""
        return self.credit_request_records(self.screen_credit_request_outcomes(borrower, products, amount, kyc))

    def screen_credit_request_outcomes(
        self, borrower: BorrowerFacts, products: Iterable[Product], amount: Decimal, kyc: KycStatus | None
    ) -> ScreenedRequest:
        """``screen_credit_request_products``'s decisions without their records: which products are allowed, as of
        now, before the name is sealed (a key-store read) and the records made (``credit_request_records``), so
        that a caller can act on the decisions first and make the records while it waits for something else."""
        return self._outcomes(borrower, products, amount, kyc, self.clock())

    def screen_credit_request_outcomes_if_cached(
        self, borrower: BorrowerFacts, products: Iterable[Product], amount: Decimal, kyc: KycStatus | None
    ) -> ScreenedRequest | None:
        """``screen_credit_request_outcomes`` when the name's screening is cached (no name search: cheap enough to
        run on an event loop), else None. Raises as it raises."""
        now = self.clock()
        screen = self.screen
        names = screen.cached_name_hits(borrower.full_name, now, limit=NAME_HITS)
        if names is None:
            return None
        return self._outcomes(borrower, products, amount, kyc, now, self._sanctions(borrower, now, screen, names))

    def _outcomes(
        self,
        borrower: BorrowerFacts,
        products: Iterable[Product],
        amount: Decimal,
        kyc: KycStatus | None,
        now: datetime,
        sanctions: _Sanctions | None = None,
    ) -> ScreenedRequest:
        sanctions = self._sanctions(borrower, now) if sanctions is None else sanctions
        identity = self._identity(borrower, now)
        deny = {
            product: [
                *sanctions.deny,
                *check_request(self.rules, borrower.jurisdiction, product, amount),
                *tier_sufficient(kyc, amount, product, self.tier_limits),
                *identity,
            ]
            for product in products
        }
        return ScreenedRequest(borrower, amount, kyc, now, sanctions, deny)

    def credit_request_records(self, screened: ScreenedRequest) -> dict[Product, DecisionRecord]:
        """The decision record of each product ``screened``, the name sealed once for all of them."""
        borrower, kyc = screened.borrower, screened.kyc
        sanctions = screened.sanctions
        sealed = self._sealed(borrower)
        records = {}
        for product, deny in screened.deny.items():
            inputs = {
                **self._inputs(borrower),
                "product": product.value,
                "amount": screened.amount,
                "kyc": None
                if kyc is None
                else {"applicantId": kyc.applicant_id, "state": kyc.state.value, "tier": int(kyc.tier)},
            }
            records[product] = decide(
                DecisionKind.CREDIT_REQUEST,
                borrower.borrower_id,
                inputs,
                list(deny),
                sanctions.versions,
                screened.now,
                review_reasons=list(sanctions.review),
                pii_sealed=sealed,
                name_hits=sanctions.hits,
                unscreened_identity=sanctions.unscreened,
                screened_identity=sanctions.identity,
                inputs_key=self.inputs_key,
            )
        return records

    def _identity(self, borrower: BorrowerFacts, now: datetime) -> list[Reason]:
        """The identity on file against the account (``compliance.eligibility``): the borrower of age in the
        account's jurisdiction, whatever the KYC provider checked it against, and resident there, not in a prohibited
        jurisdiction."""
        return [
            *check_residence(self.rules, borrower.jurisdiction, borrower.residence),
            *check_age(self.rules, borrower.jurisdiction, borrower.date_of_birth, now.date()),
        ]

    def screen_acceptance(
        self, borrower: BorrowerFacts, quote_id: str, *, kyc: KycStatus | None, product: Product, amount: Decimal
    ) -> DecisionRecord:
        """Re-screen at accept with the lists current now: the wallet and name, the jurisdiction, the identity on
        file against the account (resident there, of age there), and the KYC status on file now — approved, at the
        tier the quote's ``amount`` of ``product`` needs (``kyc.not-approved`` for a verification rejected, or
        replaced by one still pending, since the quote; ``kyc.tier-too-low``)."""
        now = self.clock()
        sanctions = self._sanctions(borrower, now)
        deny, review = list(sanctions.deny), sanctions.review
        code = borrower.jurisdiction.upper()
        if code in self.rules.prohibited or code.split("-", 1)[0] in self.rules.prohibited:
            deny.append(Reason("jurisdiction.prohibited", f"{code} is comprehensively sanctioned"))
        deny.extend(tier_sufficient(kyc, amount, product, self.tier_limits))
        deny.extend(self._identity(borrower, now))
        inputs = {
            **self._inputs(borrower),
            "quoteId": quote_id,
            "product": product.value,
            "amount": amount,
            "kyc": None
            if kyc is None
            else {"applicantId": kyc.applicant_id, "state": kyc.state.value, "tier": int(kyc.tier)},
        }
        return decide(
            DecisionKind.ACCEPTANCE,
            borrower.borrower_id,
            inputs,
            deny,
            sanctions.versions,
            now,
            review_reasons=review,
            pii_sealed=self._sealed(borrower),
            name_hits=sanctions.hits,
            unscreened_identity=sanctions.unscreened,
            screened_identity=sanctions.identity,
            inputs_key=self.inputs_key,
        )

    def screen_collateral_source(self, address: str, chain_id: int) -> DecisionRecord:
        """The on-chain address the collateral comes from (a permit owner or transfer sender)."""
        now = self.clock()
        screen = self.screen  # one list version per decision, also when a newer one is loaded meanwhile
        hit = screen.screen_address(address, now)
        lower = normalize_evm_address(address)
        deny = (
            []
            if hit is None
            else [Reason("sanctions.collateral-source", f"collateral source {lower} is on the OFAC SDN list")]
        )
        return decide(
            DecisionKind.COLLATERAL_SOURCE,
            lower,
            {"address": lower, "chainId": chain_id},
            deny,
            {screen.addresses.version.name: screen.addresses.version.label},
            now,
        )

    def check_offer(self, offer_ref: str, terms: LoanTerms, jurisdiction: str, covered_borrower: bool) -> OfferDecision:
        """Disclose one offer and keep or drop it against the usury caps of ``jurisdiction`` and, for a covered
        borrower, the MLA's 36% MAPR. ``disclosure.terms_hash()`` is the offer's termsHash. Offers of the same terms
        share one disclosure (``compliance.tila.recent``)."""
        now = self.clock()
        disclosure = self._disclosures.disclose(terms)
        check = check_offer(self.rules, terms, disclosure, jurisdiction, covered_borrower)
        inputs = {
            "offerRef": offer_ref,
            "termsHash": disclosure.terms_hash(),
            "jurisdiction": jurisdiction.upper(),
            "coveredBorrower": covered_borrower,
        }
        record = decide(
            DecisionKind.OFFER, offer_ref, inputs, list(check.reasons), {"jurisdictions": self.rules.label}, now
        )
        return OfferDecision(check.kept, disclosure, check, record)
