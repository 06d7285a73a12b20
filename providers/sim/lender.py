"""Simulated traditional lenders: one real HTTP server (its own process: ``python -m providers.sim``) hosting any
number of lenders that speak the Provider Quote Protocol v1, each under ``/lenders/{lender_id}`` with its own
latency distribution, failure mode and pricing (``providers.sim.fleet``).

``/control/lenders/{lender_id}`` lets a test or a demo change a lender's failure mode while it runs and read how
many requests reached it (which is how the chaos tests count the trial calls a half-open breaker let through), and the
loan events creditmesh posted to the lender's ``/v1/loan-events`` (its registered ``webhook_url``), once per id; and
it reports a payment the borrower made to the lender: ``POST …/payments`` posts a signed ``payment.received`` webhook
to the platform's URL it is given, and ``POST …/offer-events`` the lender's word about an offer (``offer.withdrawn``),
its own state of the offer changed first, as a lender's would be."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReplayGuard, SignatureRejected, signed_headers
from providers.sim.fleet import FailureSpec, SimLender
from providers.sim.installments import installment_fields
from providers.sim.pricing import price

#: the loan events a simulated lender keeps (a bounded map: docs/security.md)
MAX_LOAN_EVENTS = 10_000
#: what an offer event makes of the offer at the lender (a funded offer stays funded)
OFFER_EVENT_STATES = {"offer.withdrawn": "withdrawn", "offer.funding_failed": "failed"}
#: how long past its expiry an offer nobody holds is still known (its reservation refused as expired); then it is
#: forgotten (404), so a lender quoting for days keeps its live offers and its loans', not every offer it ever made
FORGET_EXPIRED_AFTER_SECONDS = 300


class QuoteBody(BaseModel):
    operation: Literal["quote"]  # a signed body names its operation: another call's is refused here
    request_id: str
    asset: str
    asset_decimals: int = Field(ge=0, le=36)
    principal: str = Field(pattern=r"^[0-9]{1,78}$")
    term_days: int = Field(ge=1)
    purpose: str = ""
    collateral_asset: str
    collateral_amount: str
    grade: int = Field(ge=1, le=5)
    jurisdiction: str = ""
    start_date: date | None = None


class PaymentReport(BaseModel):
    """A payment the borrower made to the lender, to report to the platform (``payment.received``)."""

    webhook_url: str = Field(description="the platform's POST /v1/providers/{provider_id}/webhooks")
    offer_ref: str
    payment_ref: str
    amount: str = Field(description="decimal in the loan asset's units")
    event_id: str | None = Field(default=None, description="default: a new one per report")
    paid_in_full: bool = Field(default=False, description="the lender's books show the loan paid off with it")


class OfferEventReport(BaseModel):
    """The lender's word about one of its offers, to post to the platform. The offer takes the event's state here
    first (unless it is funded: the event is still posted): ``withdrawn`` (a reservation or funding of it is then
    refused, 410, as a lender that withdrew an offer refuses it) or ``failed`` (a funding instruction is then 409)."""

    webhook_url: str = Field(description="the platform's POST /v1/providers/{provider_id}/webhooks")
    offer_ref: str
    type: Literal["offer.withdrawn", "offer.funding_failed"]
    detail: str = ""
    event_id: str | None = Field(default=None, description="default: a new one per report")


class ReserveDelay(BaseModel):
    seconds: float = Field(ge=0, le=60)


class FundOutage(BaseModel):
    """While ``status_code`` is set, every funding instruction is answered with it (the offer unchanged): a lender
    that cannot take the instruction now (a 5xx), or that refuses it (404, 409, 410: the platform takes those as
    final) while its own status of the offer still reads ``reserved``."""

    status_code: int | None = Field(default=None, ge=400, le=599)


@dataclass
class LenderState:
    spec: SimLender
    guard: ReplayGuard
    rng: random.Random
    offers: dict[str, str] = field(default_factory=dict)  # offer_ref -> state
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> offer_ref
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "quote": 0,
            "accept": 0,
            "reserve": 0,
            "fund": 0,
            "cancel": 0,
            "status": 0,
            "health": 0,
            "loan_event": 0,
        }
    )
    phases: dict[tuple[str, str], str] = field(default_factory=dict)  # (phase, idempotency key) -> offer_ref
    funded_by: dict[str, dict[str, Any]] = field(default_factory=dict)  # offer_ref -> the funding instruction
    reserved: dict[str, dict[str, Any]] = field(default_factory=dict)  # offer_ref -> the terms it was reserved on
    quoted: dict[str, dict[str, Any]] = field(default_factory=dict)  # offer_ref -> the terms it quoted
    reserve_delay: float = 0.0  # seconds a reservation takes (tests act on the chain in between)
    fund_outage: int | None = None  # the status every funding instruction is answered with, while set
    loan_events: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> the loan event, first copy
    expiring: dict[str, float] = field(default_factory=dict)  # offer_ref -> its expiry (epoch s), in quoting order
    clock: Callable[[], float] = time.time

    @classmethod
    def of(cls, spec: SimLender, clock: Callable[[], float] = time.time) -> LenderState:
        rng = random.Random(spec.seed)  # noqa: S311 - simulation, not crypto
        return cls(spec, ReplayGuard(spec.secret), rng, clock=clock)


async def _verified(state: LenderState, request: Request, timestamp: str | None, signature: str | None) -> bytes:
    body = await request.body()
    try:
        state.guard.verify(timestamp, signature, body, int(time.time()))
    except SignatureRejected as err:
        raise HTTPException(status_code=401, detail=str(err)) from err
    return body


def _offer_document(
    state: LenderState, rate_bps: int, fee: int, expires: datetime, repayment: dict[str, Any] | None = None
) -> dict[str, Any]:
    _forget_expired(state)
    ref = f"{state.spec.lender_id}-{uuid.uuid4().hex[:12]}"
    state.offers[ref] = "offered"
    state.quoted[ref] = {"rate_bps": rate_bps, "origination_fee": fee} | (repayment or {})
    state.expiring[ref] = expires.timestamp()
    return {
        "protocol_version": "1",
        "offers": [
            {
                "offer_ref": ref,
                "rate_bps": rate_bps,
                "origination_fee": fee,
                "expires_at": expires.isoformat(),
            }
            | (repayment or {"repayment": "single", "installments": 1})
        ],
    }


def _forget_expired(state: LenderState) -> None:
    """Forget the offers expired over ``FORGET_EXPIRED_AFTER_SECONDS`` ago that nobody holds: never reserved, or
    reserved and cancelled (a reserved or funded one is kept: it is a loan's, or a saga may still ask its state).
    Offers expire in about the order they were made (one TTL a lender), so only the oldest are looked at: amortised,
    about one step a quote."""
    horizon = state.clock() - FORGET_EXPIRED_AFTER_SECONDS
    while state.expiring:
        ref, expiry = next(iter(state.expiring.items()))
        if expiry > horizon:
            return
        del state.expiring[ref]
        if state.offers.get(ref) in ("offered", "cancelled"):
            del state.offers[ref]
            state.quoted.pop(ref, None)
            state.reserved.pop(ref, None)


def _expired(state: LenderState, offer_ref: str) -> str | None:
    """Why the offer can no longer be taken (its expiry passed), or None."""
    expiry = state.expiring.get(offer_ref)
    if expiry is None or expiry > state.clock():
        return None
    return f"the offer expired at {datetime.fromtimestamp(expiry, UTC).isoformat()}"


async def _trickle(payload: bytes, seconds: float, chunks: int = 20) -> AsyncIterator[bytes]:
    step = max(1, len(payload) // chunks)
    for start in range(0, len(payload), step):
        await asyncio.sleep(seconds / chunks)
        yield payload[start : start + step]


async def _quote(state: LenderState, body: QuoteBody) -> Response:
    state.counts["quote"] += 1
    spec = state.spec
    failure = spec.failure
    failing = failure.failing_now(state.rng)
    await asyncio.sleep(
        failure.hang_seconds if failing and failure.mode == "timeout" else spec.latency.sample(state.rng)
    )
    if failing and failure.mode in ("error_5xx", "flapping"):
        return JSONResponse({"detail": "simulated outage"}, status_code=failure.status_code)
    if failing and failure.mode == "malformed_json":
        return Response(
            b'{"protocol_version": "1", "offers": [{"offer_ref": "x", "rate_b', media_type="application/json"
        )
    if failing and failure.mode == "schema_violation":
        return JSONResponse({"protocol_version": "1", "offers": [{"ref": "x", "rate": "low"}]})
    offered = price(int(body.principal), body.asset_decimals, body.term_days, body.grade, spec.pricing)
    if offered is None:
        return Response(status_code=204)
    now = datetime.fromtimestamp(state.clock(), UTC)
    expires = now + timedelta(seconds=spec.offer_ttl_seconds)
    rate, fee = offered.rate_bps, offered.origination_fee
    if failing and failure.mode == "negative_rate":
        rate = -abs(rate) - 1
    if failing and failure.mode == "expired_offer":
        expires = now - timedelta(hours=1)
    repayment = None
    if spec.installments is not None:
        start = body.start_date or now.date()
        principal = int(body.principal)
        repayment = installment_fields(
            spec.installments, principal, body.asset_decimals, body.term_days, offered.rate_bps, start
        )
        if failing and failure.mode == "wrong_schedule" and repayment is not None:
            payments = repayment["schedule"].get("payments") or []
            if payments:
                payments[0]["amount"] += 10 ** max(body.asset_decimals - 2, 0)  # a cent more than its terms give
    document = _offer_document(state, rate, fee, expires, repayment)
    if failing and failure.mode == "slow_body":
        payload = JSONResponse(document).body
        return StreamingResponse(_trickle(bytes(payload), failure.slow_body_seconds), media_type="application/json")
    return JSONResponse(document)


# a cancelled reservation releases the offer: the borrower's next accept attempt (its own key) may reserve it again
_PHASE_FROM = {"reserve": ("offered", "cancelled"), "fund": ("reserved",), "cancel": ("reserved",)}
_PHASE_TO = {"reserve": "reserved", "fund": "funded", "cancel": "cancelled"}


def _differs(quoted: dict[str, Any], body: dict[str, Any]) -> str | None:
    """What in a reservation differs from the terms this lender quoted (rate, fee, repayment, and the payments it
    sent, if it sent any), or None."""
    for name in ("rate_bps", "origination_fee", "repayment", "installments"):
        if name in quoted and str(body.get(name)) != str(quoted[name]):
            return f"{name} {body.get(name)!r} is not the quoted {quoted[name]!r}"
    sent = quoted.get("schedule", {}).get("payments")
    if sent:
        reserved = [(p["due"], int(p["amount"])) for p in body.get("schedule", {}).get("payments", [])]
        if reserved != [(p["due"], int(p["amount"])) for p in sent]:
            return "the schedule's payments are not the quoted ones"
    return None


def _phase(state: LenderState, phase: str, offer_ref: str, key: str, body: dict[str, Any]) -> dict[str, str]:
    """The two-phase accept: reserve an offered (or cancelled) offer on the terms it was quoted on (other terms are
    refused); fund or cancel a reserved one. A repeat under the same idempotency key answers the same; a phase out
    of order is a 409."""
    if phase not in _PHASE_TO:
        raise HTTPException(status_code=404, detail=f"no phase {phase!r}")
    state.counts[phase] += 1
    previous = state.phases.setdefault((phase, key), offer_ref)
    if previous != offer_ref:
        raise HTTPException(status_code=409, detail="idempotency key used for another offer")
    current = state.offers.get(offer_ref)
    if current is None:
        raise HTTPException(status_code=404, detail="unknown offer")
    target = _PHASE_TO[phase]
    if current == "withdrawn":
        raise HTTPException(status_code=410, detail=f"offer is withdrawn; cannot {phase}")
    if current != target:
        if current not in _PHASE_FROM[phase]:
            raise HTTPException(status_code=409, detail=f"offer is {current}; cannot {phase}")
        quoted = state.quoted.get(offer_ref, {})
        differs = _expired(state, offer_ref) or _differs(quoted, body) if phase == "reserve" else None
        if differs is not None:
            return {"status": "refused", "detail": f"{state.spec.lender_id} refuses {offer_ref}: {differs}"}
        state.offers[offer_ref] = target
        if phase == "fund":
            state.funded_by[offer_ref] = {"chain_id": body.get("chain_id"), "tx_hash": body.get("tx_hash")}
        if phase == "reserve":
            state.reserved[offer_ref] = {k: v for k, v in body.items() if k not in ("nonce", "protocol_version")}
    return {"status": target, "detail": f"{state.spec.lender_id} {target} {offer_ref}"}


def _for(body: Any, operation: str, offer_ref: str) -> dict[str, Any]:
    """``body`` if it asks for ``operation`` on ``offer_ref``: the signature covers the body, not the path, so a signed
    body naming another operation or offer (a ``cancel`` sent again to ``/fund``) is refused (400)."""
    if not isinstance(body, dict) or (body.get("operation"), body.get("offer_ref")) != (operation, offer_ref):
        raise HTTPException(status_code=400, detail=f"the signed body does not ask to {operation} offer {offer_ref}")
    return body


def _lender_routes(states: dict[str, LenderState], prefix: str, fixed: str | None = None) -> APIRouter:
    """The protocol endpoints under ``prefix``: for every hosted lender (``{lender_id}`` in the path), or for one."""
    router = APIRouter(prefix=prefix)

    def lender(lender_id: str | None) -> LenderState:
        state = states.get(fixed or lender_id or "")
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        return state

    @router.post("/v1/quotes", response_model=None)
    async def quote(
        request: Request,
        lender_id: str | None = None,
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> Response:
        state = lender(lender_id)
        raw = await _verified(state, request, x_creditmesh_timestamp, x_creditmesh_signature)
        return await _quote(state, QuoteBody.model_validate_json(raw))

    @router.post("/v1/offers/{offer_ref}/accept")
    async def accept(
        offer_ref: str,
        request: Request,
        idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
        lender_id: str | None = None,
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> dict[str, str]:
        state = lender(lender_id)
        _for(
            json.loads(await _verified(state, request, x_creditmesh_timestamp, x_creditmesh_signature)),
            "accept",
            offer_ref,
        )
        state.counts["accept"] += 1
        repeated = state.accepted.get(idempotency_key) == offer_ref  # an accept of this offer under this key before
        previous = state.accepted.setdefault(idempotency_key, offer_ref)
        if previous != offer_ref:
            raise HTTPException(status_code=409, detail="idempotency key used for another offer")
        current = state.offers.get(offer_ref)
        if current is None:
            raise HTTPException(status_code=404, detail="unknown offer")
        if current == "withdrawn":
            raise HTTPException(status_code=410, detail="offer is withdrawn; cannot accept")
        if current == "offered" and (expired := _expired(state, offer_ref)) is not None:
            return {"status": "refused", "detail": f"{state.spec.lender_id} refuses {offer_ref}: {expired}"}
        if current != "offered" and not (current == "funded" and repeated):
            raise HTTPException(status_code=409, detail=f"offer is {current}; cannot accept")
        state.offers[offer_ref] = "funded"
        return {"status": "funded", "detail": f"{state.spec.lender_id} funds {offer_ref} off-chain"}

    @router.post("/v1/offers/{offer_ref}/{phase}")
    async def accept_phase(
        offer_ref: str,
        phase: str,
        request: Request,
        idempotency_key: Annotated[str, Header(alias="Idempotency-Key")],
        lender_id: str | None = None,
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> dict[str, str]:
        state = lender(lender_id)
        raw = await _verified(state, request, x_creditmesh_timestamp, x_creditmesh_signature)
        body = _for(json.loads(raw or b"{}"), phase, offer_ref)
        if phase == "fund" and state.fund_outage is not None:
            state.counts["fund"] += 1
            raise HTTPException(status_code=state.fund_outage, detail="simulated outage of the funding desk")
        answer = _phase(state, phase, offer_ref, idempotency_key, body)
        if phase == "reserve":
            await asyncio.sleep(state.reserve_delay)
        return answer

    @router.get("/v1/offers/{offer_ref}")
    async def offer_status(
        offer_ref: str,
        request: Request,
        lender_id: str | None = None,
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> dict[str, str]:
        state = lender(lender_id)
        await _verified(state, request, x_creditmesh_timestamp, x_creditmesh_signature)
        state.counts["status"] += 1
        if offer_ref not in state.offers:
            raise HTTPException(status_code=404, detail="unknown offer")
        return {"offer_ref": offer_ref, "state": state.offers[offer_ref]}

    @router.post("/v1/loan-events")
    async def loan_event(
        request: Request,
        lender_id: str | None = None,
        x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
        x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    ) -> dict[str, Any]:
        """creditmesh's loan events (the ``loanEvent`` webhook): kept once per ``event_id``; a repeat is answered
        200 too (the lender deduplicates, as the protocol asks)."""
        state = lender(lender_id)
        raw = await _verified(state, request, x_creditmesh_timestamp, x_creditmesh_signature)
        state.counts["loan_event"] += 1
        event = json.loads(raw)
        duplicate = event["event_id"] in state.loan_events
        if not duplicate and len(state.loan_events) < MAX_LOAN_EVENTS:
            state.loan_events[event["event_id"]] = event
        return {"received": event["event_id"], "duplicate": duplicate}

    @router.get("/v1/health")
    async def health(lender_id: str | None = None) -> dict[str, str]:
        state = lender(lender_id)
        state.counts["health"] += 1
        return {"status": "ok", "lender": state.spec.lender_id}

    return router


async def _post_signed(state: LenderState, url: str, event: dict[str, Any]) -> dict[str, Any]:
    """Post a webhook ``event`` signed with the lender's secret; the platform's status and answer."""
    body = json.dumps(event).encode()
    headers = signed_headers(state.spec.secret, int(time.time()), body) | {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=180) as client:
        answer = await client.post(url, content=body, headers=headers)
    try:
        answered: Any = answer.json()
    except ValueError:
        answered = answer.text
    return {"event_id": event["event_id"], "status": answer.status_code, "answer": answered}


def create_sim_app(
    lenders: list[SimLender], root_lender: str | None = None, clock: Callable[[], float] = time.time
) -> FastAPI:
    """A server hosting ``lenders`` under ``/lenders/{lender_id}``; ``root_lender`` is also served at ``/``
    (the Foundation's single-lender URLs). ``clock`` (epoch seconds) tells when offers have expired."""
    states = {spec.lender_id: LenderState.of(spec, clock) for spec in lenders}
    if len(states) != len(lenders):
        raise ValueError("lender ids must be unique")
    app = FastAPI(title="creditmesh simulated lenders", version="1")
    app.include_router(_lender_routes(states, "/lenders/{lender_id}"))
    if root_lender is not None:
        if root_lender not in states:
            raise ValueError(f"root lender {root_lender!r} is not hosted")
        app.include_router(_lender_routes(states, "", fixed=root_lender))
    else:

        @app.get("/v1/health")
        async def server_health() -> dict[str, Any]:
            return {"status": "ok", "lenders": sorted(states)}

    @app.get("/control/lenders/{lender_id}")
    async def control_read(lender_id: str) -> dict[str, Any]:
        state = states.get(lender_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        return {
            "lender_id": lender_id,
            "failure": state.spec.failure.model_dump(),
            "requests": dict(state.counts),
            "offers": dict(state.offers),
            "funded_by": dict(state.funded_by),
            "reserved": dict(state.reserved),
            "loan_events": [
                {key: event.get(key) for key in ("event_id", "type", "loan_id", "sequence")}
                for event in state.loan_events.values()
            ],
        }

    @app.put("/control/lenders/{lender_id}/failure")
    async def control_failure(lender_id: str, failure: FailureSpec) -> dict[str, Any]:
        state = states.get(lender_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        state.spec = state.spec.model_copy(update={"failure": failure})
        return {"lender_id": lender_id, "failure": failure.model_dump()}

    @app.post("/control/lenders/{lender_id}/payments")
    async def control_payment(lender_id: str, report: PaymentReport) -> dict[str, Any]:
        """Post ``payment.received`` signed with the lender's secret; the platform's answer is returned."""
        state = states.get(lender_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        event = {
            "protocol_version": "1",
            "event_id": report.event_id or f"evt-{uuid.uuid4().hex}",
            "type": "payment.received",
            "offer_ref": report.offer_ref,
            "payment_ref": report.payment_ref,
            "amount": report.amount,
            "occurred_at": datetime.now(UTC).isoformat(),
        } | ({"paid_in_full": True} if report.paid_in_full else {})
        return await _post_signed(state, report.webhook_url, event)

    @app.post("/control/lenders/{lender_id}/offer-events")
    async def control_offer_event(lender_id: str, report: OfferEventReport) -> dict[str, Any]:
        """Change the offer's state here as the event says, then post the event signed with the lender's secret; the
        platform's answer is returned."""
        state = states.get(lender_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        current = state.offers.get(report.offer_ref)
        if current is not None and current != "funded":
            state.offers[report.offer_ref] = OFFER_EVENT_STATES[report.type]
        event = {
            "protocol_version": "1",
            "event_id": report.event_id or f"evt-{uuid.uuid4().hex}",
            "type": report.type,
            "offer_ref": report.offer_ref,
            "state": state.offers.get(report.offer_ref, OFFER_EVENT_STATES[report.type]),
            "occurred_at": datetime.now(UTC).isoformat(),
            "detail": report.detail,
        }
        return await _post_signed(state, report.webhook_url, event)

    @app.put("/control/lenders/{lender_id}/fund-outage")
    async def control_fund_outage(lender_id: str, outage: FundOutage) -> dict[str, Any]:
        state = states.get(lender_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        state.fund_outage = outage.status_code
        return {"lender_id": lender_id, "fund_outage": outage.status_code}

    @app.put("/control/lenders/{lender_id}/reserve-delay")
    async def control_reserve_delay(lender_id: str, delay: ReserveDelay) -> dict[str, Any]:
        state = states.get(lender_id)
        if state is None:
            raise HTTPException(status_code=404, detail=f"no simulated lender {lender_id!r}")
        state.reserve_delay = delay.seconds
        return {"lender_id": lender_id, "reserve_delay": delay.seconds}

    return app


def create_lender_app(lender_id: str, secret: str, offer_ttl_seconds: int = 900) -> FastAPI:
    """One lender at ``/`` and ``/lenders/{lender_id}`` (the Foundation's single simulated lender)."""
    return create_sim_app(
        [SimLender(lender_id=lender_id, secret=secret, offer_ttl_seconds=offer_ttl_seconds)], root_lender=lender_id
    )
