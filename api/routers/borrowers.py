"""Borrower accounts: registered by an admin (the API key is shown once); the borrower's own identity check (KYC)
and credit profile."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.auth import Role, issue_key
from api.deps import AdminPrincipal, CurrentBorrower, PlatformDep
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
from compliance.kyc import IdentityDocument, IdentityProfile, KycStatus
from compliance.pii import Masked
from risk.profile import CreditProfile
from store.api import BorrowerRow

router = APIRouter(prefix="/v1/borrowers", tags=["borrowers"])
log = logging.getLogger(__name__)


def _kyc_out(kyc: KycStatus) -> KycOut:
    return KycOut(
        applicant_id=kyc.applicant_id,
        state=kyc.state.value,
        tier=kyc.tier.name,
        reasons=[{"code": r.code, "message": r.message} for r in kyc.reasons],
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BorrowerOut, dependencies=[Idempotent])
async def register_borrower(body: BorrowerIn, _: AdminPrincipal, platform: PlatformDep) -> BorrowerOut:
    wallet = to_checksum_address(body.wallet_address)

    def register() -> BorrowerOut:
        with platform.database.unit_of_work() as uow:
            if uow.session.scalar(select(BorrowerRow).where(BorrowerRow.wallet_address == wallet)) is not None:
                raise HTTPException(409, f"wallet {wallet} is already registered")
            row = BorrowerRow(
                id=str(uuid.uuid4()),
                wallet_address=wallet,
                jurisdiction=body.jurisdiction.upper(),
                created_at=datetime.now(UTC),
            )
            uow.session.add(row)
            try:
                uow.commit()
            except IntegrityError as err:
                # a concurrent registration of the same wallet committed between the check above and this insert
                raise HTTPException(409, f"wallet {wallet} is already registered") from err
        if body.credit_profile is not None:
            platform.borrowers.save_profile(row.id, body.credit_profile)
        key = issue_key(platform.database, Role.BORROWER, row.id, f"borrower {wallet}")
        return BorrowerOut(id=row.id, wallet_address=wallet, jurisdiction=row.jurisdiction, api_key=key)

    return await asyncio.to_thread(register)


@router.get("/me", response_model=BorrowerMeOut)
async def me(borrower: CurrentBorrower, platform: PlatformDep) -> BorrowerMeOut:
    """The borrower's account, KYC status, credit profile and sanctions screening status (clear, held for review
    or blocked, with the reason and the review ids)."""
    screening = await asyncio.to_thread(platform.sanctions_reviews.status, borrower.id)
    return BorrowerMeOut(
        id=borrower.id,
        wallet_address=borrower.wallet,
        jurisdiction=borrower.jurisdiction,
        kyc=None if borrower.kyc is None else _kyc_out(borrower.kyc),
        credit_profile=borrower.profile,
        sanctions_screening=SanctionsScreeningOut(
            status=screening.status,
            reason=screening.reason,
            reviews=[ReviewRefOut(id=r.id, state=r.state, opened_at=r.created_at) for r in screening.reviews],
        ),
    )


@router.put("/me/credit-profile", response_model=CreditProfile)
async def put_credit_profile(body: CreditProfile, borrower: CurrentBorrower, platform: PlatformDep) -> CreditProfile:
    """The answers a lender asks (balances, history, employment, housing …); any field may be left out (unknown)."""
    await asyncio.to_thread(platform.borrowers.save_profile, borrower.id, body)
    return body


@router.post("/me/kyc", response_model=KycOut, dependencies=[Idempotent])
async def verify_identity(body: KycIn, borrower: CurrentBorrower, platform: PlatformDep) -> KycOut:
    """Identity and one document, sent to the KYC provider; the identity is stored encrypted. The answer is usually
    ``pending``: the provider's signed verdict (and with it the tier) arrives at ``POST /v1/kyc/webhooks`` moments
    later; read it at ``GET /v1/borrowers/me``."""
    identity = IdentityProfile(**body.identity.model_dump(exclude={"ssn_or_dod_id"}))
    document = IdentityDocument(**body.document.model_dump(exclude=IGNORED_DOCUMENT_CLAIMS))
    kyc = await platform.borrowers.verify_identity(
        borrower.id, identity, document, platform.kyc, body.identity.ssn_or_dod_id
    )
    log.info(
        "KYC of %s %s (borrower %s): %s",
        Masked(identity.first_name),
        Masked(identity.last_name),
        borrower.id,
        kyc.state.value,
    )
    return _kyc_out(kyc)


@router.delete("/{borrower_id}/identity", status_code=status.HTTP_204_NO_CONTENT)
async def erase_identity(borrower_id: str, _: AdminPrincipal, platform: PlatformDep) -> None:
    """Erase the borrower's personal data: its key destroyed in the key store (crypto-shredding every sealed copy),
    the sealed identity, country, credit profile and KYC applicants deleted, the cached MLA status dropped. Refused
    with 409 and the reason while a record-retention period runs; decision records keep their hashes either way. 404
    for a borrower that does not exist."""

    def erase() -> None:
        with platform.database.unit_of_work() as uow:
            if uow.session.get(BorrowerRow, borrower_id) is None:
                raise HTTPException(404, f"no borrower {borrower_id}")
        platform.borrowers.erase_identity(borrower_id, datetime.now(UTC))

    await asyncio.to_thread(erase)
    platform.mla.forget(borrower_id)
