"""Borrower accounts, registered by an admin; the borrower's API key is shown once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from api.auth import Role, issue_key
from api.deps import AdminPrincipal, PlatformDep
from api.schemas import BorrowerIn, BorrowerOut
from store.api import BorrowerRow

router = APIRouter(prefix="/v1/borrowers", tags=["borrowers"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BorrowerOut)
async def register_borrower(body: BorrowerIn, _: AdminPrincipal, platform: PlatformDep) -> BorrowerOut:
    wallet = to_checksum_address(body.wallet_address)

    def register() -> BorrowerOut:
        with platform.database.unit_of_work() as uow:
            if uow.session.scalar(select(BorrowerRow).where(BorrowerRow.wallet_address == wallet)) is not None:
                raise HTTPException(409, f"wallet {wallet} is already registered")
            row = BorrowerRow(
                id=str(uuid.uuid4()),
                wallet_address=wallet,
                jurisdiction=body.jurisdiction,
                created_at=datetime.now(UTC),
            )
            uow.session.add(row)
            uow.commit()
        key = issue_key(platform.database, Role.BORROWER, row.id, f"borrower {wallet}")
        return BorrowerOut(id=row.id, wallet_address=wallet, jurisdiction=row.jurisdiction, api_key=key)

    return await asyncio.to_thread(register)
