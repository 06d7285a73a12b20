"""The per-offer work gives exactly what it gave before it was made faster: on 40 seeded random credit requests of 13
offers each (single payments and installments of every frequency and day count, balloons, odd first periods, rates
past the usury caps, covered borrowers, offers of the same terms within a request), every offer's outcome, decision
record (inputs hash, reasons, record hash), disclosure (canonical JSON, termsHash, the stored document), the lender's
terms, the EIP-712 digest and signature, and the request's ranked and signed quotes and attestations are hashed
together and compared with the digest the code gave before (``aggregator.quote_offers`` at 7fa877d), ids and
clock fixed."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from aggregator.assets import Asset
from aggregator.early_disclosure import EarlyDisclosure
from aggregator.fanout import ProviderOutcome
from aggregator.quote_offers import QuoteSigning, ValidRequest, disclose, rank_drafts
from compliance import ComplianceService, DecisionRecord, random_ids
from compliance.jurisdiction import RULES_DIR, parse_rules
from compliance.sanctions.lists import load_newest
from compliance.sanctions.screening import SanctionsScreen
from contracts.typed_data import Domain
from providers.models import InstallmentSchedule, ProviderKind, ProviderOffer, RepaymentShape
from risk.policy import assess
from risk.profile import CreditRequestFacts
from tests.support.quoting import QUOTE_SIGNER, RISK_SIGNER, _address, _Record, borrower_file

pytestmark = pytest.mark.unit

#: sha256 of every output below, as aggregator.quote_offers and compliance gave them at 7fa877d; taken again on
#: 2026-11-28 when the disclosure gained the 12 CFR 1026.18(k)-(m) statements and the collateral (schema /2), which
#: changes every document, so every termsHash, offer digest and signature (nothing else in the code changed with it);
#: and again on 2026-11-29 when a plan of one installment became a single advance repaid by a single payment for its
#: APR (Appendix J (b)(5)(vi)/(vii)), which changes the APR, MAPR and decisions of the requests' one-installment
#: offers only (8 disclosures of them here); and again on 2026-11-29 when an amortizing offer whose schedule runs
#: more than a week past the term asked came to be dropped before its disclosure (``offer_terms.schedule_past_term``:
#: 75 of the 174 installment offers here, their outcomes now naming it; the offers kept take the same path as before)
EXPECTED = "e218d84e33c899f3e44c5b12d293137fd50313d6a979ab80c48bdebc457fde3f"
CHAINS = ("ethereum-local", "polygon-local", "arbitrum-local")
#: the rules the digest was taken under (a newer rules file changes the decision records' version, not the code)
RULES = parse_rules((RULES_DIR / "jurisdictions-2026-11-01.json").read_bytes())
NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


class _Chain:
    def __init__(self, name: str, chain_id: int, aggregator: str, oracle: str) -> None:
        self.name, self.chain_id = name, chain_id
        self.record = _Record({"CreditAggregator": aggregator, "CreditScoringOracle": oracle})
        self.aggregator_domain, self.oracle_domain = Domain(chain_id, aggregator), Domain(chain_id, oracle)  # type: ignore[arg-type]


def _offer(rng: random.Random, n: int, principal: int, term_days: int, start: datetime) -> ProviderOffer:
    rate = rng.choice([rng.randrange(0, 40_000), rng.choice([650, 805, 1_100, 1_500, 2_100, 3_700])])
    fee = principal * rng.choice([0, 50, 100, 150, rng.randrange(0, 1_000)]) // 10_000
    pool = rng.random() < 0.25
    repayment, count, schedule = RepaymentShape.SINGLE, 1, None
    if not pool and rng.random() < 0.4:
        frequency = rng.choice(["monthly", "semimonthly", "biweekly", "weekly", "quarterly"])
        count = rng.randrange(1, 13)
        first_due = None if rng.random() < 0.7 else start.date() + timedelta(days=rng.randrange(5, 40))
        balloon = 0 if rng.random() < 0.7 else principal * rng.randrange(1, 50) // 100 // 10_000 * 10_000
        day_count = rng.choice(["30/360", "actual/365", "actual/actual"])
        repayment = RepaymentShape.INSTALLMENTS
        schedule = InstallmentSchedule(frequency, day_count, first_due, balloon)  # type: ignore[arg-type]
    return ProviderOffer(
        provider_id=f"pool:{CHAINS[n % 3]}:USDC" if pool else f"lender-{n:02d}",
        kind=ProviderKind.POOL if pool else ProviderKind.TRADITIONAL,
        asset="USDC",
        principal=principal,
        rate_bps=rate,
        origination_fee=fee,
        term_days=term_days,
        repayment=repayment,
        expires_at=start + timedelta(seconds=rng.randrange(30, 900)),
        provider_ref=f"ref-{n}-{rate}",
        chain=CHAINS[n % 3] if pool else None,
        pool_address=_address(0xD0 + n % 3) if pool else None,
        installments=count,
        schedule=schedule,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return repr(value)


def outputs(requests: int = 40, seed: int = 18) -> str:
    """The sha256 of every output of ``requests`` seeded random credit requests' per-offer work."""
    rng = random.Random(seed)
    ids = iter(range(10**9))
    real_uuid4, buffered_uuid4 = uuid.uuid4, random_ids.uuid4
    uuid.uuid4 = random_ids.uuid4 = lambda: uuid.UUID(int=next(ids))
    try:
        compliance = ComplianceService(
            SanctionsScreen(*load_newest()), RULES, clock=lambda: NOW, inputs_key=bytes(range(32))
        )
        chains = {
            name: _Chain(name, 31337 + i, _address(0xA0 + i), _address(0xB0 + i)) for i, name in enumerate(CHAINS)
        }
        tokens: dict[str, Any] = {name: _address(0xC0 + i) for i, name in enumerate(CHAINS)}
        usdc, weth = Asset("USDC", 6, Decimal(1), tokens), Asset("WETH", 18, Decimal(3000), dict(tokens))
        borrower = borrower_file()
        signing = QuoteSigning(cast(Any, chains), QUOTE_SIGNER, RISK_SIGNER, quote_ttl=timedelta(minutes=5))
        digest = hashlib.sha256()
        for r in range(requests):
            principal = rng.randrange(100_00, 50_000_00) * 10_000
            term_days = rng.randrange(1, 366)
            start = NOW + timedelta(seconds=rng.randrange(0, 400 * 86_400), microseconds=rng.randrange(10**6))
            jurisdiction = rng.choice(["US-FL", "US-NY", "US-CA", "US-TX", "GB"])
            covered = rng.random() < 0.3
            borrower = replace(borrower, jurisdiction=jurisdiction)
            valid = ValidRequest(usdc, principal, weth, 10**18, list(CHAINS))
            facts = CreditRequestFacts(
                amount=usdc.from_base_units(principal), asset="USDC", term_days=term_days, purpose="general"
            )
            decision = assess(borrower.profile, facts, None)
            offers = [_offer(rng, n, principal, term_days, start) for n in range(10)]
            offers += [offers[rng.randrange(10)] for _ in range(3)]  # lenders offering the same terms
            outcomes = [ProviderOutcome(o.provider_id, "offered", "1 offer(s)", 1, [o]) for o in offers]
            nonces = {name: r * 3 + i for i, name in enumerate(CHAINS)}
            signed: list[Any] = []

            def disclose_and_sign(
                outcome: ProviderOutcome,
                found: list[DecisionRecord],
                is_covered: bool,
                valid: ValidRequest = valid,
                start: datetime = start,
                borrower: Any = borrower,
                nonces: dict[str, int] = nonces,
                signed: list[Any] = signed,
            ) -> list[Any]:
                drafts = disclose(compliance, cast(Any, chains), borrower, valid, [outcome], found, is_covered, start)
                for draft in drafts:
                    draft.signed = signing.sign_offer(borrower, valid, draft, nonces[draft.chain.name], start)
                    signed.append(draft.signed)
                return drafts

            disclosing: EarlyDisclosure[Any] = EarlyDisclosure(disclose_and_sign)
            disclosing.covered(covered)
            for outcome in outcomes:
                disclosing.answered(outcome)
            records: list[DecisionRecord] = []
            drafts = disclosing.drafts(outcomes, covered, records)
            rows: list[Any] = [[o.outcome, o.detail] for o in outcomes]
            rows += [[rec.inputs_hash, rec.outcome, repr(rec.reasons), rec.record_hash()] for rec in records]
            for draft in drafts:
                rows.append(
                    [
                        draft.disclosure.to_canonical_json().decode(),
                        draft.disclosure.terms_hash(),
                        draft.disclosure_json,
                        draft.lender_terms,
                        repr(draft.disclosure),
                    ]
                )
            rows += [[s.nonce, s.expiry, s.digest, s.signature, s.offer.as_message()] for s in signed]
            if decision.approved and decision.grade is not None and drafts:
                quotes = signing.sign(borrower, valid, decision, rank_drafts(valid, drafts), nonces, f"r{r}", start)
                rows += [
                    [
                        *(q.rank, q.provider_id, q.offer, q.offer_digest, q.offer_signature, q.attestation),
                        *(q.attestation_signature, q.disclosure, repr(q.expires_at)),
                    ]
                    for q in quotes
                ]
            digest.update(json.dumps(_jsonable(rows), sort_keys=True).encode())
        return digest.hexdigest()
    finally:
        uuid.uuid4, random_ids.uuid4 = real_uuid4, buffered_uuid4


def test_the_per_offer_work_gives_what_it_gave_before() -> None:
    assert outputs() == EXPECTED
