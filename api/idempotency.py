"""``Idempotency-Key`` (the IETF httpapi draft's semantics) for every POST that creates or moves something: a route
opts in with ``dependencies=[Idempotent]``.

* The first request with a key claims it for the client (the API key's role and subject) and runs; its response is
  stored with the key, unless it is a 5xx, an answer with ``Retry-After`` (409 ``accept-in-progress`` or
  ``repayment-in-progress``, a 429), a refusal that changed nothing (422 ``validation-error``: the draft lets a server
  keep no failed request, and a request refused before anything ran must not use the key up, so its corrected body
  is not "another request") or the request never finished (an error, a cancelled connection): then the key is
  released, so a retry runs again and sees what the first attempt did (the accept saga's outcome, say).
* The same key with the same method, path and body later: the stored response, replayed (``Idempotent-Replayed:
  true``), whatever happened since.
* The same key with a different method, path or body: 422. The same key while its first request still runs: 409
  (``Retry-After``). A claim whose process died is taken over after :data:`LOCK`.
* A key the database could not release or complete (PostgreSQL restarting: most likely the outage the request
  itself failed on) does not hold the answer back: it is sent, and the key settled in the background once the
  database is back (a retry meanwhile is 409 with ``Retry-After``).
* Keys are kept :data:`TTL` (24 hours) in the database, so every process of the platform shares them. A stored
  response's body is sealed there (:class:`ResponseSeal`): some carry a secret shown once (an API key, a provider's
  key), which a database dump or replica must not give away.

Signed webhooks deduplicate on their event id instead; requests without the header are not deduplicated."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from api.deps import CurrentPrincipal, get_platform, route_admits
from api.problems import DATABASE_UNAVAILABLE, NOTHING_DONE, problem
from compliance.pii import seal, unseal
from store.db import Database
from store.idempotency import IdempotencyRepository, IdempotencyRow

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
#: how long a claim holds a key before another process may take it over: longer than any request runs (an accept
#: waits at most 600 s for its transaction)
LOCK = timedelta(minutes=11)
#: the longest pause between attempts to settle a key while the database is away
SETTLE_RETRY_MAX_WAIT_SECONDS = 5.0
_SCOPE_KEY = "creditmesh.idempotency"
_NOT_REPLAYED = {"content-length", "date", "server", "x-correlation-id"}

log = logging.getLogger(__name__)


class IdempotencyError(Exception):
    """Root of the idempotency refusals."""


class KeyReused(IdempotencyError):
    """The key was first used with another request (a 422)."""


class KeyInUse(IdempotencyError):
    """The key's first request is still running (a 409)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    client: str
    key: str
    fingerprint: str


class ResponseSeal:
    """Stored bodies sealed with AES-256-GCM (compliance's ``seal``) under a key derived from the platform's master
    key (HKDF-SHA256 with a label of its own, so never the key of PII or of lenders' secrets), bound to the client and
    the key: a body moved to another record does not open. A body stored before sealing (no marker) is read as is."""

    MARKER = b"creditmesh-sealed-v1:"
    _LABEL = b"creditmesh/idempotent-responses/v1"

    def __init__(self, master_key: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=self._LABEL).derive(master_key)

    @staticmethod
    def _bound(claim: Claim) -> bytes:
        return f"idempotency/{len(claim.client)}:{claim.client}/{claim.key}".encode()

    def seal(self, claim: Claim, body: bytes) -> bytes:
        return self.MARKER + seal(self._key, body, self._bound(claim))

    def open(self, claim: Claim, stored: bytes) -> bytes:
        """The body; raises ``PiiError`` for a sealed body that does not open (another master key, another record)."""
        if not stored.startswith(self.MARKER):
            return stored
        return unseal(self._key, stored[len(self.MARKER) :], self._bound(claim))


@functools.lru_cache(maxsize=4)
def response_seal(master_key_hex: str) -> ResponseSeal:
    """The seal of ``CREDITMESH_PII_MASTER_KEY`` (derived once per process)."""
    return ResponseSeal(bytes.fromhex(master_key_hex))


class IdempotencyStore:
    """Claims, completes and releases keys, each in its own unit of work; stored bodies sealed with ``sealing``."""

    def __init__(self, database: Database, sealing: ResponseSeal, ttl: timedelta = TTL, lock: timedelta = LOCK) -> None:
        self._database, self._seal, self._ttl, self._lock = database, sealing, ttl, lock

    def begin(self, claim: Claim, method: str, path: str, now: datetime | None = None) -> StoredResponse | None:
        """Claim the key (None: the request runs) or the response stored for it; raises :class:`KeyReused` or
        :class:`KeyInUse`."""
        now = now or datetime.now(UTC)
        for _ in range(3):  # a concurrent first use inserted the same key between our read and our insert
            with self._database.unit_of_work() as uow:
                records = IdempotencyRepository(uow.session)
                records.purge_expired(now)
                row = records.get(claim.client, claim.key, for_update=True)
                if row is None:
                    records.add(
                        IdempotencyRow(
                            client=claim.client,
                            key=claim.key,
                            fingerprint=claim.fingerprint,
                            method=method,
                            path=path[:512],
                            state="running",
                            created_at=now,
                            locked_until=now + self._lock,
                            expires_at=now + self._ttl,
                        )
                    )
                    try:
                        uow.commit()
                    except IntegrityError:
                        continue
                    return None
                if row.fingerprint != claim.fingerprint:
                    raise KeyReused(
                        f"Idempotency-Key {claim.key!r} was used with another request ({row.method} {row.path})"
                    )
                if row.state == "done" and row.status_code is not None and row.body is not None:
                    headers = [(name, value) for name, value in row.headers or []]
                    return StoredResponse(row.status_code, headers, self._seal.open(claim, row.body))
                if row.locked_until > now:
                    raise KeyInUse(f"a request with Idempotency-Key {claim.key!r} is still being processed")
                row.locked_until = now + self._lock  # its process died: this request takes the key over
                uow.commit()
                return None
        raise KeyInUse(f"a request with Idempotency-Key {claim.key!r} is being claimed concurrently")

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        with self._database.unit_of_work() as uow:
            row = IdempotencyRepository(uow.session).get(claim.client, claim.key, for_update=True)
            if row is None or row.fingerprint != claim.fingerprint or row.state != "running":
                return
            row.state = "done"
            row.status_code = response.status_code
            row.headers = [[name, value] for name, value in response.headers]
            row.body = self._seal.seal(claim, response.body)
            uow.commit()

    def release(self, claim: Claim) -> None:
        with self._database.unit_of_work() as uow:
            IdempotencyRepository(uow.session).remove(claim.client, claim.key, claim.fingerprint)
            uow.commit()


@dataclass
class _Slot:
    """Per request: what the dependency claimed, for the middleware to complete or release."""

    claim: Claim | None = None
    store: IdempotencyStore | None = None
    settled: bool = False
    messages: list[Message] = field(default_factory=list)


class _Replay(Exception):
    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replayed")
        self.stored = stored


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def idempotency(
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=257,
            pattern=r'^"?[!#-~]{1,255}"?$',
            description="optional: a unique value (a UUID) per operation; a retry with the same key and body gets "
            "the first response back (kept 24 hours; 5xx answers, those with Retry-After, a 422 validation-error "
            "and a caller the operation's role refuses are not kept), another "
            "body with it is refused "
            "(422), a retry while the first is still running too (409)",
        ),
    ] = None,
) -> None:
    """The route's ``Idempotency-Key``, claimed. The platform is read from the application's state, not declared as
    a dependency: FastAPI would solve it once more on every request to these routes, with or without a key."""
    slot = request.scope.get(_SCOPE_KEY)
    if idempotency_key is None or not isinstance(slot, _Slot):
        return
    if not route_admits(request, principal):  # its role guard answers 403 next: no operation started, none kept
        return
    key = idempotency_key.strip('"')  # a structured-field string ("…") or a bare token
    if not key:
        raise KeyReused("Idempotency-Key is empty")
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body()
    client = f"{principal.role.value}:{principal.subject_id or principal.key_id}"
    claim = Claim(client, key, fingerprint(request.method, path, body))
    platform = await get_platform(request)
    store = IdempotencyStore(platform.database, response_seal(platform.settings.pii_master_key))
    stored = await asyncio.to_thread(store.begin, claim, request.method, path)
    if stored is not None:
        raise _Replay(stored)
    slot.claim, slot.store = claim, store


#: ``@router.post(…, dependencies=[Idempotent])``: the route takes an Idempotency-Key
Idempotent = Depends(idempotency)


class IdempotencyMiddleware:
    """Completes a claimed key with the response (buffered, stored, then sent, so a retry right after the answer
    finds it) or releases it on a 5xx, an answer with ``Retry-After``, an error or a cancelled request."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        slot = _Slot()
        scope[_SCOPE_KEY] = slot

        async def capture(message: Message) -> None:
            if slot.claim is None or slot.settled or not message["type"].startswith("http.response"):
                await send(message)
                return
            slot.messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await _settle(slot, bool(scope.get(NOTHING_DONE)))
                for buffered in slot.messages:
                    await send(buffered)

        try:
            await self._app(scope, receive, capture)
        finally:
            if slot.claim is not None and not slot.settled and slot.store is not None:
                slot.settled = True
                await asyncio.shield(_settle_key(slot.store.release, slot.claim))


async def _settle(slot: _Slot, nothing_done: bool = False) -> None:
    assert slot.claim is not None
    assert slot.store is not None
    slot.settled = True
    start = slot.messages[0]
    status = int(start["status"])
    # not an outcome (a 5xx, or an answer that says when to ask again: an accept or a repayment in progress, a rate
    # limit), or a refusal that changed nothing (``nothing_done``: a validation error): the key is released, so the
    # same key asked again runs the request (corrected) instead of replaying this answer or calling the body another
    # request
    retry_later = any(name.lower() == b"retry-after" for name, _ in start.get("headers", []))
    if status >= 500 or retry_later or nothing_done:
        await _settle_key(slot.store.release, slot.claim)
        return
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in start.get("headers", [])
        if name.decode("latin-1").lower() not in _NOT_REPLAYED
    ]
    body = b"".join(m.get("body", b"") for m in slot.messages if m["type"] == "http.response.body")
    complete = functools.partial(slot.store.complete, response=StoredResponse(status, headers, body))
    await _settle_key(complete, slot.claim)


#: the keys whose release or completion the database refused, settled again in the background
_UNSETTLED: set[asyncio.Task[None]] = set()


async def _settle_key(settle: Callable[[Claim], None], claim: Claim) -> None:
    """``settle`` (the key's release, or its completion with the answer) now; when the database is down (the
    request's own failure was most likely the same outage), the answer still goes out, and the key is settled again
    in the background until the database is back, within half the key's lock: a retry meanwhile is told to ask again
    (409 with Retry-After), never left waiting out the lock for a request that is over."""
    try:
        await asyncio.to_thread(settle, claim)
    except DATABASE_UNAVAILABLE as err:
        log.warning("Idempotency-Key %r not settled (%s); retrying while the database is away", claim.key, err)
        task = asyncio.create_task(_settle_later(settle, claim))
        _UNSETTLED.add(task)
        task.add_done_callback(_UNSETTLED.discard)
    except Exception:  # the key then waits out its lock; the answer matters more
        log.exception("could not settle Idempotency-Key %r", claim.key)


async def _settle_later(settle: Callable[[Claim], None], claim: Claim) -> None:
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(DATABASE_UNAVAILABLE),
            wait=wait_exponential_jitter(multiplier=0.5, max=SETTLE_RETRY_MAX_WAIT_SECONDS),
            stop=stop_after_delay(LOCK.total_seconds() / 2),
            reraise=True,
        ):
            with attempt:
                await asyncio.to_thread(settle, claim)
    except Exception:
        log.exception("gave up settling Idempotency-Key %r: it waits out its lock", claim.key)
    else:
        log.info("Idempotency-Key %r settled once the database was back", claim.key)


def install(app: FastAPI) -> None:
    app.add_middleware(IdempotencyMiddleware)

    @app.exception_handler(_Replay)
    async def _replay(request: Request, exc: _Replay) -> Response:
        response = Response(content=exc.stored.body, status_code=exc.stored.status_code)
        for name, value in exc.stored.headers:
            response.headers.append(name, value)
        response.headers[REPLAYED_HEADER] = "true"
        return response

    @app.exception_handler(KeyReused)
    async def _reused(request: Request, exc: KeyReused) -> JSONResponse:
        return problem(
            422,
            "idempotency-key-reused",
            "The Idempotency-Key was used with another request",
            str(exc),
            request.url.path,
            errors=[{"field": HEADER, "message": str(exc)}],
        )

    @app.exception_handler(KeyInUse)
    async def _in_use(request: Request, exc: KeyInUse) -> JSONResponse:
        response = problem(
            409, "idempotency-key-in-use", "The request is already being processed", str(exc), request.url.path
        )
        response.headers["Retry-After"] = "1"
        return response
