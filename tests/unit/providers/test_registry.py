"""Plugins through the entry-point group: checked when loaded (a missing method named), loaded lazily, built into
resilience-wrapped providers that the registry lists live."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from importlib.metadata import EntryPoint
from typing import cast

import httpx
import pytest

from providers._exceptions import AlreadyRegistered, InvalidPlugin, InvalidRegistration, UnknownProviderKind
from providers.base import AdapterContext, ProviderRegistration
from providers.policy import ResiliencePolicy
from providers.registry import ENTRY_POINT_GROUP, PluginLoader, ProviderRegistry
from providers.registry_sync import follow_registrations
from providers.resilience import MemoryBreakerStore, MemoryRateLimiter, ResilientProvider

pytestmark = pytest.mark.unit

MODULE = "tests.unit.providers.plugins"


def _loader(**points: str) -> PluginLoader:
    return PluginLoader([EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in points.items()])


def test_an_adapter_missing_methods_is_refused_naming_them() -> None:
    loader = _loader(broken=f"{MODULE}:NoStatusAdapter")
    with pytest.raises(InvalidPlugin) as caught:
        loader.load("broken")
    message = str(caught.value)
    assert "NoStatusAdapter does not implement accept, from_registration, quote, status" in message
    assert f"{MODULE}:NoStatusAdapter" in message


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("SyncQuoteAdapter", "SyncQuoteAdapter.quote must be an async def"),
        ("NOT_AN_ADAPTER", "not a ProviderAdapter subclass"),
        ("Missing", "cannot be loaded"),
    ],
)
def test_other_broken_plugins_are_refused_with_the_reason(target: str, reason: str) -> None:
    with pytest.raises(InvalidPlugin, match=reason):
        _loader(broken=f"{MODULE}:{target}").load("broken")


def test_unknown_kinds_list_the_installed_ones() -> None:
    with pytest.raises(UnknownProviderKind, match="installed: good"):
        _loader(good=f"{MODULE}:CompleteAdapter").load("nope")


def test_a_hook_returning_the_class_is_accepted() -> None:
    assert _loader(hooked=f"{MODULE}:hook").load("hooked").__name__ == "CompleteAdapter"


def test_the_built_ins_are_installed_entry_points_imported_only_when_used() -> None:
    script = (
        "import sys\n"
        "from providers.registry import PluginLoader\n"
        "loader = PluginLoader()\n"
        "assert {'http', 'pool'} <= set(loader.names()), loader.names()\n"
        "assert 'providers.pool' not in sys.modules and 'providers.http_lender' not in sys.modules\n"
        "assert loader.load('pool').__name__ == 'PoolAdapter'\n"
        "assert 'providers.pool' in sys.modules and 'providers.http_lender' not in sys.modules\n"
        "print('lazy')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "lazy", result.stderr


async def test_registry_builds_wrapped_providers_into_a_live_list() -> None:
    async with httpx.AsyncClient() as http:
        registry = ProviderRegistry(
            AdapterContext(http),
            _loader(
                fake=f"{MODULE}:CompleteAdapter",
                broken=f"{MODULE}:NoStatusAdapter",
                fails=f"{MODULE}:BuildFailsAdapter",
            ),
            MemoryBreakerStore(),
            lambda policy: MemoryRateLimiter(policy.rate_per_second, policy.burst),
            ResiliencePolicy(quote_budget_seconds=0.7),
        )
        live = registry.adapters()
        await registry.add(ProviderRegistration("one", "fake"))
        await registry.add(ProviderRegistration("two", "fake"), ResiliencePolicy(fail_max=9))
        assert [p.provider_id for p in live] == ["one", "two"]
        assert all(isinstance(p, ResilientProvider) for p in live)
        assert registry.get_provider("two").policy.fail_max == 9
        assert registry.get_provider("two").policy.quote_budget_seconds == 0.7, "the registry's deadline applies"
        with pytest.raises(AlreadyRegistered):
            await registry.add(ProviderRegistration("one", "fake"))
        with pytest.raises(InvalidPlugin, match="does not implement"):
            await registry.add(ProviderRegistration("three", "broken"))
        with pytest.raises(InvalidPlugin, match=r"could not build 'five': KeyError\('api_token'\)"):
            await registry.add(ProviderRegistration("five", "fails"))  # a plugin's own error, named, not a 500
        with pytest.raises(InvalidRegistration, match="no database"):
            await registry.register(ProviderRegistration("four", "fake"))
        assert registry.plugins.is_loaded("fake")
        assert sorted(registry) == ["one", "two"]


async def test_the_poll_of_stored_registrations_outlives_an_unexpected_error() -> None:
    """Only a database error was caught: anything else ended the poll, and the process quoted removed providers
    for as long as it ran."""

    class Registry:
        polls = 0

        async def sync_persisted(self) -> bool:
            self.polls += 1
            if self.polls == 1:
                raise KeyError("api_token")  # e.g. a plugin's own error while building a provider
            return False

    registry = Registry()
    poll = asyncio.create_task(follow_registrations(cast(ProviderRegistry, registry), 0.01))
    try:
        for _ in range(500):
            if registry.polls >= 3 or poll.done():
                break
            await asyncio.sleep(0.01)
        assert not poll.done(), "the poll ended"
        assert registry.polls >= 3
    finally:
        poll.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poll
