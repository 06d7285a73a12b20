"""Adapter classes that entry points in the registry tests name: one complete, some broken."""

from __future__ import annotations

from providers.base import ProviderAdapter
from providers.models import Capabilities, ProviderHealth
from tests.unit.providers.fakes import FakeAdapter


class CompleteAdapter(FakeAdapter):
    pass


class NoStatusAdapter(ProviderAdapter):  # no from_registration, quote, accept or status
    def capabilities(self) -> Capabilities:
        return Capabilities(assets=frozenset({"USDC"}))

    async def health(self) -> ProviderHealth:
        return ProviderHealth("x", True)


class SyncQuoteAdapter(FakeAdapter):
    def quote(self, request):  # type: ignore[no-untyped-def]
        return []


class BuildFailsAdapter(FakeAdapter):
    """A plugin whose own code fails while building (a config key it expects is missing)."""

    @classmethod
    def from_registration(cls, registration, context):  # type: ignore[no-untyped-def]
        raise KeyError("api_token")


class AuditedAdapter(FakeAdapter):
    """A plugin naming one configuration field safe for the audit log (``ProviderAdapter.audited_config``)."""

    audited_config = frozenset({"endpoint"})


def hook() -> type[ProviderAdapter]:
    return CompleteAdapter


NOT_AN_ADAPTER = object()
