"""What the store raises when the database fails a statement — unreachable for a while, among others. A background
worker (the outbox relay, the leased servicing jobs) logs it and tries again at its next round; named here so that
the workers need not know the driver."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

DatabaseError = SQLAlchemyError

__all__ = ["DatabaseError"]
