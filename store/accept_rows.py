"""The accept saga's record as a table row (``store.accepts`` keeps it; ``aggregator.accept_saga`` describes it):
apart, so that reads of other records that join an accept (a loan's funding) need not import the saga's store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base
from store.types import UtcDateTime


class AcceptRow(Base):
    """One accept of one quote; ``step`` is persisted before the next step starts; ``owner``/``lease_until`` say
    which process drives it (a process that dies stops renewing, and another claims the row when it runs out)."""

    __tablename__ = "accepts"

    quote_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    borrower_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    chain_name: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(64))
    lease_until: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    loan_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lender_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
