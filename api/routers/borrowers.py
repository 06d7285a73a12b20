"""Borrower accounts: registered by an admin (the API key is shown once); the borrower's own identity check (KYC),
credit profile, and the webhook its loan events go to."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from datetime import UTC, datetime

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from aggregator.borrower_accounts import BorrowerAccounts
from aggregator.errors import BorrowerAlreadyRegistered
from aggregator.event_destinations import borrower_secret_subject
from api import refusals
from api.auth import Role, actor_of, issue
from api.deps import AdminPrincipal, CurrentBorrowerAccount, PlatformDep
from api.idempotency import Idempotent
from api.schemas import (
    IGNORED_DOCUMENT_CLAIMS,
    BorrowerIn,
    BorrowerMeOut,
    BorrowerOut,
    KycIn,
    KycOut,
    ReviewRefOut,
    SanctionsScreeningOut,
)
from compliance.eligibility import normalize_code, residence_agrees
from compliance.kyc import IdentityDocument, IdentityProfile, KycStatus
from compliance.pii import Masked
from providers._exceptions import DestinationRefused
from providers.destinations import DestinationGuard, check_https, check_url_shape
from providers.secrets import SecretBox
from risk.profile import CreditProfile
from risk.velocity import check_kyc_submissions, record_kyc_submission
from store.borrowers import SqlBorrowerStore

router = APIRouter(prefix="/v1/borrowers", tags=["borrowers"])
log = logging.getLogger(__name__)


def _accounts(platform: PlatformDep) -> BorrowerAccounts:
    return BorrowerAccounts(SqlBorrowerStore(platform.database))


def _kyc_out(kyc: KycStatus) -> KycOut:
    return KycOut(
        applicant_id=kyc.applicant_id,
        state=kyc.state.value,
        tier=kyc.tier.name,
        reasons=[{"code": r.code, "message": r.message} for r in kyc.reasons],
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BorrowerOut, dependencies=[Idempotent])
async def register_borrower(body: BorrowerIn, principal: AdminPrincipal, platform: PlatformDep) -> BorrowerOut:
    wallet = to_checksum_address(body.wallet_address)

    def register() -> BorrowerOut:
        try:
            account = _accounts(platform).register(wallet, body.jurisdiction)
        except BorrowerAlreadyRegistered as err:
            raise refusals.WALLET_REGISTERED(str(err)) from err
        if body.credit_profile is not None:
            platform.borrowers.save_profile(account.id, body.credit_profile)
        issued = issue(platform.database, Role.BORROWER, account.id, f"borrower {wallet}", actor=actor_of(principal))
        return BorrowerOut(
            id=account.id,
            wallet_address=wallet,
            jurisdiction=account.jurisdiction,
            api_key=issued.key,
            api_key_id=issued.info.key_id,
        )

    return await asyncio.to_thread(register)


@router.get("/me", response_model=BorrowerMeOut)
async def me(borrower: CurrentBorrowerAccount, platform: PlatformDep) -> BorrowerMeOut:
    """The borrower's account, KYC status, credit profile and sanctions screening status (not yet screened, clear,
    held for review or blocked — a listed wallet too —, with the reason and the review ids)."""
    screening = await asyncio.to_thread(
        platform.sanctions_reviews.status, borrower.account.id, borrower.account.wallet_address
    )
    return BorrowerMeOut(
        id=borrower.account.id,
        wallet_address=to_checksum_address(borrower.account.wallet_address),
        jurisdiction=borrower.account.jurisdiction,
        kyc=None if borrower.kyc is None else _kyc_out(borrower.kyc),
        credit_profile=borrower.profile or CreditProfile(),
        sanctions_screening=SanctionsScreeningOut(
            status=screening.status,
            reason=screening.reason,
            reviews=[ReviewRefOut(id=r.id, state=r.state, opened_at=r.created_at) for r in screening.reviews],
        ),
    )


@router.put("/me/credit-profile", response_model=CreditProfile)
async def put_credit_profile(
    body: CreditProfile, borrower: CurrentBorrowerAccount, platform: PlatformDep
) -> CreditProfile:
    """The answers a lender asks (balances, history, employment, housing …); any field may be left out (unknown)."""
    await asyncio.to_thread(platform.borrowers.save_profile, borrower.account.id, body)
    return body


@router.post("/me/kyc", response_model=KycOut, dependencies=[Idempotent])
async def verify_identity(body: KycIn, borrower: CurrentBorrowerAccount, platform: PlatformDep) -> KycOut:
    """Identity and one document, sent to the KYC provider; the identity is stored encrypted. The answer is usually
    ``pending``: the provider's signed verdict (and with it the tier) arrives at ``POST /v1/kyc/webhooks`` moments
    later; read it at ``GET /v1/borrowers/me``. At most ``CREDITMESH_KYC_SUBMISSIONS_PER_DAY`` (5) submissions in
    24 hours (each creates an applicant at the provider, billed per applicant): past it, 429 ``kyc-submission-limit``
    with ``Retry-After``; a submission the provider did not take (503) and an ``Idempotency-Key`` replay do not
    count. An identity resident elsewhere than the account's jurisdiction (``residence_agrees``: the same code, or a
    subdivision of an account's country) is 422 naming ``identity.country`` before the provider is asked, and does
    not count: every credit request would refuse it (403 ``jurisdiction.residence-mismatch``)."""
    refuse_other_residence(borrower.account.jurisdiction, body.identity.country)
    limit = platform.settings.kyc_submissions_per_day
    await check_kyc_submissions(platform.velocity, borrower.account.id, limit, time.time())
    identity = IdentityProfile(**body.identity.model_dump(exclude={"ssn_or_dod_id"}))
    document = IdentityDocument(**body.document.model_dump(exclude=IGNORED_DOCUMENT_CLAIMS))
    kyc = await platform.borrowers.verify_identity(
        borrower.account.id, identity, document, platform.kyc, body.identity.ssn_or_dod_id
    )
    await record_kyc_submission(platform.velocity, borrower.account.id, time.time())  # the provider took it
    platform.mla.forget(borrower.account.id)  # statuses cached for the identity replaced: never asked for again
    log.info(
        "KYC of %s %s (borrower %s): %s",
        Masked(identity.first_name),
        Masked(identity.last_name),
        borrower.account.id,
        kyc.state.value,
    )
    return _kyc_out(kyc)


def refuse_other_residence(jurisdiction: str, country: str) -> None:
    """422 naming ``identity.country`` unless an identity resident in ``country`` may borrow on an account of
    ``jurisdiction`` (``compliance.eligibility.residence_agrees``): the provider would verify it, and the platform
    refuse every credit request and accept of it."""
    if residence_agrees(jurisdiction, country):
        return
    account = normalize_code(jurisdiction)
    within = "" if "-" in account else f" or one of its subdivisions ({account}-…)"
    message = (
        f"{country} is not the account's jurisdiction: the identity's country of residence must be {account}{within}; "
        "verify an identity resident there, or ask for an account in your jurisdiction"
    )
    raise RequestValidationError([{"type": "value_error", "loc": ("body", "identity", "country"), "msg": message}])


@router.delete("/{borrower_id}/identity", status_code=status.HTTP_204_NO_CONTENT)
async def erase_identity(borrower_id: str, _: AdminPrincipal, platform: PlatformDep) -> None:
    """Erase the borrower's personal data: its key destroyed in the key store (crypto-shredding every sealed copy),
    the sealed identity, country, credit profile and KYC applicants deleted, the cached MLA status dropped. Refused
    with 409 and the reason while a record-retention period runs; decision records keep their hashes either way. 404
    for a borrower that does not exist."""

    def erase() -> None:
        if not _accounts(platform).exists(borrower_id):
            raise refusals.BORROWER_NOT_FOUND(f"no borrower {borrower_id}")
        platform.borrowers.erase_identity(borrower_id, datetime.now(UTC))

    await asyncio.to_thread(erase)
    platform.mla.forget(borrower_id)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, pattern=r"^https?://[^/?#\s]+", description="an http(s) URL whose host is public")


class WebhookOut(BaseModel):
    url: str
    secret: str | None = Field(
        default=None,
        description="the HMAC secret the events are signed with (shown once, when the URL is set; a new one each "
        "time): verify X-Creditmesh-Signature as the Provider Quote Protocol says",
    )


@router.put("/me/webhook", response_model=WebhookOut)
async def set_webhook(body: WebhookIn, borrower: CurrentBorrowerAccount, platform: PlatformDep) -> WebhookOut:
    """Where the borrower's loan events go (``loan.opened``, ``loan.repayment``, ``loan.past_due``,
    ``loan.defaulted``, ``loan.liquidated``, ``loan.cancelled`` (a loan its lender never funded, cancelled on-chain:
    the collateral is back), ``loan.closed``, ``loan.written_off``, and ``loan.event_retracted`` when a reorg removed a
    fact already reported): signed POSTs, delivered at least once, in order per
    loan (docs/provider-quote-protocol.yaml, "Loan events"). Answers a new signing secret, shown once. In production
    the URL must be https://."""
    try:
        check_url_shape(body.url)
        if platform.settings.environment == "production":
            check_https("url", body.url)
        await DestinationGuard(platform.settings.resolved_outbound_allowed_networks).check(body.url)
    except (ValueError, DestinationRefused) as err:
        raise refusals.WEBHOOK_URL_REFUSED(f"url: {err}") from err
    secret = "whsec_" + secrets.token_urlsafe(32)
    box = SecretBox.from_master_key(bytes.fromhex(platform.settings.pii_master_key))
    sealed = base64.b64encode(box.seal(borrower_secret_subject(borrower.account.id), secret)).decode()

    await asyncio.to_thread(_accounts(platform).set_webhook, borrower.account.id, body.url, sealed)
    return WebhookOut(url=body.url, secret=secret)


@router.get("/me/webhook", response_model=WebhookOut)
async def get_webhook(borrower: CurrentBorrowerAccount, platform: PlatformDep) -> WebhookOut:
    """The borrower's webhook URL (its secret is never shown again); 404 when none is set."""

    url = await asyncio.to_thread(_accounts(platform).webhook_url, borrower.account.id)
    if url is None:
        raise refusals.WEBHOOK_NOT_SET("no webhook URL is set")
    return WebhookOut(url=url)


@router.delete("/me/webhook", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(borrower: CurrentBorrowerAccount, platform: PlatformDep) -> None:
    """No more loan events to the borrower (those not yet delivered are dropped as having no destination)."""

    await asyncio.to_thread(_accounts(platform).set_webhook, borrower.account.id, None, None)
