"""Every model module, imported so that ``Base.metadata`` knows every table (Alembic, the schema test)."""

from store import (
    accepts,
    aggregator,
    api,
    chain,
    compliance,
    governance,
    idempotency,
    leases,
    ledger,
    outbox,
    payments,
    providers,
    risk,
    sanctions_lists,
    sanctions_reviews,
    servicing,
)
from store.base import Base

__all__ = [
    "Base",
    "accepts",
    "aggregator",
    "api",
    "chain",
    "compliance",
    "governance",
    "idempotency",
    "leases",
    "ledger",
    "outbox",
    "payments",
    "providers",
    "risk",
    "sanctions_lists",
    "sanctions_reviews",
    "servicing",
]
