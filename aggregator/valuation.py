"""Collateral valued at quote time on the prices the contracts use: the CollateralManager's Chainlink-style feeds,
under the same checks (``aggregator.servicing.prices``: positive, within the heartbeat, the L2 sequencer up), so a
quote's loan-to-value is the one ``openPosition`` will find. The static ``CREDITMESH_ASSET_PRICES_USD`` are only the
devnet feeds' first answers now.

Prices are read from the request's chains in order (the first whose feeds answer for both assets) and kept for
``ttl`` seconds per chain, so the quote path pays the reads (one block header and two JSON-RPC batches) at most once
per chain and interval. A request that finds a chain's prices older than ``REFRESH_AHEAD`` of the ttl starts their
reading in the background and is valued on them (still younger than the ttl): under steady traffic no request waits
for the reads; one only waits when the prices are older than the ttl (the first request, or after a quiet spell). No
usable price on any chain refuses the request (``PricesUnavailable``, 503): a quote is never valued on a price the
contract would refuse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from aggregator.assets import Asset
from aggregator.errors import PricesUnavailable
from aggregator.platform import ChainRuntime
from aggregator.servicing.prices import VALUE_DECIMALS, Price, PriceBoard, read_prices
from chain.errors import ChainError

USD_UNIT = Decimal(10) ** VALUE_DECIMALS
#: the share of the ttl after which a request has the prices read again in the background
REFRESH_AHEAD = 0.8
log = logging.getLogger(__name__)


class FeedPricer:
    def __init__(
        self, chains: dict[str, ChainRuntime], ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._chains, self._ttl, self._clock = chains, ttl, clock
        self._boards: dict[str, tuple[float, PriceBoard]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # background reads in flight, by chain name

    async def priced(self, chain_names: Sequence[str], *assets: Asset) -> tuple[Asset, ...]:
        """``assets`` with their ``usd_price`` from the first of ``chain_names`` whose feeds price them all."""
        reasons = []
        for name in chain_names:
            found = await self._priced_on(name, assets)
            if isinstance(found, str):
                reasons.append(found)
                continue
            if found is not None:
                return found
        raise PricesUnavailable("no usable price feed for the collateral: " + ("; ".join(reasons) or "no chain"))

    async def priced_each(self, chain_names: Sequence[str], *assets: Asset) -> dict[str, tuple[Asset, ...] | str]:
        """``assets`` priced on each of ``chain_names``, or why that chain's feeds do not price them now: a loan is
        valued on the chain it opens on, whose CollateralManager judges its LTV on its own feeds. Each chain's prices
        are kept as ``priced`` keeps them (and read again ahead of their expiry in the background: under traffic no
        read is waited for). Chains not configured here are left out."""
        found = {}
        for name in chain_names:  # one after another: kept prices answer at once, no task a chain
            each = await self._priced_on(name, assets)
            if each is not None:
                found[name] = each
        return found

    async def _priced_on(self, name: str, assets: Sequence[Asset]) -> tuple[Asset, ...] | str | None:
        """``assets`` priced on chain ``name``; why not (a string) when its feeds do not price them all; None when
        the chain is not configured here."""
        chain = self._chains.get(name)
        if chain is None:
            return None
        try:
            board = await self._board(chain, assets)
        except ChainError as err:
            return f"{name}: {err}"
        found = [board.get(asset.addresses.get(name, "")) for asset in assets]
        refused = [p for p in found if not isinstance(p, Price)]
        if refused:
            return "; ".join(f"{name}: {p.asset}: {p.reason}" for p in refused)
        return tuple(
            replace(asset, usd_price=Decimal(price.usd) / USD_UNIT)  # type: ignore[union-attr]
            for asset, price in zip(assets, found, strict=True)
        )

    async def _board(self, chain: ChainRuntime, assets: Sequence[Asset]) -> PriceBoard:
        wanted = {asset.addresses.get(chain.name, "").lower() for asset in assets} - {""}
        cached = self._boards.get(chain.name)
        if cached is not None and wanted <= set(cached[1].prices):
            age = self._clock() - cached[0]
            if age < self._ttl:
                if age >= self._ttl * REFRESH_AHEAD and chain.name not in self._refreshing:
                    self._refreshing[chain.name] = asyncio.create_task(self._refresh(chain, wanted))
                return cached[1]
        return await self._read(chain, wanted)

    async def _refresh(self, chain: ChainRuntime, wanted: set[str]) -> None:
        """The chain's prices read again ahead of their expiry; a failure leaves the board as it is (the request
        after its expiry reads again and is refused if the feeds still cannot be read)."""
        try:
            await self._read(chain, wanted, force=True)
        except ChainError as err:
            log.info("reading %s's price feeds ahead of their expiry failed: %s", chain.name, err)
        finally:
            self._refreshing.pop(chain.name, None)

    async def _read(self, chain: ChainRuntime, wanted: set[str], force: bool = False) -> PriceBoard:
        async with self._locks.setdefault(chain.name, asyncio.Lock()):
            cached = self._boards.get(chain.name)
            fresh = cached is not None and self._clock() - cached[0] < self._ttl * (REFRESH_AHEAD if force else 1)
            if cached is not None and fresh and wanted <= set(cached[1].prices):
                return cached[1]
            try:
                header: Any = await chain.client.rpc("eth_getBlockByNumber", "latest", False)
                board = await read_prices(
                    chain.client.provider,
                    chain.record.address("CollateralManager"),
                    wanted | set(cached[1].prices if cached else ()),
                    int(header["number"], 16),
                    int(header["timestamp"], 16),
                )
            except (OSError, TimeoutError, ValueError) as err:
                raise ChainError(f"reading the price feeds failed: {err}") from err
            self._boards[chain.name] = (self._clock(), board)
            return board
