"""The adapter for an HTTP lender speaking the Provider Quote Protocol v1 (docs/provider-quote-protocol.yaml).

Every request carries a unique ``nonce`` and the ``operation`` it asks for (``quote``, ``accept``, ``reserve``,
``fund``, ``cancel``; and the ``offer_ref`` of a call about an offer) in its body and is signed with HMAC-SHA256 over
``"{timestamp}.{body}"``, so a signed body is good at its own path only;
every call has an httpx timeout; every answer is validated against the protocol's schema, and anything else —
a 5xx, a body that is not the schema, a negative rate, an offer already expired — is a ``ProviderError`` naming the
reason, which the resilience layer counts as this provider's failure.

Transport hardening (docs/security.md): the ``base_url`` is plain ``http(s)://host[:port][/path]``, checked by the
``DestinationGuard`` when registered and on every call (the platform's client connects through a
``PinnedTransport``); an answer's body is read up to ``MAX_RESPONSE_BYTES`` and never quoted in an error (errors
reach ``provider_outcomes[].detail``, which borrowers see); only a valid correlation id is forwarded; a request that
cannot be encoded here is a ``LocalRequestError``, not the lender's failure."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compliance.random_ids import uuid4
from providers._exceptions import (
    DestinationRefused,
    InvalidRegistration,
    LocalRequestError,
    ProviderError,
    ProviderProtocolError,
    ProviderServerError,
    ProviderTimeout,
    ProviderUnavailable,
)
from providers.base import AdapterContext, ProviderAdapter, ProviderRegistration
from providers.destinations import DestinationGuard, LenderClient, check_https, check_url_shape
from providers.http_pool import AnswerTooLarge
from providers.models import (
    Capabilities,
    Decline,
    FundingResult,
    FundingState,
    FundingStatus,
    InstallmentSchedule,
    InterestDayCount,
    PaymentFrequency,
    ProviderHealth,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
    ScheduledPayment,
    is_valid_correlation_id,
)
from providers.signing import ReplayGuard, signed_headers

PROTOCOL_VERSION = "1"
PROTOCOL_HEADER = "X-Creditmesh-Protocol"
CORRELATION_HEADER = "X-Correlation-Id"
#: the paths whose URLs an adapter keeps (the others carry an offer's reference)
FIXED_PATHS = frozenset({"/v1/quotes", "/v1/health"})
#: the largest answer read from a lender (a quote answer holds at most 20 offers: a few KiB)
MAX_RESPONSE_BYTES = 256 * 1024


class HttpLenderConfig(BaseModel):
    """The ``config`` of an ``http`` registration."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(min_length=8, max_length=500)
    secret: str = Field(min_length=8, max_length=200)
    timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    connect_timeout_seconds: float = Field(default=1.0, gt=0, le=30)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        check_url_shape(value)
        return value.rstrip("/")


class _WirePayment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: int = Field(ge=1, le=600, strict=True)
    due: date
    amount: int = Field(ge=0, strict=True)


class _WireSchedule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    frequency: PaymentFrequency = "monthly"
    day_count: InterestDayCount = "30/360"
    first_due: date | None = None
    balloon: int = Field(default=0, ge=0, strict=True)
    payments: list[_WirePayment] = Field(default_factory=list, max_length=600)


class _WireOffer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    offer_ref: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    # a JSON number: whole basis points are taken, a finer rate is refused with its reason (never rounded)
    rate_bps: Decimal = Field(ge=0, le=100_000, allow_inf_nan=False)
    origination_fee: int = Field(ge=0, strict=True)
    repayment: RepaymentShape = RepaymentShape.SINGLE
    installments: int = Field(default=1, ge=1, le=600)
    schedule: _WireSchedule | None = None
    expires_at: datetime

    @field_validator("rate_bps", mode="before")
    @classmethod
    def _a_number(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a JSON number of basis points")
        return Decimal(str(value))

    def whole_rate_bps(self) -> int | None:
        """The rate in whole basis points, or None when it is finer than a basis point."""
        return int(self.rate_bps) if self.rate_bps == self.rate_bps.to_integral_value() else None

    def installment_schedule(self) -> InstallmentSchedule | None:
        if self.repayment is not RepaymentShape.INSTALLMENTS:
            return None
        wire = self.schedule or _WireSchedule()
        return InstallmentSchedule(
            frequency=wire.frequency,
            day_count=wire.day_count,
            first_due=wire.first_due,
            balloon=wire.balloon,
            payments=tuple(ScheduledPayment(p.number, p.due, p.amount) for p in wire.payments),
        )


class _WireQuoteResponse(BaseModel):
    # only the version we speak: any other is refused by the schema, whose reason never quotes it (a lender's text
    # in a refusal's detail reached the borrower, in provider_outcomes[].detail)
    protocol_version: Literal["1"]
    offers: list[_WireOffer] = Field(min_length=1, max_length=20)


class _WireAcceptResponse(BaseModel):
    status: str = Field(pattern="^(funded|accepted|refused)$")
    detail: str = ""


class _WirePhaseResponse(BaseModel):
    status: str = Field(pattern="^(reserved|funded|cancelled|refused)$")
    detail: str = ""


def _reserve_payload(offer: ProviderOffer) -> dict[str, Any]:
    """The terms the lender quoted, its repayment schedule included: for an amortizing offer the schedule with the
    payments as disclosed to the borrower (what ``termsHash`` covers), in base units."""
    return {
        "principal": str(offer.principal),
        "rate_bps": offer.rate_bps,
        "origination_fee": str(offer.origination_fee),
        "term_days": offer.term_days,
        "repayment": offer.repayment.value,
        "installments": offer.installments,
    } | ({} if offer.schedule is None else {"schedule": offer.schedule.as_document()})


class _WireStatusResponse(BaseModel):
    offer_ref: str
    state: FundingState
    detail: str = ""


def _schema_reason(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


class _Answer(NamedTuple):
    """A lender's answer as the adapter reads it: the status and the body (read up to ``MAX_RESPONSE_BYTES``)."""

    status_code: int
    content: bytes


def _signed_body(operation: str, offer_ref: str) -> dict[str, Any]:
    """What every call about one offer carries, under the signature: the operation it asks for and the offer. The
    signature covers the body only, so a body that did not name its operation was as good at another path: the
    platform's signed ``cancel`` of an offer, sent again to ``/fund``, funded a loan that never opened on-chain."""
    return {"protocol_version": PROTOCOL_VERSION, "operation": operation, "nonce": uuid4().hex, "offer_ref": offer_ref}


class HttpLenderAdapter(ProviderAdapter):
    """Asks one HTTP lender for offers over the Provider Quote Protocol, signing each request with HMAC."""

    kind = ProviderKind.TRADITIONAL.value
    #: ``HttpLenderConfig`` without its ``secret`` (stored sealed as ``secret_sealed``): the base URL's origin only
    audited_config = frozenset({"base_url", "timeout_seconds", "connect_timeout_seconds"})

    def __init__(
        self,
        provider_id: str,
        base_url: str,
        secret: str,
        capabilities: Capabilities,
        client: httpx.AsyncClient,
        timeout: float = 2.0,
        connect_timeout: float = 1.0,
        destinations: DestinationGuard | None = None,
        https_only: bool = False,
    ) -> None:
        self.provider_id = provider_id
        self.base_url = base_url.rstrip("/")
        self._destinations = destinations
        self._https_only = https_only
        self._secret = secret
        self._capabilities = capabilities
        self._client = client
        self._timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        #: what ``client.build_request`` adds to every request of this adapter, taken once (the client's default
        #: headers, the timeout): it merged the client's URL, headers, cookies and parameters anew on every call
        #: (~45 us; the request itself ~20 us). A lender client keeps no cookies (``LenderClient``).
        self._client_headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in client.headers.raw}
        self._client_header_names = frozenset(key.lower() for key in self._client_headers)
        self._extensions: dict[str, Any] = {"timeout": self._timeout.as_dict()}
        #: the URLs of the fixed paths (quotes, health) parsed once: httpx parses a URL string on every request
        self._urls: dict[str, httpx.URL] = {}
        #: verifies the webhooks this lender sends (same secret, same "{timestamp}.{body}" HMAC, replays refused)
        self.webhook_guard = ReplayGuard(secret)

    @classmethod
    def from_registration(cls, registration: ProviderRegistration, context: AdapterContext) -> Self:
        try:
            config = HttpLenderConfig.model_validate(dict(registration.config))
        except ValidationError as err:
            raise InvalidRegistration(f"{registration.provider_id}: {_schema_reason(err)}") from err
        if context.https_only:  # also a registration stored before production refused plain http: not loaded
            try:
                check_https("base_url", config.base_url)
            except ValueError as err:
                raise InvalidRegistration(f"{registration.provider_id}: {err}") from err
        return cls(
            registration.provider_id,
            config.base_url,
            config.secret,
            registration.capabilities or Capabilities(assets=frozenset({"USDC"})),
            context.http,
            timeout=config.timeout_seconds,
            connect_timeout=config.connect_timeout_seconds,
            destinations=context.destinations,
            https_only=context.https_only,
        )

    async def check_destination(self) -> None:
        """Refuse a ``base_url`` whose host resolves to an address the platform must not call, or a plain
        ``http://`` one in production (at registration)."""
        if self._https_only:
            try:
                check_https("base_url", self.base_url)
            except ValueError as err:
                raise InvalidRegistration(f"{self.provider_id}: {err}") from err
        if self._destinations is not None:
            try:
                await self._destinations.check(self.base_url)
            except DestinationRefused as err:
                raise InvalidRegistration(f"{self.provider_id}: base_url refused: {err}") from err

    def capabilities(self) -> Capabilities:
        return self._capabilities

    def _request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Request:
        """The request ``client.build_request`` would build: the client's headers, then ours; the timeout."""
        url = self._urls.get(path) or self._url(path)
        if any(name.lower() in self._client_header_names for name in headers):  # one of the client's set again
            return self._client.build_request(method, url, content=body or None, headers=headers, timeout=self._timeout)
        merged = self._client_headers | headers
        return httpx.Request(method, url, content=body or None, headers=merged, extensions=self._extensions)

    async def _send(self, method: str, path: str, payload: dict[str, Any] | None, extra: dict[str, str]) -> _Answer:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", PROTOCOL_HEADER: PROTOCOL_VERSION}
        headers |= signed_headers(self._secret, int(time.time()), body)
        headers |= extra
        try:
            answer = await self._exchange(method, path, body, headers)
        except AnswerTooLarge:
            raise self._too_large(path) from None
        except (UnicodeError, httpx.LocalProtocolError, httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            reason = f"{self.provider_id}: the request to {path} cannot be sent: {type(err).__name__}"
            raise LocalRequestError(reason) from err
        except httpx.TimeoutException as err:
            raise ProviderTimeout(f"{self.provider_id}: {type(err).__name__} on {path}") from err
        except httpx.TransportError as err:
            raise ProviderUnavailable(f"{self.provider_id}: {type(err).__name__} on {path}") from err
        if answer.status_code >= 500:
            raise ProviderServerError(f"{self.provider_id}: HTTP {answer.status_code} on {path}", answer.status_code)
        return answer

    async def _exchange(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> _Answer:
        """The request sent and its answer read: on the lender client straight through its aiohttp pool
        (``LenderClient.exchange``: the platform's and the baseline's client, ``api.bootstrap``), else — another
        client (a test's ``MockTransport``), or a header of ours that replaces one of the client's — through
        httpx's ``send``."""
        url = self._urls.get(path) or self._url(path)
        client = self._client
        if isinstance(client, LenderClient) and not any(name.lower() in self._client_header_names for name in headers):
            direct = await client.exchange(
                method, url, self._client_headers | headers, body, self._timeout, MAX_RESPONSE_BYTES
            )
            if direct is not None:
                return _Answer(*direct)
        response = await client.send(self._request(method, path, body, headers), stream=True)
        try:
            content = await self._read_capped(response, path)
        finally:
            await response.aclose()
        return _Answer(response.status_code, content)

    def _too_large(self, path: str) -> ProviderProtocolError:
        return ProviderProtocolError(f"{self.provider_id}: answer on {path} exceeds {MAX_RESPONSE_BYTES} bytes")

    def _url(self, path: str) -> httpx.URL:
        url = httpx.URL(f"{self.base_url}{path}")  # httpx.InvalidURL for a base_url it cannot parse: the caller's
        if path in FIXED_PATHS:
            self._urls[path] = url
        return url

    async def _read_capped(self, response: httpx.Response, path: str) -> bytes:
        """The answer's body, refused past ``MAX_RESPONSE_BYTES`` (declared or streamed)."""
        too_large = self._too_large(path)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            raise too_large
        content = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > MAX_RESPONSE_BYTES:
                    raise too_large
        except httpx.TimeoutException as err:
            raise ProviderTimeout(f"{self.provider_id}: {type(err).__name__} reading {path}") from err
        except httpx.TransportError as err:
            raise ProviderUnavailable(f"{self.provider_id}: {type(err).__name__} reading {path}") from err
        return bytes(content)

    def _unexpected(self, response: _Answer) -> ProviderProtocolError:
        # The body is not quoted: this message reaches provider_outcomes[].detail, which the borrower reads.
        return ProviderProtocolError(f"{self.provider_id}: unexpected HTTP {response.status_code}")

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        payload: dict[str, Any] = {
            "protocol_version": PROTOCOL_VERSION,
            "operation": "quote",
            "nonce": uuid4().hex,
            "request_id": request.request_id,
            "asset": request.asset,
            "asset_decimals": request.asset_decimals,
            "principal": str(request.principal),
            "term_days": request.term_days,
            "purpose": request.purpose,
            "collateral_asset": request.collateral_asset,
            "collateral_amount": str(request.collateral_amount),
            "grade": request.grade,
            "jurisdiction": request.jurisdiction,
        }
        if request.start_date is not None:
            payload["start_date"] = request.start_date.isoformat()
        correlation = request.correlation_id if is_valid_correlation_id(request.correlation_id) else uuid4().hex
        response = await self._send("POST", "/v1/quotes", payload, {CORRELATION_HEADER: correlation})
        if response.status_code == 204:
            return Decline(self.provider_id, "no offer")
        if response.status_code != 200:
            raise self._unexpected(response)
        try:
            parsed = _WireQuoteResponse.model_validate_json(response.content)
        except ValidationError as err:
            raise ProviderProtocolError(
                f"{self.provider_id}: body violates the protocol: {_schema_reason(err)}"
            ) from err
        now = datetime.now(UTC)
        offers = []
        # An offer is named by its place in the answer, never by its offer_ref: the lender's own text (128 characters
        # of its choosing) would reach the borrower in provider_outcomes[].detail.
        for place, wire in enumerate(parsed.offers, start=1):
            if wire.expires_at.tzinfo is None:
                raise ProviderProtocolError(f"{self.provider_id}: offer {place} expiry has no time zone")
            if wire.expires_at <= now:
                raise ProviderProtocolError(
                    f"{self.provider_id}: offer {place} expired at {wire.expires_at.isoformat()}"
                )
            if wire.origination_fee >= request.principal:
                raise ProviderProtocolError(f"{self.provider_id}: offer {place} fee not below principal")
            rate_bps = wire.whole_rate_bps()
            if rate_bps is None:
                raise ProviderProtocolError(
                    f"{self.provider_id}: offer {place} rate {wire.rate_bps} bps is finer than a basis "
                    "point: an offer carries whole basis points on-chain (uint32); refused, not rounded"
                )
            schedule = wire.installment_schedule()
            if schedule is not None and schedule.payments and len(schedule.payments) != wire.installments:
                raise ProviderProtocolError(
                    f"{self.provider_id}: offer {place} lists {len(schedule.payments)} payments for "
                    f"{wire.installments} installments"
                )
            offers.append(
                ProviderOffer(
                    provider_id=self.provider_id,
                    kind=ProviderKind.TRADITIONAL,
                    asset=request.asset,
                    principal=request.principal,
                    rate_bps=rate_bps,
                    origination_fee=wire.origination_fee,
                    term_days=request.term_days,
                    repayment=wire.repayment,
                    installments=wire.installments,
                    schedule=schedule,
                    expires_at=wire.expires_at.astimezone(UTC),
                    provider_ref=wire.offer_ref,
                )
            )
        return offers

    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        if not idempotency_key:
            raise ProviderProtocolError(f"{self.provider_id}: an accept needs an idempotency key")
        response = await self._send(
            "POST",
            f"/v1/offers/{offer.provider_ref}/accept",
            _signed_body("accept", offer.provider_ref),
            {"Idempotency-Key": idempotency_key},
        )
        if response.status_code in (404, 409, 410):
            return FundingResult(self.provider_id, offer.provider_ref, False, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise self._unexpected(response)
        try:
            parsed = _WireAcceptResponse.model_validate_json(response.content)
        except ValidationError as err:
            raise ProviderProtocolError(f"{self.provider_id}: accept body: {_schema_reason(err)}") from err
        return FundingResult(self.provider_id, offer.provider_ref, parsed.status != "refused", parsed.detail)

    # ---------------------------------------------------------------- the two-phase accept (additive in v1)

    async def reserve(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        """``POST /v1/offers/{ref}/reserve`` with the offer's terms and schedule: the lender holds the offer."""
        payload = _reserve_payload(offer)
        return await self._accept_phase(offer.provider_ref, "reserve", payload, idempotency_key, "reserved")

    async def fund(self, provider_ref: str, idempotency_key: str, chain_id: int, tx_hash: str) -> FundingResult:
        """``POST /v1/offers/{ref}/fund``: ``LoanOpened`` is confirmed in ``tx_hash`` on ``chain_id``."""
        payload = {"chain_id": chain_id, "tx_hash": tx_hash}
        return await self._accept_phase(provider_ref, "fund", payload, idempotency_key, "funded")

    async def cancel(self, provider_ref: str, idempotency_key: str) -> FundingResult:
        """``POST /v1/offers/{ref}/cancel``: the loan was not opened on-chain; the reservation is released."""
        return await self._accept_phase(provider_ref, "cancel", {}, idempotency_key, "cancelled")

    async def _accept_phase(
        self, provider_ref: str, phase: str, fields: dict[str, Any], idempotency_key: str, expected: str
    ) -> FundingResult:
        if not idempotency_key:
            raise ProviderProtocolError(f"{self.provider_id}: a {phase} needs an idempotency key")
        response = await self._send(
            "POST",
            f"/v1/offers/{provider_ref}/{phase}",
            _signed_body(phase, provider_ref) | fields,
            {"Idempotency-Key": idempotency_key},
        )
        if response.status_code in (404, 409, 410):
            return FundingResult(self.provider_id, provider_ref, False, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise self._unexpected(response)
        try:
            parsed = _WirePhaseResponse.model_validate_json(response.content)
        except ValidationError as err:
            raise ProviderProtocolError(f"{self.provider_id}: {phase} body: {_schema_reason(err)}") from err
        return FundingResult(self.provider_id, provider_ref, parsed.status == expected, parsed.detail)

    async def status(self, provider_ref: str) -> FundingStatus:
        response = await self._send("GET", f"/v1/offers/{provider_ref}", None, {})
        if response.status_code == 404:
            return FundingStatus(self.provider_id, provider_ref, FundingState.UNKNOWN, "HTTP 404")
        if response.status_code != 200:
            raise self._unexpected(response)
        try:
            parsed = _WireStatusResponse.model_validate_json(response.content)
        except ValidationError as err:
            raise ProviderProtocolError(f"{self.provider_id}: status body: {_schema_reason(err)}") from err
        return FundingStatus(self.provider_id, provider_ref, parsed.state, parsed.detail)

    async def health(self) -> ProviderHealth:
        try:
            response = await self._send("GET", "/v1/health", None, {})
        except ProviderError as err:
            return ProviderHealth(self.provider_id, False, str(err))
        return ProviderHealth(self.provider_id, response.status_code == 200, f"HTTP {response.status_code}")
