"""What a refused credit request leaves behind besides its answer, so that an examiner can list every refusal
(ECOA / Regulation B, 12 CFR 1002.9 and its record retention, 1002.12) and the borrower is told what 1002.9(a)(2)
requires:

- a request refused before it is scored, and so never written as a request — a velocity stop (``risk.velocity``: 429
  ``velocity-limit``, R50 or R51) or a borrower with no identity on file (403 ``compliance-denied``,
  ``kyc.not-approved``) — gets a ``credit-request`` decision record denying it (``velocity_record``,
  ``unidentified_record``), about the borrower, with no request id: a velocity stop once per rule and borrower in the
  velocity window (the refusals after it, of the same limit still reached, repeat it). Its inputs (the terms asked
  and the rule that stopped it) are hashed under the platform key. Until 2026-11-29 neither left a trace;
- a request written with ``risk.approved`` false (declined by the scoring, refused for the borrower's exposure, or
  ``no_offers``) carries the adverse-action notice (``request_notice``: ``compliance.adverse_action``), each lender
  considered with its own reasons; a request denied before it is written — a velocity stop about the applicant (R50,
  R51) or a screening that allows no product (403 ``compliance-denied``) — carries it in its problem
  (``refusal_notice``: for the platform alone, its reasons exactly the problem's). Until 2026-11-29 those had none.

The per-IP limit's stop is not recorded and its 429 carries no notice: it is a platform rate limit on the client's
network, which many may share, not a decision about the applicant, and a record about the borrower would hold their
identity's erasure for the 25 months of Regulation B's retention. Nor does the 403 of a borrower with no identity on
file carry a notice: an incomplete application (1002.9(c)), whose answer says what is missing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aggregator.borrowers import BorrowerFile
from aggregator.errors import ComplianceDenied
from aggregator.fanout import ProviderOutcome
from aggregator.quote_adverse import lender_reasons
from aggregator.quote_store import QuotingStore
from compliance.adverse_action import LOCAL_NOTICE_PARTIES, Considered, NoticeParties, adverse_action_notice
from compliance.decisions import DecisionKind, DecisionRecord, decide
from compliance.jurisdiction import Reason
from providers.base import ProviderAdapter
from risk.errors import VelocityLimitExceeded
from risk.reasons import TOO_MANY_REQUESTS, WALLET_CLAIMED
from risk.velocity import VelocityLimits, VelocityStore, check_velocity

#: the 403 a borrower with no identity on file gets (``aggregator.quote_pipeline``, ``aggregator.accepting``)
NO_IDENTITY = ("kyc.not-approved", "verify your identity first: POST /v1/borrowers/me/kyc")


@dataclass(frozen=True, slots=True)
class VelocityCheck:
    """What ``admit_request`` counts a request on: the counters, the limits, the client's address (None: unknown, no
    per-IP limit), the platform key a refusal's inputs are hashed under and who a stop's notice names."""

    store: VelocityStore
    limits: VelocityLimits
    client_ip: str | None
    inputs_key: bytes | None
    parties: NoticeParties = LOCAL_NOTICE_PARTIES


async def admit_request(
    store: QuotingStore, velocity: VelocityCheck, borrower: BorrowerFile, asked: Mapping[str, Any]
) -> None:
    """The steps before a request is screened and scored: the velocity rules (``check_velocity``: it is counted
    unless refused), then an identity on file. A refusal's decision record is kept (a worker thread's write) before
    it is raised: ``VelocityLimitExceeded`` (429; a stop about the applicant, R50 or R51, with its adverse-action
    notice) or ``ComplianceDenied`` with ``NO_IDENTITY`` (403)."""
    try:
        await check_velocity(
            velocity.store,
            velocity.limits,
            borrower_id=borrower.id,
            wallet=borrower.wallet,
            ip=velocity.client_ip,
            now=time.time(),
        )
    except VelocityLimitExceeded as stop:
        if stop.rule != "ip":  # a credit decision about the applicant: the per-IP limit is the platform's own
            now = datetime.now(UTC)
            reason = velocity_reason(stop)  # the 429's ``reason``, named with its count and limit
            stop.notice = refusal_notice(velocity.parties, asked, [(reason.code, reason.message)], now)
            if await _first_in_window(velocity, borrower.id, stop):
                record = velocity_record(
                    stop, velocity.limits, borrower.id, asked, now, velocity.inputs_key, stop.notice
                )
                await _keep(store, borrower.id, record)
        raise
    if borrower.identity is None:
        now = datetime.now(UTC)
        await _keep(store, borrower.id, unidentified_record(borrower.id, asked, now, velocity.inputs_key))
        raise ComplianceDenied("the credit request", [NO_IDENTITY])


async def _first_in_window(velocity: VelocityCheck, borrower_id: str, stop: VelocityLimitExceeded) -> bool:
    """Whether ``stop`` is the borrower's first by its rule in the velocity window: only that one is recorded. A
    borrower who keeps asking past a limit is refused each time, and each refusal would otherwise be a database write
    where the limit cost one counter's round trip (a flood of refused requests turned into a flood of writes)."""
    key, now, window = f"velocity-refusal:{stop.rule}:{borrower_id}", time.time(), velocity.limits.window_seconds
    if await velocity.store.count(key, now, window) > 0:
        return False
    await velocity.store.hit(key, now, window)  # the one mark of the window: the refusals after it add none
    return True


async def _keep(store: QuotingStore, borrower_id: str, record: DecisionRecord) -> None:
    """Write ``record`` in its own unit of work, in a worker thread."""

    def write() -> None:
        with store.unit_of_work() as uow:
            uow.quoting.add_refusal(record, borrower_id)
            uow.commit()

    await asyncio.to_thread(write)


def asked_terms(amount: str, asset: str, term_days: int) -> dict[str, Any]:
    """The terms a request asked for, as a refusal's record keeps them (hashed) and its notice states them."""
    return {"amount": amount, "asset": asset, "termDays": term_days}


def asked_text(asked: Mapping[str, Any]) -> str:
    """The credit ``asked`` for (``asked_terms``) as a notice states it: "1500.00 USDC for 30 days"."""
    return f"{asked['amount']} {asked['asset']} for {asked['termDays']} days"


def velocity_reason(stop: VelocityLimitExceeded) -> Reason:
    """R51 for a wallet claimed by several identities, R50 for a borrower's or wallet's requests too frequent: each
    naming the rule's count and limit (never its key: a wallet, personal data a record's reasons would keep in the
    clear)."""
    found = WALLET_CLAIMED if stop.rule == "wallet_identities" else TOO_MANY_REQUESTS
    return Reason(found.code, f"{found.text} ({stop.rule}: {stop.count}, limit {stop.limit})")


def velocity_record(
    stop: VelocityLimitExceeded,
    limits: VelocityLimits,
    borrower_id: str,
    asked: Mapping[str, Any],
    now: datetime,
    inputs_key: bytes | None,
    notice: Mapping[str, Any] | None = None,
) -> DecisionRecord:
    """The ``credit-request`` record denying a request a velocity rule stopped: its inputs the terms asked, the rule
    (its key — the borrower or wallet — count and limit) and the adverse-action notice its 429 gave (so the record
    commits to the notice, as a refused request's does: 12 CFR 1002.12(b)), its version the limits in force."""
    inputs = {**asked, "velocity": {"rule": stop.rule, "key": stop.key, "count": stop.count, "limit": stop.limit}}
    if notice is not None:
        inputs["adverseActionNotice"] = dict(notice)
    versions = {"velocity": f"{stop.rule}<={stop.limit}/{limits.window_seconds}s"}
    return decide(
        DecisionKind.CREDIT_REQUEST,
        borrower_id,
        inputs,
        [velocity_reason(stop)],
        versions,
        now,
        inputs_key=inputs_key,
    )


def unidentified_record(
    borrower_id: str, asked: Mapping[str, Any], now: datetime, inputs_key: bytes | None
) -> DecisionRecord:
    """The ``credit-request`` record denying a request of a borrower with no identity on file (an incomplete
    application: the 403 says what is missing), its reason the 403's."""
    return decide(
        DecisionKind.CREDIT_REQUEST,
        borrower_id,
        {**asked, "identity": None},
        [Reason(*NO_IDENTITY)],
        {"kyc": "identity-on-file"},
        now,
        inputs_key=inputs_key,
    )


def request_notice(
    parties: NoticeParties,
    asked: str,
    reasons: Sequence[Mapping[str, str]],
    outcomes: Sequence[ProviderOutcome],
    now: datetime,
    providers: Sequence[ProviderAdapter] = (),
) -> dict[str, Any]:
    """The adverse-action notice of a request written not approved: its ``risk.reasons`` as the specific reasons,
    given for the platform and for every lender considered (``outcomes``: none when the scoring or the borrower's
    exposure refused it before any lender was asked), each with its own reasons (``lender_reasons``: the platform's
    are the first case of each code across the lenders, a lender's are its own cases) and who it is, from its
    provider among ``providers`` (``considered``)."""
    by_id = {provider.provider_id: provider for provider in providers}
    lenders = [considered(outcome, by_id.get(outcome.provider_id)) for outcome in outcomes]
    specific = [(reason["code"], reason["text"]) for reason in reasons]
    return adverse_action_notice(parties, asked, lenders, specific, now)


def considered(outcome: ProviderOutcome, provider: ProviderAdapter | None) -> Considered:
    """``outcome``'s lender as a notice lists it (1002.9(g)): its outcome, its own reasons and its identity — the
    DeFi pool its provider stands for (its chain and contract), else the creditor its registration names (legal name
    and postal address), else none on file (a registration made before they were asked for; a provider no longer
    listed)."""
    reasons = tuple((reason.code, reason.text) for reason in lender_reasons(outcome))
    if provider is None:
        return Considered(outcome.provider_id, outcome.outcome, reasons)
    return Considered(outcome.provider_id, outcome.outcome, reasons, provider.creditor(), provider.lending_pool())


def refusal_notice(
    parties: NoticeParties, asked: Mapping[str, Any], reasons: Sequence[tuple[str, str]], now: datetime
) -> dict[str, Any]:
    """The adverse-action notice of a request denied before it is written (a velocity stop about the applicant, a
    screening that allows no product), for ``asked`` (``asked_terms``): given by the platform alone (no lender was
    asked), its specific reasons exactly ``reasons``, the (code, message) pairs its problem gives — never more: a
    sanctions hit is told in the notice as the 403 tells it (``aggregator.sanctions_reviews.borrower_reasons``)."""
    return adverse_action_notice(parties, asked_text(asked), [], reasons, now)
