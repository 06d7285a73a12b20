"""Clients for the request path: one ``AsyncWeb3`` per chain over a failover provider.

Failover is a transport concern, so it lives in the provider layer as web3.py puts HTTP, IPC and WebSocket there:
``FailoverProvider`` holds one ``AsyncHTTPProvider`` per RPC URL, each behind its own circuit breaker; a request
goes to the URL that answered last and moves on to the next when the transport fails (refused, reset, timed out,
HTTP 5xx). JSON-RPC error answers (a revert, "nonce too low") are answers, not outages: they neither trip a breaker
nor fail over. Every URL is asked ``eth_chainId`` before its first use and refused for good when it serves another
chain. Health (head block, lag, last error per URL) is kept for the API and metrics.

Every JSON-RPC method the platform uses is idempotent for failover purposes: reads are, and
``eth_sendRawTransaction`` resends the same signed bytes (same hash), which a node answers with "already known"
at worst. ``eth_sendTransaction`` (node-side signing) is never failed over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import pybreaker
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from chain.config import ChainConfig
from chain.errors import ChainError, ChainIdMismatch, RpcUnavailable
from chain.types import BlockNumber, ChainId

log = logging.getLogger(__name__)

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)
NOT_FAILED_OVER = frozenset({"eth_sendTransaction"})


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    url: str
    breaker: str  # closed | open | half-open
    chain_id_ok: bool | None  # None: not asked yet
    last_error: str | None
    last_error_at: float | None
    last_ok_at: float | None


@dataclass(frozen=True, slots=True)
class ChainHealth:
    """What the API and metrics show per chain."""

    chain: str
    chain_id: int
    healthy: bool
    head_block: int | None
    lag_seconds: float | None  # now − head block's timestamp
    last_error: str | None
    endpoints: tuple[EndpointHealth, ...]


class Endpoint:
    """One RPC URL: its HTTP provider, its circuit breaker, and what it last did."""

    def __init__(self, url: str, *, timeout: float, fail_max: int, reset_timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.provider = AsyncHTTPProvider(
            url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=None,  # failover replaces the provider's own retries
        )
        self.breaker = pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout, name=url)
        self.verified: bool | None = None
        self.refusal: ChainIdMismatch | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_ok_at: float | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    async def _keep_alive(self) -> None:
        """web3's default session opens a TCP connection per request (``force_close``); under hundreds of
        concurrent sends that costs more than the requests. One pooled keep-alive session per event loop instead."""
        loop = asyncio.get_running_loop()
        if self._session_loop is loop:
            return
        self._session_loop = loop
        session = aiohttp.ClientSession(
            raise_for_status=True, connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=15)
        )
        await self.provider.cache_async_session(session)

    def health(self) -> EndpointHealth:
        return EndpointHealth(
            url=self.url,
            breaker=str(self.breaker.current_state),
            chain_id_ok=self.verified,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            last_ok_at=self.last_ok_at,
        )

    async def request(self, method: RPCEndpoint, params: Any, *, bypass_breaker: bool = False) -> RPCResponse:
        """One request under this URL's breaker and timeout; transport failures count against the breaker."""
        await self._keep_alive()
        if bypass_breaker:
            return await self._send(method, params)
        with self.breaker.calling():
            return await self._send(method, params)

    async def _send(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        async with asyncio.timeout(self.timeout):
            try:
                return await self.provider.make_request(method, params)
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection the server had closed: one fresh connection, same URL.
                return await self.provider.make_request(method, params)


class FailoverProvider(AsyncJSONBaseProvider):
    """An async provider over several RPC URLs of one chain (see the module docstring)."""

    def __init__(
        self,
        urls: list[str],
        chain_id: int,
        *,
        timeout: float = 10.0,
        fail_max: int = 3,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not urls:
            raise ChainError("a chain needs at least one RPC URL")
        self.chain_id = chain_id
        self.endpoints = [Endpoint(u, timeout=timeout, fail_max=fail_max, reset_timeout=reset_timeout) for u in urls]
        self._active = 0
        self._clock = clock

    def __str__(self) -> str:
        return f"FailoverProvider({', '.join(e.url for e in self.endpoints)})"

    @property
    def active_url(self) -> str:
        return self.endpoints[self._active].url

    async def _verify(self, endpoint: Endpoint) -> None:
        answer = await endpoint.request(RPCEndpoint("eth_chainId"), [])
        if "result" not in answer:
            raise ChainError(f"RPC {endpoint.url} did not answer eth_chainId: {answer.get('error')}")
        actual = int(str(answer["result"]), 16)
        if actual != self.chain_id:
            endpoint.verified = False
            endpoint.refusal = ChainIdMismatch(endpoint.url, self.chain_id, actual)
            raise endpoint.refusal
        endpoint.verified = True

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        attempts = len(self.endpoints) if method not in NOT_FAILED_OVER else 1
        last_error: BaseException | None = None
        refusals: list[ChainIdMismatch] = []
        skipped_open: list[Endpoint] = []
        # Read the active URL once: concurrent requests move it, and re-reading it per step could try one URL twice
        # and never the other.
        start = self._active
        for step in range(attempts):
            index = (start + step) % len(self.endpoints)
            endpoint = self.endpoints[index]
            if endpoint.refusal is not None:
                refusals.append(endpoint.refusal)
                continue
            try:
                if not endpoint.verified:
                    await self._verify(endpoint)
                response = await endpoint.request(method, params)
            except ChainIdMismatch as err:
                refusals.append(err)
                self._note_error(endpoint, err)
                continue
            except pybreaker.CircuitBreakerError as err:
                last_error = err
                skipped_open.append(endpoint)
                continue
            except TRANSPORT_ERRORS as err:
                last_error = err
                self._note_error(endpoint, err)
                log.warning("rpc %s failed for %s: %r; failing over", endpoint.url, method, err)
                continue
            endpoint.last_ok_at = self._clock()
            self._active = index
            return response
        if skipped_open and len(skipped_open) + len(refusals) == len(self.endpoints) and attempts > 1:
            # Every usable URL's breaker is open: one last-resort try of the URL that answered last, so that a
            # burst of timeouts does not shut the chain off for a whole reset period.
            endpoint = self.endpoints[self._active] if self.endpoints[self._active] in skipped_open else skipped_open[0]
            try:
                response = await endpoint.request(method, params, bypass_breaker=True)
            except TRANSPORT_ERRORS as err:
                last_error = err
                self._note_error(endpoint, err)
            else:
                endpoint.last_ok_at = self._clock()
                return response
        if refusals and last_error is None:
            raise refusals[0]
        raise RpcUnavailable(
            f"no RPC URL of chain {self.chain_id} answered {method}: {last_error!r}"
            + (f"; refused: {', '.join(r.url for r in refusals)}" if refusals else "")
        ) from last_error

    def _note_error(self, endpoint: Endpoint, err: BaseException) -> None:
        endpoint.last_error = f"{type(err).__name__}: {err}"[:300]
        endpoint.last_error_at = self._clock()

    async def make_batch_request(self, requests: Any) -> Any:
        raise ChainError("batches are not failed over; send requests one by one")

    async def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            await self.make_request(RPCEndpoint("eth_chainId"), [])
        except ChainError:
            if show_traceback:
                raise
            return False
        return True

    async def disconnect(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.provider.disconnect()
            # web3's session manager keeps a thread pool (its lock helper) whose idle worker outlives the provider:
            # stop it, and leave a fresh pool (no thread until used) in case the provider is used again.
            sessions = endpoint.provider._request_session_manager
            sessions.session_pool.shutdown(wait=False)
            sessions.session_pool = ThreadPoolExecutor(max_workers=sessions.session_pool._max_workers)


class ChainClient:
    """The request-path client of one chain: ``w3`` is an ``AsyncWeb3`` over a ``FailoverProvider``.

    Built without web3's default middleware: the lifecycle fills nonces, fees and gas itself (web3's
    ``fill_nonce`` asks the node each time and races under concurrency), and answers stay plain dicts."""

    def __init__(
        self,
        config: ChainConfig,
        *,
        timeout: float = 10.0,
        fail_max: int = 3,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.chain_id = ChainId(config.chain_id)
        self.provider = FailoverProvider(
            list(config.rpc_urls),
            config.chain_id,
            timeout=timeout,
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            clock=clock,
        )
        self.w3: AsyncWeb3[Any] = AsyncWeb3(self.provider, middleware=[])
        self._clock = clock
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def connect(self) -> ChainClient:
        """Check that some configured URL answers with the configured chain id (ChainIdMismatch, RpcUnavailable)."""
        actual = await self.w3.eth.chain_id
        if actual != self.config.chain_id:  # the provider already refuses this; kept as a belt
            raise ChainIdMismatch(self.provider.active_url, self.config.chain_id, actual)
        return self

    async def head(self) -> BlockNumber:
        return BlockNumber(await self.w3.eth.block_number)

    async def rpc(self, method: str, *params: Any) -> Any:
        """A raw JSON-RPC call (devnet methods, ``eth_feeHistory`` …); an error answer raises ChainError."""
        answer = await self.provider.make_request(RPCEndpoint(method), list(params))
        if "error" in answer:
            raise ChainError(f"{method} failed on {self.name}: {answer['error']}")
        return answer.get("result")

    async def health(self) -> ChainHealth:
        head: int | None = None
        lag: float | None = None
        try:
            block = await self.w3.eth.get_block("latest")
            head = int(block["number"] or 0)
            lag = max(0.0, self._clock() - float(block["timestamp"]))
            self._last_error = None
        except ChainError as err:
            self._last_error = str(err)[:300]
        return ChainHealth(
            chain=self.name,
            chain_id=self.config.chain_id,
            healthy=head is not None,
            head_block=head,
            lag_seconds=lag,
            last_error=self._last_error,
            endpoints=tuple(endpoint.health() for endpoint in self.provider.endpoints),
        )

    async def close(self) -> None:
        await self.provider.disconnect()


async def connect_all(configs: list[ChainConfig], **options: Any) -> dict[str, ChainClient]:
    """One connected client per chain, by name; chains are connected concurrently."""
    clients = [ChainClient(config, **options) for config in configs]
    await asyncio.gather(*(client.connect() for client in clients))
    return {client.name: client for client in clients}
