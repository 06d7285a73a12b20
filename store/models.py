"""Every model module, imported so that ``Base.metadata`` knows every table (Alembic autogenerate, tests)."""

from store import aggregator, api
from store.base import Base

__all__ = ["Base", "aggregator", "api"]
