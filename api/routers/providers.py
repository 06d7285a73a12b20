"""Providers: an admin registers HTTP lenders, plugin adapters and on-chain pools; a provider's own API key sees its
health and circuit-breaker state; providers post signed webhooks."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy.orm import Session

from aggregator import offer_events
from aggregator.offchain_payments import OffchainPayments, PaymentNotRecordable
from aggregator.quote_pipeline import MAX_TERM_DAYS
from aggregator.receipts import LedgerReceipts
from api import refusals
from api.auth import Principal, Role, actor_of, issue_key, revoke_subject_keys
from api.body_limit import capped_body
from api.bootstrap import Platform
from api.client import client_address
from api.deps import AdminPrincipal, PlatformDep, require
from api.idempotency import Idempotent
from api.input_types import JsonInteger, json_number
from api.pagination import MAX_LIMIT, CursorParam, decode_key_cursor, encode_key_cursor
from api.schemas import JURISDICTION_PATTERN
from compliance.adverse_action import Party
from compliance.jurisdiction import JurisdictionRules
from providers import policy
from providers._exceptions import (
    AlreadyRegistered,
    InvalidPlugin,
    InvalidRegistration,
    PoolAlreadyServed,
    UnknownProvider,
    UnknownProviderKind,
    WebhookRejected,
)
from providers.base import ProviderRegistration
from providers.models import Capabilities
from providers.registry import ProviderRegistry
from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from providers.webhooks import (
    MAX_WEBHOOK_BODY_BYTES,
    PAYMENT_RECEIVED,
    WebhookEvent,
    receive_webhook,
    refuse_unauthenticated,
)
from store.leases import SqlLeaseStore
from store.loans import SqlLoanStore
from store.offer_events import SqlOfferEventRepository
from store.payments import SqlPaymentStore

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/providers", tags=["providers"])
PROVIDERS_CURSOR = "providers"  # the providers list's cursors name it (another list's cursor is refused)

ProviderOrAdmin = Annotated[Principal, require(Role.PROVIDER, Role.ADMIN)]


class CapabilitiesIn(BaseModel):
    """What the provider lends. Amounts are integer base units of the asset, as decimal strings. Capabilities no
    request can meet are refused (422 naming the field): a minimum above its maximum, a minimum term longer than any
    credit request's (365 days), an asset, collateral asset or chain the platform does not have, a jurisdiction its
    rules do not know. Jurisdictions are ISO 3166 codes ("US-NY" style), compared upper-cased as a borrower's are; a
    country's code covers its subdivisions ("US" lends to a "US-FL" borrower). A pool's apply within its own asset
    and chain (capabilities leaving either out are refused)."""

    model_config = ConfigDict(extra="forbid")

    assets: list[str] = Field(min_length=1, description="symbols of the platform's assets (GET /v1/platform)")
    chains: list[str] = Field(default_factory=list, description="the platform's chain names; empty: any")
    min_principal: str = Field(default="1", pattern=r"^[0-9]{1,78}$")
    max_principal: str = Field(
        default=str(2**255), pattern=r"^[0-9]{1,78}$", description="at least min_principal, below 2^256"
    )
    min_term_days: JsonInteger = Field(default=1, ge=1, le=MAX_TERM_DAYS)
    max_term_days: JsonInteger = Field(default=3_650, ge=1, le=3_650, description="at least min_term_days")
    collateral_assets: list[str] = Field(default_factory=list)
    jurisdictions: list[Annotated[str, Field(max_length=8, pattern=JURISDICTION_PATTERN)]] = Field(
        default_factory=list,
        description='ISO 3166 codes of the borrowers\' jurisdictions it lends in: "US-NY" style for states, a '
        "country's code (\"US\") for all its subdivisions (any case; kept upper case, as a borrower's is); each "
        "one the platform's rules serve or the country of one; none: every jurisdiction",
    )

    @field_validator("jurisdictions")
    @classmethod
    def _upper_case(cls, codes: list[str]) -> list[str]:
        return [code.upper() for code in codes]

    @field_validator("max_principal")
    @classmethod
    def _principal_range(cls, value: str, info: ValidationInfo) -> str:
        if int(value) >= 2**256:
            raise ValueError("must be below 2^256")
        low = info.data.get("min_principal")
        if low is not None and int(value) < int(low):
            raise ValueError(f"below min_principal {low}: no amount is in range")
        return value

    @field_validator("max_term_days")
    @classmethod
    def _term_range(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_term_days")
        if low is not None and value < low:
            raise ValueError(f"below min_term_days {low}: no term is in range")
        return value

    def unknown_to(self, platform: Platform) -> list[tuple[str, str]]:
        """(field, message) for each asset, collateral asset or chain ``platform`` does not have, and each
        jurisdiction its rules do not know (``JurisdictionRules.knows``: neither a jurisdiction served nor the
        country of one — no borrower could ever be in it)."""
        known_assets, known_chains = set(platform.assets.symbols()), set(platform.chains)
        refused = []
        for field, values, known in (
            ("assets", self.assets, known_assets),
            ("collateral_assets", self.collateral_assets, known_assets),
            ("chains", self.chains, known_chains),
        ):
            for index, value in enumerate(values):
                if value not in known:
                    refused.append((f"{field}.{index}", f"{value!r} is not one of {', '.join(sorted(known))}"))
        return refused + self._unknown_jurisdictions(platform.compliance.rules) if self.jurisdictions else refused

    def _unknown_jurisdictions(self, rules: JurisdictionRules) -> list[tuple[str, str]]:
        served = sorted(rules.jurisdictions)
        countries = sorted({code.split("-", 1)[0] for code in served} - set(served))
        return [
            (
                f"jurisdictions.{index}",
                f"{code!r} is not a jurisdiction the platform serves: one of {', '.join(served)}, or a country whose "
                f"code covers its subdivisions ({', '.join(countries)})",
            )
            for index, code in enumerate(self.jurisdictions)
            if not rules.knows(code)
        ]


LEGAL_NAME = (
    "the legal name of the creditor the lender lends as, named in every adverse-action notice given for it (12 CFR "
    "1002.9(g)); null: none on file (a pool, or a lender registered before legal names were asked for)"
)
ADDRESS = "that creditor's postal address; null with legal_name"


# The settings' policy as a registration gives it: JSON numbers only ("fail_max": true was read as 1 and "1.5" as
# 1.5; the settings' own model still reads numbers from environment strings). Its name and description are the
# document's schema, as before.
class ResiliencePolicy(policy.ResiliencePolicy):
    __doc__ = policy.ResiliencePolicy.__doc__

    _json_numbers = field_validator("*", mode="before")(json_number)


class RegistrationIn(BaseModel):
    """``kind`` names an adapter entry point: ``http`` (config: base_url, secret, timeout_seconds), ``pool``
    (config: chain, asset, address — a LendingPool of that asset lending for the chain's CreditAggregator, which
    has registered it through governance: 422 otherwise; one no other provider that quotes stands for: 409
    pool-already-served otherwise) or an installed plugin (its own config). A lender gives the creditor it lends as
    (``legal_name`` and ``address``, both or neither; required in production), which every adverse-action notice
    given for it names (12 CFR 1002.9(g)); a pool gives neither (no legal person: its notices name its contract and
    chain)."""

    model_config = ConfigDict(extra="forbid")

    provider_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{1,63}$")
    kind: str = Field(default="http", min_length=1, max_length=64)
    config: dict[str, Any]
    capabilities: CapabilitiesIn | None = None
    resilience: ResiliencePolicy | None = None
    webhook_url: str | None = Field(
        default=None,
        max_length=2048,
        description="where the loan events of the loans this provider funds are posted (loan.opened, "
        "loan.repayment …; signed with its HMAC secret): an http(s) URL whose host is public",
    )
    legal_name: str | None = Field(default=None, min_length=1, max_length=200, description=LEGAL_NAME)
    address: str | None = Field(default=None, min_length=1, max_length=400, description=ADDRESS)

    @model_validator(mode="after")
    def _both_or_neither(self) -> RegistrationIn:
        if (self.legal_name is None) != (self.address is None):
            raise ValueError("give both legal_name and address (the creditor a notice names), or neither")
        return self

    @property
    def creditor(self) -> Party | None:
        return None if self.legal_name is None or self.address is None else Party(self.legal_name, self.address)


class RegistrationOut(BaseModel):
    provider_id: str
    kind: str
    source: str
    legal_name: str | None = Field(default=None, description=LEGAL_NAME)
    address: str | None = Field(default=None, description=ADDRESS)
    api_key: str = Field(
        description="the provider's own API key (shown once): it reads the provider's health, the loans it funded "
        "and their events, and sets its loan-events webhook"
    )


def _registry(platform: Platform) -> ProviderRegistry:
    registry = platform.providers
    if not isinstance(registry, ProviderRegistry):
        raise refusals.PROVIDER_REGISTRY_UNAVAILABLE("the provider registry is not available")
    return registry


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RegistrationOut, dependencies=[Idempotent])
async def register_provider(body: RegistrationIn, principal: AdminPrincipal, platform: PlatformDep) -> RegistrationOut:
    registry = _registry(platform)
    if body.capabilities is not None and (unknown := body.capabilities.unknown_to(platform)):
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("body", "capabilities", *field.split(".")), "msg": message}
                for field, message in unknown
            ]
        )
    capabilities = None if body.capabilities is None else Capabilities.from_document(body.capabilities.model_dump())
    registration = ProviderRegistration(body.provider_id, body.kind, body.config, capabilities, body.creditor)
    try:
        provider = await registry.register(registration, body.resilience, body.webhook_url, actor=actor_of(principal))
    except AlreadyRegistered as err:
        raise refusals.PROVIDER_REGISTERED(str(err)) from err
    except PoolAlreadyServed as err:
        raise refusals.POOL_ALREADY_SERVED(str(err)) from err
    except (InvalidRegistration, InvalidPlugin, UnknownProviderKind) as err:
        raise refusals.INVALID_REGISTRATION(str(err)) from err
    label, actor = f"provider {provider.provider_id}", actor_of(principal)
    key = await asyncio.to_thread(issue_key, platform.database, Role.PROVIDER, provider.provider_id, label, actor=actor)
    return RegistrationOut(
        provider_id=provider.provider_id,
        kind=body.kind,
        source="api",
        legal_name=body.legal_name,
        address=body.address,
        api_key=key,
    )


class ListedProviderOut(BaseModel):
    provider_id: str
    kind: str
    source: str = Field(
        description="where its registration comes from: settings (CREDITMESH_HTTP_LENDERS), api (POST /v1/providers, "
        "any kind) or deployment (a chain's deployed lending pool)"
    )
    breaker: str = Field(description="its circuit breaker's state: closed, open or half-open")
    legal_name: str | None = Field(default=None, description=LEGAL_NAME)
    address: str | None = Field(default=None, description=ADDRESS)
    deregistered: bool = Field(
        default=False,
        description="deregistered (DELETE /v1/providers/{id}): it no longer quotes, and serves its existing loans "
        "only (its webhooks, the funding of its accepted offers)",
    )


class ProvidersOut(BaseModel):
    providers: list[ListedProviderOut] = Field(description="ordered by provider_id")
    not_loaded: dict[str, str] = Field(description="registrations that could not be loaded, with the reason")
    plugins: list[str] = Field(description="the adapter plugins installed (entry points)")
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the following page; null at the end (always without `limit`)"
    )
    next: str | None = Field(default=None, description="the following page's URL; null at the end")


@router.get("", response_model=ProvidersOut)
async def list_providers(
    request: Request,
    _: AdminPrincipal,
    platform: PlatformDep,
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_LIMIT, description=f"page size, 1–{MAX_LIMIT}; absent: every provider in one answer"),
    ] = None,
    cursor: CursorParam = None,
) -> ProvidersOut:
    """Every provider with its kind, source and breaker state, ordered by id (the deregistered ones too, marked);
    with ``limit``, a page at a time (``next_cursor`` for the following page, null at the end). Without ``limit``
    the whole list, as before paging."""
    registry = _registry(platform)
    after = decode_key_cursor(PROVIDERS_CURSOR, cursor)
    remaining = [provider_id for provider_id in sorted(registry) if after is None or provider_id > after]
    shown = remaining if limit is None else remaining[:limit]
    listed = []
    for provider_id in shown:
        provider = registry.get_provider(provider_id)
        creditor = provider.creditor()
        listed.append(
            ListedProviderOut(
                provider_id=provider_id,
                kind=provider.kind,
                source=registry.source(provider_id),
                breaker=await provider.breaker.state(),
                legal_name=None if creditor is None else creditor.name,
                address=None if creditor is None else creditor.address,
                deregistered=registry.deregistered(provider_id),
            )
        )
    next_cursor = encode_key_cursor(PROVIDERS_CURSOR, shown[-1]) if len(remaining) > len(shown) and shown else None
    return ProvidersOut(
        providers=listed,
        not_loaded=dict(registry.load_errors),
        plugins=registry.plugins.names(),
        next_cursor=next_cursor,
        next=None if next_cursor is None else str(request.url.include_query_params(cursor=next_cursor)),
    )


@router.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deregister_provider(provider_id: str, principal: AdminPrincipal, platform: PlatformDep) -> None:
    """Stop quoting a provider registered through the API, in every API process within about a second; nothing
    else stops. Its registration is kept, disabled, and the provider with it: its signed webhooks
    (``payment.received``, ``offer.funding_failed`` …) are still verified and acted on, its accepted offers still
    funded or cancelled, and its loans and records keep naming it (their loan events are still posted to its webhook
    URL). Its quotes still acceptable are withdrawn in the same transaction (an accept of one answers 409
    ``quote-withdrawn``), and its API keys are revoked (with them the tokens issued to them). The same id may be
    registered again, with a new key: the new registration serves its existing loans too, and the withdrawn quotes
    stay withdrawn. A provider from the settings or the deployment records is 404 here: it is configured there; so is
    one deregistered already."""
    revoked: list[str] = []
    actor, why = actor_of(principal), f"provider {provider_id} deregistered"

    def revoke(session: Session) -> None:
        revoked.extend(revoke_subject_keys(session, Role.PROVIDER, provider_id, actor=actor, why=why))

    try:
        withdrawn = await _registry(platform).deregister(provider_id, revoke, actor=actor)
    except UnknownProvider as err:
        raise refusals.PROVIDER_NOT_FOUND(str(err)) from err
    log.info(
        "provider %s deregistered; its API keys %s revoked, %d quotes withdrawn", provider_id, revoked, len(withdrawn)
    )


@router.get("/{provider_id}/health")
async def provider_health(
    provider_id: str, principal: ProviderOrAdmin, platform: PlatformDep, probe: bool = False
) -> dict[str, Any]:
    """Breaker state and transitions, latency percentiles, error rate, recent failures with reasons. A provider's
    key sees only its own provider."""
    registry = _registry(platform)
    if principal.role is Role.PROVIDER and principal.subject_id != provider_id:
        raise refusals.PROVIDER_NOT_FOUND(f"no provider {provider_id!r}")
    try:
        return await registry.health(provider_id, probe=probe)
    except UnknownProvider as err:
        raise refusals.PROVIDER_NOT_FOUND(f"no provider {provider_id!r}") from err


class LoanEventsWebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        max_length=2048,
        pattern=r"^https?://[^/?#\s]+",
        description="an http(s) URL whose host is public; null: no more events",
    )


@router.put("/{provider_id}/loan-events-webhook", response_model=LoanEventsWebhookIn)
async def set_loan_events_webhook(
    provider_id: str, body: LoanEventsWebhookIn, principal: ProviderOrAdmin, platform: PlatformDep
) -> LoanEventsWebhookIn:
    """Where the provider's loan events go from now on (signed with its HMAC secret; events still pending go there
    too). A provider's key changes its own only; a provider configured in the settings is changed there (404); a
    registration without an HMAC secret (a pool registered without one) cannot have a URL (422)."""
    registry = _registry(platform)
    if principal.role is Role.PROVIDER and principal.subject_id != provider_id:
        raise refusals.PROVIDER_NOT_FOUND(f"no provider {provider_id!r}")
    try:
        await registry.set_webhook_url(provider_id, body.url, actor=actor_of(principal))
    except UnknownProvider as err:
        raise refusals.PROVIDER_NOT_FOUND(str(err)) from err
    except InvalidRegistration as err:
        raise refusals.WEBHOOK_URL_REFUSED(str(err)) from err
    return body


@router.post("/{provider_id}/webhooks", status_code=status.HTTP_202_ACCEPTED)
async def provider_webhook(
    provider_id: str,
    request: Request,
    platform: PlatformDep,
    x_creditmesh_timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
    x_creditmesh_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> dict[str, str]:
    """Authenticated by the provider's HMAC signature, not by an API key. An unauthenticated refusal never counts
    against the provider (a correctly signed body that breaks the protocol is 422 and recorded as its incident);
    refusals are limited per client address (429 beyond), bodies to 64 KiB (413); an event id seen before is 409, and
    so is a ``payment.received`` for a loan with nothing left to record or one the contract refused (503 while its
    chain is unavailable, and ``payment-not-sent`` when the payment is kept but the node did not take the operator's
    transaction for now: reported again, it is sent under a new attempt). An
    ``offer.withdrawn`` withdraws the offer's quotes, an ``offer.funding_failed`` fails the accept waiting on the
    lender's funding (503 while the accept's loan is not open yet) (``aggregator.offer_events``; ``effect`` in the
    answer)."""
    registry = _registry(platform)
    source = client_address(request, platform.settings.trusted_proxy_networks) or "unknown"
    try:
        body = await capped_body(request, MAX_WEBHOOK_BODY_BYTES)
        if body is None:
            reason = f"webhook refused: body larger than {MAX_WEBHOOK_BODY_BYTES} bytes"
            raise await refuse_unauthenticated(registry.webhook_refusals, source, provider_id, reason, 413)
        received = await receive_webhook(
            registry,
            platform.database,
            provider_id,
            x_creditmesh_timestamp,
            x_creditmesh_signature,
            body,
            source=source,
            effect=functools.partial(_offer_event, provider_id),
        )
    except UnknownProvider as err:
        raise refusals.PROVIDER_NOT_FOUND(str(err)) from err
    except WebhookRejected as err:
        headers = {"WWW-Authenticate": "HMAC"} if err.status_code == 401 else None
        if err.status_code == 429:
            headers = {"Retry-After": str(registry.webhook_refusals.limits.window_seconds)}
        if err.status_code == 503:  # an offer event about an accept under way: not stored, to be sent again
            headers = {"Retry-After": str(offer_events.UNDER_WAY_RETRY_SECONDS)}
        raise HTTPException(err.status_code, str(err), headers=headers) from err
    event = received.event
    if event.type == PAYMENT_RECEIVED:
        return await _record_payment(platform, provider_id, event)
    return {"accepted": event.event_id} | ({} if received.effect is None else {"effect": received.effect})


def _offer_event(provider_id: str, session: Session, event: WebhookEvent) -> str | None:
    """What an offer event does to its quotes, in the transaction storing it (``aggregator.offer_events``)."""
    return offer_events.act(SqlOfferEventRepository(session), provider_id, event, datetime.now(UTC))


async def _record_payment(platform: Platform, provider_id: str, event: WebhookEvent) -> dict[str, str]:
    """The operator records the lender's received payment on-chain (``aggregator.offchain_payments``)."""
    assert event.payment_ref is not None  # the event's validator requires both
    assert event.amount is not None
    payments = OffchainPayments(
        SqlLoanStore(platform.database),
        SqlPaymentStore(platform.database),
        platform.chains,
        platform.assets,
        LedgerReceipts(platform.database),
        wait_seconds=platform.settings.accept_wait_seconds,
        leases=SqlLeaseStore(platform.database.sessions),  # a loan's payments one at a time across processes
    )
    try:
        recorded = await payments.record(
            provider_id,
            event.offer_ref,
            event.payment_ref,
            event.amount,
            event_id=event.event_id,
            paid_in_full=event.paid_in_full,
            occurred_at=event.occurred_at,
        )
    except PaymentNotRecordable as err:
        raise HTTPException(err.status, str(err)) from err
    answer = {"accepted": event.event_id, "loan_id": recorded.loan_id, "status": recorded.status}
    return answer | ({"transaction_hash": recorded.tx_hash} if recorded.tx_hash else {})
