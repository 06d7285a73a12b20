"""A pool registration's capabilities (``providers.pool``): refused at registration when they leave out the pool's
own asset or chain (it could lend to no one), while a registration stored before that was checked still loads, lending
within its own asset and chain (it quoted before: it is not dropped from the registry at the next start)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider

from providers._exceptions import InvalidRegistration
from providers.base import AdapterContext, ProviderRegistration
from providers.models import Capabilities
from providers.pool import PoolAdapter

pytestmark = pytest.mark.unit

POOL = {"chain": "ethereum-local", "asset": "USDC", "address": "0x" + "a5" * 20}


def _adapter(capabilities: Capabilities | None) -> PoolAdapter:
    never_asked: AsyncWeb3[AsyncBaseProvider] = AsyncWeb3(AsyncHTTPProvider("http://127.0.0.1:9"))
    web3 = {"ethereum-local": never_asked}
    context = AdapterContext(httpx.AsyncClient(), web3)
    return PoolAdapter.from_registration(ProviderRegistration("pool-a", "pool", POOL, capabilities), context)


@pytest.mark.parametrize(
    ("capabilities", "named"),
    [
        (Capabilities(assets=frozenset({"WETH"})), "capabilities.assets (WETH) leave out the pool's asset USDC"),
        (
            Capabilities(assets=frozenset({"USDC"}), chains=frozenset({"polygon-local"})),
            "capabilities.chains (polygon-local) leave out the pool's chain ethereum-local",
        ),
    ],
)
def test_capabilities_leaving_out_the_pools_own_are_refused_at_registration_and_kept_within_it_at_load(
    capabilities: Capabilities, named: str
) -> None:
    adapter = _adapter(capabilities)  # a stored registration loads
    assert adapter.capabilities() == Capabilities(assets=frozenset({"USDC"}), chains=frozenset({"ethereum-local"}))
    with pytest.raises(InvalidRegistration, match=named.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(adapter.check_destination())  # what registration runs before anything is stored


def test_capabilities_within_the_pools_own_are_kept() -> None:
    given = Capabilities(assets=frozenset({"USDC"}), max_principal=100_000_000, jurisdictions=frozenset({"US-TX"}))
    adapter = _adapter(given)
    assert adapter.capability_conflict is None
    kept = adapter.capabilities()
    assert (kept.max_principal, kept.jurisdictions, kept.chains) == (
        100_000_000,
        frozenset({"US-TX"}),
        frozenset({"ethereum-local"}),
    )
