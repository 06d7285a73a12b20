"""What one credit request runs, in order: validate, price the collateral, velocity, screening (beside the on-chain
history, the collateral's terms on each chain and the borrower's open principal), risk, the providers of a product
the screening denied left out (``ineligible``, its reasons named: ``aggregator.quote_adverse``), the borrower's exposure
(``aggregator.quote_exposure``: a request no accept could take refused, recorded declined; the providers of a product
past its KYC tier's ceiling left out), the chains whose contracts would refuse the loan left out
(``aggregator.collateral_limits``: the providers that lend only there are ineligible, the reason named) and those
whose clock runs ahead of ours (``aggregator.quote_chains``), then the fan-out to every eligible provider with one
deadline — each answer's offers disclosed as it comes, the MLA status and the screening's records made meanwhile —
and after the last answer the ranking, the offer nonces, the signatures and ONE write of the request, its outcomes,
quotes and decision records (an approved request with no offer kept: an adverse action, ``aggregator.quote_adverse``).

``aggregator.quoting.QuotingService`` is its public face; the offers' own steps (disclosure, ranking, signing) are
``aggregator.quote_offers``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, NoReturn

from aggregator.assets import AssetRegistry, parse_amount
from aggregator.borrowers import BorrowerFile
from aggregator.collateral_limits import CollateralLimits
from aggregator.early_disclosure import EarlyDisclosure
from aggregator.errors import ComplianceDenied, ExposureLimitExceeded, ExposureUnvalued, InvalidCreditRequest
from aggregator.exposure import ExposureLimits
from aggregator.fanout import ProviderOutcome, fan_out
from aggregator.metrics import FANOUT_OUTCOMES
from aggregator.offer_checks import installments_of
from aggregator.owed import Exposure
from aggregator.platform import ChainRuntime
from aggregator.quote_adverse import no_offer_reasons, no_offers_record, no_offers_risk, split_by_screening
from aggregator.quote_chains import clocks_ahead, debt_ceilings, left_out, refused_chains
from aggregator.quote_exposure import ExposureRefusal, refusal_record, refused_risk, split_by_exposure
from aggregator.quote_offers import Draft, QuoteSigning, ValidRequest, disclose, rank_drafts, risk_summary
from aggregator.quote_refusals import (
    NO_IDENTITY,
    VelocityCheck,
    admit_request,
    asked_terms,
    asked_text,
    refusal_notice,
    request_notice,
)
from aggregator.quote_store import CreditRequestRecord, OfferNonceKey, OutcomeRecord, QuotedRequest, QuotingStore
from aggregator.sanctions_reviews import borrower_reasons
from aggregator.valuation import FeedPricer
from chain.signers import Signer
from compliance import ComplianceService, DecisionRecord, Product
from compliance.adverse_action import LOCAL_NOTICE_PARTIES, NoticeParties
from compliance.errors import KycProviderError
from compliance.mla import MlaStatusCache, mla_queries
from compliance.service import ScreenedRequest
from providers.base import ProviderAdapter
from providers.models import QuoteRequest
from providers.resilience import ResilientProvider
from risk.onchain_source import ChainOnchainSource, OnchainReading
from risk.policy import DEFAULT_POLICY, Policy, RiskDecision, assess
from risk.profile import CreditRequestFacts
from risk.repository import StoredDecision
from risk.velocity import VelocityLimits, VelocityStore

MIN_TERM_DAYS, MAX_TERM_DAYS = 1, 365
#: an answer with this many installments or more (its offers' together) is disclosed in a worker thread: ~20 ms of
#: work on the event loop at most for the others (``aggregator.early_disclosure``)
OFFLOAD_INSTALLMENTS = 200
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CreditRequestSpec:
    amount: str
    asset: str
    term_days: int
    purpose: str
    collateral_asset: str
    collateral_amount: str
    preferred_chains: tuple[str, ...] = ()


@dataclass
class QuotingConfig:
    fanout_deadline: float = 2.0
    quote_ttl: timedelta = timedelta(minutes=10)
    lendable_assets: frozenset[str] = frozenset({"USDC"})
    velocity: VelocityLimits = field(default_factory=VelocityLimits)
    policy: Policy = DEFAULT_POLICY
    inputs_key: bytes | None = None  # the platform key risk's inputs hash (over the credit profile) is HMAC'd under
    notice: NoticeParties = LOCAL_NOTICE_PARTIES  # who a refused request's adverse-action notice names


class QuotePipeline:
    """Runs credit requests (``request_credit``) with the platform's parts."""

    def __init__(
        self,
        store: QuotingStore,
        chains: dict[str, ChainRuntime],
        assets: AssetRegistry,
        providers: Sequence[ProviderAdapter],
        quote_signer: Signer,
        risk_signer: Signer,
        compliance: ComplianceService,
        velocity: VelocityStore,
        config: QuotingConfig,
        mla: MlaStatusCache | None = None,
        onchain: ChainOnchainSource | None = None,
        pricer: FeedPricer | None = None,
        collateral_limits: CollateralLimits | None = None,
    ) -> None:
        self._store, self._chains, self._assets = store, chains, assets
        self._providers, self._quote_signer, self._risk_signer = providers, quote_signer, risk_signer
        self._compliance, self._velocity, self._config = compliance, velocity, config
        self._mla = mla
        self._onchain = onchain
        self._pricer = pricer  # the contracts' feeds; None: the assets' configured prices (unit tests)
        # the collateral's terms on each chain (``aggregator.collateral_limits``): read wherever the prices are read
        # from the chains' contracts (None for both: chains without contracts, the unit tests)
        if collateral_limits is None and pricer is not None:
            collateral_limits = CollateralLimits(chains)
        self._limits = collateral_limits
        self._signing = QuoteSigning(chains, quote_signer, risk_signer, config.quote_ttl)
        self._exposure_limits = ExposureLimits(tier_limits=compliance.tier_limits)  # the accept's (its default)

    async def _ledger_defaults(self, wallet: str, reading: OnchainReading | None) -> int:
        """The defaults the ledger records of ``wallet`` on the chains whose history could not be read now (an
        outage, a timeout): a skipped chain's history is missing, not clean, and a borrower whose one default is
        there must not pass as a wallet without one. The ledger is the indexer's record of the same events, as
        recent as its last confirmed block."""
        if reading is None or not reading.skipped:
            return 0
        chain_ids = [self._chains[name].chain_id for name in reading.skipped if name in self._chains]
        if not chain_ids:
            return 0

        def read() -> int:
            with self._store.unit_of_work() as uow:
                return uow.quoting.ledger_defaults(wallet, chain_ids)

        return await asyncio.to_thread(read)

    async def request_credit(
        self,
        borrower: BorrowerFile,
        spec: CreditRequestSpec,
        client_ip: str | None = None,
        correlation_id: str = "",
        before_write: Callable[[], None] | None = None,
        exposure: Exposure | None = None,
    ) -> QuotedRequest:
        """Validate, screen, score, fan out, disclose, sign and store; returns the credit request as written.

        ``before_write`` (blocking) runs in the write's worker thread just before the request is written, and only
        then: what it keeps (the borrower's new credit profile, ``api.routers.credit_requests``) is never kept for a
        request refused by validation, velocity or screening, nor one that failed before its write. A request refused
        for the borrower's exposure is written (declined, with its risk decision) before its refusal is raised.
        ``exposure``: the borrower's open principal when the caller read it already (``QuotingService.open_principal``,
        in the API's hop that read the caller); without it, it is read here beside the screening."""
        valid = self._validate(spec)
        if self._pricer is not None:  # the collateral valued on the prices the CollateralManager will use
            asset, collateral = await self._pricer.priced(valid.chains, valid.asset, valid.collateral)
            valid = replace(valid, asset=asset, collateral=collateral)
        asked = asked_terms(valid.asset.format(valid.principal), valid.asset.symbol, spec.term_days)
        # velocity, then an identity on file: a refusal here is kept as a decision record (``quote_refusals``)
        velocity = VelocityCheck(
            self._velocity, self._config.velocity, client_ip, self._compliance.inputs_key, self._config.notice
        )
        await admit_request(self._store, velocity, borrower, asked)
        # The on-chain history is read while the borrower is screened: on the event loop when the name's screening is
        # cached (no name search: no worker-thread hop, whose two wake-ups cost more than the screening), else in a
        # worker thread (the name search is CPU work that would stall the event loop); a refusal's records are
        # written in a worker thread.
        history = asyncio.create_task(self._onchain.read(borrower.wallet)) if self._onchain is not None else None
        # the borrower's open principal (no lock: the accept counts again under it), a worker thread's read unless
        # the caller read it already
        owing = (
            asyncio.create_task(asyncio.to_thread(self._store.open_principal, borrower.id))
            if exposure is None
            else None
        )
        # the collateral's terms on each chain (kept a few seconds: usually no read at all), beside the screening too
        limits = (
            asyncio.create_task(self._limits.read(valid.chains, valid.collateral)) if self._limits is not None else None
        )
        # and the collateral valued on each chain's own feeds, which its CollateralManager judges the loan's LTV by
        # (the request was valued on the first chain's: another may price it lower); kept as the prices are
        pricing = (
            asyncio.create_task(self._pricer.priced_each(valid.chains, valid.asset, valid.collateral))
            if self._pricer is not None and len(valid.chains) > 1
            else None
        )
        try:
            screened = self._screen(borrower, valid.amount, cached_only=True)
            if screened is None:
                screened = await asyncio.to_thread(self._screen, borrower, valid.amount)
            assert screened is not None
            if not screened.allowed:
                await asyncio.to_thread(self._refuse, borrower, screened, asked)
        except BaseException:
            if history is not None:
                history.cancel()
            for task in (limits, pricing, owing):
                if task is not None:
                    task.cancel()
            raise
        request_id = str(uuid.uuid4())
        reading = await history if history is not None else None
        ledger_defaults = await self._ledger_defaults(borrower.wallet, reading)
        if ledger_defaults:  # a chain not read now holds a default the ledger knows of: it is not missed
            assert reading is not None
            features = reading.features
            reading = replace(
                reading, features=replace(features, loans_defaulted=features.loans_defaulted + ledger_defaults)
            )
        chain_limits = await limits if limits is not None else {}
        chain_prices = await pricing if pricing is not None else {}
        if owing is not None:
            exposure = await owing
        assert exposure is not None
        decision = assess(
            borrower.profile,
            CreditRequestFacts(
                amount=valid.amount,
                asset=valid.asset.symbol,
                term_days=spec.term_days,
                purpose=spec.purpose,
                collateral_value=valid.collateral_value,
            ),
            reading.features if reading is not None else None,
            self._config.policy,
            inputs_key=self._config.inputs_key,
        )
        now = datetime.now(UTC)
        outcomes: list[ProviderOutcome] = []
        drafts: list[Draft] = []
        offer_records: list[DecisionRecord] = []
        risk: dict[str, Any] | None = None
        # the screening's decision records (the name sealed: a key-store read) are made, and the offer nonces of the
        # request's chains reserved where that is a transaction of its own (PostgreSQL), while the lenders answer;
        # where the nonces are at hand (reserved earlier in a block), neither: the records are made in the write
        sealing: asyncio.Future[tuple[list[DecisionRecord], dict[OfferNonceKey, int]]] | None = None
        at_hand: dict[OfferNonceKey, int] = {}
        premade: list[ProviderOutcome] = []  # the providers left out: their products' screening and exposure, their
        # chains' limits
        refusal: ExposureRefusal | None = None
        owed: Decimal | None = None  # the open principal, once counted
        if decision.approved and decision.grade is not None:
            # the providers of a product the screening denied are left out, named
            eligible, premade = split_by_screening(self._providers, screened.allowed, screened.deny)
            try:
                owed, eligible, over = split_by_exposure(
                    eligible,
                    exposure,
                    valid.amount,
                    decision.max_amount,
                    borrower.kyc,
                    self._exposure_limits,
                    self._assets,
                )
                premade += over
            except (ExposureLimitExceeded, ExposureUnvalued) as refused_by:
                refusal = refused_by
        if decision.approved and decision.grade is not None and refusal is None:
            by_collateral = refused_chains(valid, decision, chain_limits, chain_prices)
            refused = by_collateral | clocks_ahead(valid.chains, reading, now, self._config.quote_ttl)
            if refused:
                eligible, on_refused_chains = left_out(eligible, valid.chains, refused, by_collateral)
                premade += on_refused_chains
                valid = replace(valid, chains=[name for name in valid.chains if name not in refused])
            # each offer's debt (its rate and term: the principal with the interest its schedule accrues) is held to
            # its chain's ceiling in disclosure: the health factor counts the interest too
            valid = replace(valid, debt_ceilings=debt_ceilings(valid, decision, chain_limits, chain_prices))
            query = QuoteRequest(
                request_id=request_id,
                asset=valid.asset.symbol,
                asset_decimals=valid.asset.decimals,
                principal=valid.principal,
                term_days=spec.term_days,
                purpose=spec.purpose,
                collateral_asset=valid.collateral.symbol,
                collateral_amount=valid.collateral_amount,
                collateral_decimals=valid.collateral.decimals,
                chains=tuple(valid.chains),
                grade=decision.grade,
                jurisdiction=borrower.jurisdiction,
                correlation_id=correlation_id,
                start_date=now.date(),
                # the pools read their state at the heads this request's on-chain history read (providers.pool)
                chain_heads=tuple(
                    (name, r.head_block) for name, r in (reading.readings if reading is not None else {}).items()
                ),
            )
            # Each answer's offers are disclosed as it comes, while the slower providers are still asked, and the
            # work that needs only the risk decision and the screening (its records and the nonces, in a worker
            # thread) is done at the first answer with offers (by then every request has left): after the last answer
            # only its own offers are left to disclose. The MLA status is asked alongside the fan-out (no serial round
            # trip); answers that come before it wait for it.
            # Once the nonces are reserved ahead (PostgreSQL), the offers disclosed so far are signed, and each later
            # answer's as they are disclosed: after the last answer only its own offers and the attestations are left
            # to sign.
            nonces: dict[str, int] = {}  # by chain name, once reserved ahead
            unsigned: list[Draft] = []  # disclosed before their chain's nonce came

            def sign(drafts: list[Draft]) -> None:
                for draft in drafts:
                    if (nonce := nonces.get(draft.chain.name)) is not None:
                        draft.signed = self._signing.sign_offer(borrower, valid, draft, nonce, now)
                    else:
                        unsigned.append(draft)

            def disclose_one(outcome: ProviderOutcome, found: list[DecisionRecord], covered: bool) -> list[Draft]:
                # on the event loop, or in a worker thread for a heavy answer: the outcome and its records only
                return disclose(self._compliance, self._chains, borrower, valid, [outcome], found, covered, now)

            disclosing: EarlyDisclosure[Draft] = EarlyDisclosure(disclose_one, after=sign, offload=heavy_answer)

            def known(keys: dict[str, OfferNonceKey], ahead: dict[OfferNonceKey, int]) -> None:
                nonces.update((name, ahead[key]) for name, key in keys.items() if key in ahead)
                waiting = unsigned[:]
                unsigned.clear()
                sign(waiting)  # those disclosed before now (the pools' here), while the others answer

            def reserved(
                keys: dict[str, OfferNonceKey], done: asyncio.Future[tuple[Any, dict[OfferNonceKey, int]]]
            ) -> None:
                if not done.cancelled() and done.exception() is None:
                    known(keys, done.result()[1])

            def answered(outcome: ProviderOutcome) -> None:
                nonlocal risk, sealing, at_hand
                if risk is None and outcome.offers:
                    risk = risk_summary(decision)
                    keys = {name: self._nonce_key(self._chains[name]) for name in valid.chains}
                    taken = self._store.nonces_at_hand(keys.values())
                    if taken is not None:  # no I/O, no worker-thread hop: the screening's records go to the write
                        at_hand = taken
                        known(keys, taken)
                    else:
                        sealing = asyncio.ensure_future(
                            asyncio.to_thread(self._during_the_wait, screened, [*keys.values()])
                        )
                        sealing.add_done_callback(partial(reserved, keys))
                disclosing.answered(outcome)

            try:
                outcomes, covered = await asyncio.gather(
                    fan_out(eligible, query, self._config.fanout_deadline, on_answer=answered),
                    self._covered_borrower(borrower, now, then=disclosing.covered),
                )
                await disclosing.settled()
                drafts = disclosing.drafts(outcomes, covered, offer_records)
                if premade:
                    outcomes = sorted([*outcomes, *premade], key=lambda outcome: outcome.provider_id)
            except BaseException:
                disclosing.cancel()
                if sealing is not None:
                    sealing.cancel()
                raise
        if risk is None:
            risk = risk_summary(decision)
        # approved, and no offer kept (``aggregator.quote_adverse``): an adverse action, answered and recorded as one
        no_offers = decision.approved and refusal is None and not drafts
        reasons = no_offer_reasons(outcomes) if no_offers else []
        if no_offers:
            risk = no_offers_risk(risk, reasons)
        if refusal is not None:  # answered with the accept's problem, and recorded as the request's decline
            risk = refused_risk(risk, refusal)
        elif owed is not None:  # what the request was quoted under
            risk["exposure"] = {"open_principal": str(owed)}
        notice = None
        if not risk["approved"]:  # declined, refused or no_offers: the notice 12 CFR 1002.9(a)(2) requires
            notice = request_notice(
                self._config.notice, asked_text(asked), risk["reasons"], outcomes, now, self._providers
            )
            risk["adverse_action_notice"] = notice
        key = self._compliance.inputs_key
        if no_offers:  # after the offers' records: the request's decision, made on them
            record = no_offers_record(
                reasons, outcomes, borrower.id, request_id, valid.amount, decision, now, key, notice
            )
            offer_records.append(record)
        if refusal is not None:  # with a record denying it, written after the screening's (no offer was asked for)
            offer_records.append(
                refusal_record(refusal, borrower.id, request_id, valid.amount, decision, now, key, notice)
            )
        if reading is not None:
            # chains whose history could not be read are named: their loans are missing, not clean
            risk["onchain_chains_skipped"] = reading.skipped
            if reading.skipped:  # judged by what the ledger records of the wallet there instead
                risk["onchain_ledger_defaults"] = ledger_defaults
        request = CreditRequestRecord(
            id=request_id,
            borrower_id=borrower.id,
            asset=valid.asset.symbol,
            amount=valid.asset.format(valid.principal),
            term_days=spec.term_days,
            purpose=spec.purpose,
            collateral_asset=valid.collateral.symbol,
            collateral_amount=valid.collateral.format(valid.collateral_amount),
            preferred_chains=list(spec.preferred_chains),
            # declined by risk or for the exposure; an approved one without an offer kept is no_offers
            status="no_offers" if no_offers else "quoted" if decision.approved and refusal is None else "declined",
            risk=risk,
            created_at=now,
        )
        # Signing and the write are blocking work: one worker-thread hop for all of it (with the screening's records
        # when they were not made during the fan-out), so the event loop keeps serving the other requests.
        screening, ahead = await sealing if sealing is not None else (screened, at_hand)
        quoted = await asyncio.to_thread(
            self._disclose_sign_and_store,
            borrower,
            valid,
            decision,
            request,
            outcomes,
            drafts,
            screening,
            offer_records,
            ahead,
            self._reliability(drafts),
            before_write,
        )
        for outcome in quoted.outcomes:
            FANOUT_OUTCOMES.labels(outcome.provider_id, outcome.outcome).inc()
        if refusal is not None:
            refusal.request_id = request.id
            raise refusal
        return quoted

    def _reliability(self, drafts: list[Draft]) -> dict[str, float]:
        """The recent success ratio of each provider with an offer (``HealthTracker.success_ratio``: this process's
        window of its calls), which breaks ranking ties. Read on the event loop, where the calls are observed: the
        ranking runs in a worker thread."""
        offering = {draft.offer.provider_id for draft in drafts}
        found = {}
        for provider in self._providers:
            if provider.provider_id in offering and isinstance(provider, ResilientProvider):
                ratio = provider.tracker.success_ratio()
                if ratio is not None:
                    found[provider.provider_id] = ratio
        return found

    def _validate(self, spec: CreditRequestSpec) -> ValidRequest:
        asset = self._assets.get(spec.asset, "asset")
        if asset.symbol not in self._config.lendable_assets:
            lent = ", ".join(sorted(self._config.lendable_assets))
            raise InvalidCreditRequest("asset", f"{asset.symbol} is not lent; lent: {lent}")
        principal = asset.to_base_units(parse_amount(spec.amount, "amount"), "amount")
        if not MIN_TERM_DAYS <= spec.term_days <= MAX_TERM_DAYS:
            raise InvalidCreditRequest("term_days", f"must be between {MIN_TERM_DAYS} and {MAX_TERM_DAYS} days")
        collateral = self._assets.get(spec.collateral_asset, "collateral.asset")
        collateral_amount = collateral.to_base_units(
            parse_amount(spec.collateral_amount, "collateral.amount"), "collateral.amount"
        )
        unknown = [name for name in spec.preferred_chains if name not in self._chains]
        if unknown:
            known = ", ".join(self._chains)
            raise InvalidCreditRequest("preferred_chains", f"unknown chain {unknown[0]!r}; known: {known}")
        return ValidRequest(
            asset, principal, collateral, collateral_amount, list(spec.preferred_chains) or list(self._chains)
        )

    def _screen(self, borrower: BorrowerFile, amount: Decimal, cached_only: bool = False) -> ScreenedRequest | None:
        """Screen the request for each product (the name and wallet once): which products are allowed. Its records
        are made later (``_screening_records``: the name sealed, a key-store read), off the path to the fan-out.
        With ``cached_only``, None unless the name's screening is cached (then it runs on the event loop)."""
        if borrower.identity is None:
            raise ComplianceDenied("the credit request", [NO_IDENTITY])
        facts, kyc = borrower.facts(), borrower.kyc
        if cached_only:
            return self._compliance.screen_credit_request_outcomes_if_cached(facts, Product, amount, kyc)
        return self._compliance.screen_credit_request_outcomes(facts, Product, amount, kyc)

    def _refuse(self, borrower: BorrowerFile, screened: ScreenedRequest, asked: dict[str, Any]) -> NoReturn:
        """No product is allowed: the screening's records are made and kept, and the request for ``asked`` refused
        (blocking) with its adverse-action notice, whose reasons are exactly the 403's (``refusal_notice``)."""
        records = self._screening_records(screened)
        reviews = self._store_refusal(records, borrower.id)
        reasons = borrower_reasons(records, reviews)
        notice = refusal_notice(self._config.notice, asked, reasons, datetime.now(UTC))
        raise ComplianceDenied("the credit request", reasons, notice)

    def _screening_records(self, screened: ScreenedRequest) -> list[DecisionRecord]:
        """The screening's decision records, one per product, hashed (blocking: seals the name)."""
        records = list(self._compliance.credit_request_records(screened).values())
        for record in records:
            record.record_hash()  # kept by the record for its row and its audit entry
        return records

    def _during_the_wait(
        self, screened: ScreenedRequest, nonce_keys: list[OfferNonceKey]
    ) -> tuple[list[DecisionRecord], dict[OfferNonceKey, int]]:
        """While the lenders answer (blocking): the screening's records, and the offer nonces of the request's chains
        where the store reserves them ahead of the write (``QuotingStore.reserve_ahead``)."""
        return self._screening_records(screened), self._store.reserve_ahead(nonce_keys)

    def _nonce_key(self, chain: ChainRuntime) -> OfferNonceKey:
        """The offer nonce of a chain's quotes: the quote signer's on the chain's CreditAggregator."""
        return OfferNonceKey(chain.chain_id, chain.record.address("CreditAggregator"), self._quote_signer.address)

    def _disclose_sign_and_store(
        self,
        borrower: BorrowerFile,
        valid: ValidRequest,
        decision: RiskDecision,
        request: CreditRequestRecord,
        outcomes: list[ProviderOutcome],
        drafts: list[Draft],
        screening: ScreenedRequest | list[DecisionRecord],
        offer_records: list[DecisionRecord],
        reserved: dict[OfferNonceKey, int],
        reliability: dict[str, float],
        before_write: Callable[[], None] | None = None,
    ) -> QuotedRequest:
        """Rank the disclosed offers (``drafts``: disclosed as their providers answered, see ``request_credit``),
        reserve the offer nonces not ``reserved`` while they answered, sign, then in ONE unit of work write the
        request, its outcomes and quotes, the risk decision and the decision records: the screening's first (made
        here when the fan-out did not make them: ``screening`` is then the screened request), the offers' after
        them. What needs no nonce is done before the write takes its turn (``QuotingStore.writing``, which also says
        when the nonces are committed), so the turn is short."""
        now = request.created_at
        made = self._screening_records(screening) if isinstance(screening, ScreenedRequest) else screening
        records = made + offer_records
        ranked = rank_drafts(valid, drafts, reliability) if drafts else []
        written = [OutcomeRecord(o.provider_id, o.outcome, o.detail[:512], o.latency_ms) for o in outcomes]
        stored = StoredDecision(
            id=str(uuid.uuid4()), borrower_id=borrower.id, request_id=request.id, decision=decision, decided_at=now
        )
        keys = {draft.chain.name: self._nonce_key(draft.chain) for draft in ranked}  # each chain with quotes
        if before_write is not None:
            before_write()
        # the nonces reserved while the lenders answered (``reserved``), the others in the write
        with self._store.writing([key for key in keys.values() if key not in reserved]) as (uow, in_write):
            nonces = {name: reserved[key] if key in reserved else in_write[key] for name, key in keys.items()}
            quotes = self._signing.sign(borrower, valid, decision, ranked, nonces, request.id, now) if ranked else []
            quoted = QuotedRequest(request, written, quotes)
            uow.quoting.add_quoted(quoted, stored, records)
            uow.commit()
        return quoted

    async def _covered_borrower(
        self, borrower: BorrowerFile, now: datetime, then: Callable[[bool], None] | None = None
    ) -> bool:
        """Military Lending Act status (``then`` is called with it as soon as it is known)."""
        covered = await self._mla_covered(borrower, now)
        if then is not None:
            then(covered)
        return covered

    async def _mla_covered(self, borrower: BorrowerFile, now: datetime) -> bool:
        """Military Lending Act status from the MLA provider as of today (cached per borrower and day). Without an
        SSN or DoD ID on file the status cannot be checked and the borrower is treated as not covered (no MLA safe
        harbour is claimed). The service is asked about the name normalized and in its Latin spelling
        (``compliance.mla.mla_queries``): covered when either answer says so. When the service cannot answer, the
        borrower is treated as covered: the 36% MAPR cap then applies, which never harms a borrower."""
        if self._mla is None or borrower.identity is None or not borrower.military_id:
            return False
        identity = borrower.identity
        queries = mla_queries(
            identity.last_name, identity.first_name, identity.date_of_birth, borrower.military_id, now.date()
        )
        try:  # each spelling the service may hold (``compliance.mla``): covered when any answer says so
            statuses = await asyncio.gather(*(self._mla.status(borrower.id, query, now) for query in queries))
            return any(status.covered for status in statuses)
        except KycProviderError as err:
            log.warning("MLA status unavailable, the MLA cap applies: %s", err, extra={"borrower_id": borrower.id})
            return True

    def _store_refusal(self, records: list[DecisionRecord], borrower_id: str) -> list[str]:
        """The refused request's decision records, and a sanctions review for each SDN entry that held it."""
        with self._store.unit_of_work() as uow:
            version = self._compliance.screened_list_version(records)
            reviews = uow.quoting.open_screening_reviews(records, borrower_id, version, datetime.now(UTC))
            uow.commit()
            return reviews


def heavy_answer(outcome: ProviderOutcome) -> bool:
    """Whether disclosing ``outcome``'s offers is long work for the event loop (``OFFLOAD_INSTALLMENTS``): each
    installment is a payment computed and checked, about 0.1 ms here."""
    return sum(installments_of(offer) for offer in outcome.offers) >= OFFLOAD_INSTALLMENTS
