"""The adapter for an HTTP lender speaking the Provider Quote Protocol v1 (docs/provider-quote-protocol.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, Field, ValidationError

from providers.base import ProviderAdapter, ProviderError, ProviderProtocolError
from providers.models import (
    Capabilities,
    Decline,
    FundingResult,
    ProviderHealth,
    ProviderKind,
    ProviderOffer,
    QuoteRequest,
    RepaymentShape,
)
from providers.signing import signed_headers

PROTOCOL_VERSION = "1"


class _WireOffer(BaseModel):
    offer_ref: str = Field(min_length=1, max_length=128)
    rate_bps: int = Field(ge=0, le=100_000)
    origination_fee: int = Field(ge=0)
    repayment: RepaymentShape = RepaymentShape.SINGLE
    installments: int = Field(default=1, ge=1, le=600)
    expires_at: datetime


class _WireQuoteResponse(BaseModel):
    protocol_version: str
    offers: list[_WireOffer] = Field(min_length=1)


class _WireAcceptResponse(BaseModel):
    status: str
    detail: str = ""


class HttpLenderAdapter(ProviderAdapter):
    """Asks one HTTP lender for offers over the Provider Quote Protocol, signing each request with HMAC."""

    kind = ProviderKind.TRADITIONAL.value

    def __init__(
        self,
        provider_id: str,
        base_url: str,
        secret: str,
        capabilities: Capabilities,
        client: httpx.AsyncClient,
        timeout: float = 2.0,
    ) -> None:
        self.provider_id = provider_id
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._capabilities = capabilities
        self._client = client
        self._timeout = httpx.Timeout(timeout)

    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def _post(self, path: str, payload: dict[str, object], extra: dict[str, str] | None = None) -> httpx.Response:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "X-Creditmesh-Protocol": PROTOCOL_VERSION}
        headers |= signed_headers(self._secret, int(time.time()), body)
        headers |= extra or {}
        try:
            response = await self._client.post(
                f"{self._base_url}{path}", content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as err:
            raise ProviderError(f"{self.provider_id}: timed out") from err
        except httpx.TransportError as err:
            raise ProviderError(f"{self.provider_id}: transport error {type(err).__name__}") from err
        if response.status_code >= 500:
            raise ProviderError(f"{self.provider_id}: HTTP {response.status_code}")
        return response

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        payload: dict[str, object] = {
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
        response = await self._post("/v1/quotes", payload, {"X-Correlation-Id": request.correlation_id})
        if response.status_code == 204:
            return Decline(self.provider_id, "no offer")
        if response.status_code != 200:
            raise ProviderProtocolError(f"{self.provider_id}: unexpected HTTP {response.status_code}")
        try:
            parsed = _WireQuoteResponse.model_validate_json(response.content)
        except ValidationError as err:
            raise ProviderProtocolError(f"{self.provider_id}: body violates the protocol: {err.errors()[0]}") from err
        now = datetime.now(UTC)
        offers = []
        for wire in parsed.offers:
            if wire.expires_at <= now:
                raise ProviderProtocolError(f"{self.provider_id}: offer {wire.offer_ref} already expired")
            if wire.origination_fee >= request.principal:
                raise ProviderProtocolError(f"{self.provider_id}: fee not below principal")
            offers.append(
                ProviderOffer(
                    provider_id=self.provider_id,
                    kind=ProviderKind.TRADITIONAL,
                    asset=request.asset,
                    principal=request.principal,
                    rate_bps=wire.rate_bps,
                    origination_fee=wire.origination_fee,
                    term_days=request.term_days,
                    repayment=wire.repayment,
                    installments=wire.installments,
                    expires_at=wire.expires_at,
                    provider_ref=wire.offer_ref,
                )
            )
        return offers

    async def accept(self, offer: ProviderOffer, idempotency_key: str) -> FundingResult:
        response = await self._post(
            f"/v1/offers/{offer.provider_ref}/accept",
            {"offer_ref": offer.provider_ref},
            {"Idempotency-Key": idempotency_key},
        )
        try:
            parsed = _WireAcceptResponse.model_validate_json(response.content)
        except ValidationError as err:
            raise ProviderProtocolError(f"{self.provider_id}: accept body violates the protocol") from err
        return FundingResult(self.provider_id, offer.provider_ref, parsed.status == "funded", parsed.detail)

    async def health(self) -> ProviderHealth:
        try:
            response = await self._client.get(f"{self._base_url}/v1/health", timeout=self._timeout)
        except httpx.HTTPError as err:
            return ProviderHealth(self.provider_id, False, type(err).__name__)
        return ProviderHealth(self.provider_id, response.status_code == 200, f"HTTP {response.status_code}")
