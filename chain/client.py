"""Clients for the request path: one ``AsyncWeb3`` per chain over a failover provider.

Failover is a transport concern, so it lives in the provider layer as web3.py puts HTTP, IPC and WebSocket there:
``FailoverProvider`` holds one ``Endpoint`` per RPC URL, each behind its own circuit breaker; a request
goes to the URL that answered last and moves on to the next when the transport fails (refused, reset, timed out,
HTTP 5xx) or the URL answers with something that is not a JSON-RPC answer (an HTML page, an empty or truncated body,
JSON of another shape, though HTTP 200: ``RpcBadAnswer``, counted by its breaker as an outage is). JSON-RPC error
answers (a revert, "nonce too low") are answers, not outages: they neither trip a breaker nor fail over. Every URL is
asked ``eth_chainId`` before its first use, again before its next use after it failed (a transport failure, a bad
answer, its breaker open: the node may have been restarted as another chain), and again on its first use
``recheck_after`` seconds after its last answer (a node restarted as another chain between two requests fails
none: its keep-alive connection is replaced unseen). A URL that serves another chain is
refused, and asked again on the first request after ``recheck_after`` seconds (the operator may have fixed the node):
used again once it answers the configured chain id. Health (head block, lag, last error per URL) is kept for the API
and metrics.

**Probes.** ``ChainClient.health`` reads the head block through ``ProbeProvider``, a view of the same URLs, sessions
and chain-id checks whose requests pass every URL's breaker by: a probe's failure is not counted in the breaker real
traffic uses (a flood of public ``/readyz`` calls against a rate-limited RPC plan opened every chain's breakers, and
borrowers lost every pool quote), nor is a probe refused by an open breaker (it says whether the node answers now).
A probe does not move the active URL either; what it met is kept as the URL's last error, for ``/health``.

**Cancellation.** An endpoint posts the JSON-RPC body on its own pooled aiohttp session, not through web3's
``AsyncHTTPProvider``: web3 7.16 guards its session cache with a process-wide ``threading.Lock`` taken in a worker
thread, and a call cancelled while waiting for it leaves the lock held for ever (web3.py #3867), which wedged every
chain read of the process after one burst of fan-out deadlines. Each exchange runs as a task of its own that the
caller's cancellation does not reach (``asyncio.shield``): the caller stops waiting at once, the exchange ends within
the endpoint's timeout, and only what the endpoint itself did (answered, failed, timed out) counts in its breaker.
A caller's deadline or cancellation is never an endpoint failure.

**Batches.** ``make_batch_request`` (web3's ``batch_requests()``, ``ChainClient.batch``) sends several reads as
one JSON-RPC batch and fails over like a single request; ``eth_sendTransaction`` is never batched.

Every JSON-RPC method the platform uses is idempotent for failover purposes: reads are, and
``eth_sendRawTransaction`` resends the same signed bytes (same hash), which a node answers with "already known"
at worst. ``eth_sendTransaction`` (node-side signing) is never failed over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import pybreaker
from web3 import AsyncWeb3
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from chain.config import ChainConfig
from chain.errors import ChainError, ChainIdMismatch, RpcBadAnswer, RpcUnavailable, shown_url, without_urls
from chain.types import BlockNumber, ChainId

log = logging.getLogger(__name__)

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)
#: what makes a URL fail over: its transport failed, or it answered with something that is not a JSON-RPC answer
URL_FAILURES: tuple[type[BaseException], ...] = (*TRANSPORT_ERRORS, RpcBadAnswer)
NOT_FAILED_OVER = frozenset({"eth_sendTransaction"})
CHAIN_ID_REQUEST = json.dumps({"jsonrpc": "2.0", "method": "eth_chainId", "params": [], "id": 0}).encode()


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
    """One RPC URL of chain ``chain_id``: its pooled HTTP session, its circuit breaker, whether it serves that chain
    (``verified``: None until asked, and again once the URL failed; False with ``refusal`` when it serves another;
    asked again on its first use ``recheck_after`` seconds after its last answer, by ``clock``), and what it last
    did."""

    def __init__(
        self,
        url: str,
        chain_id: int,
        *,
        timeout: float,
        fail_max: int,
        reset_timeout: float,
        recheck_after: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.chain_id = chain_id
        self.timeout = timeout
        # a refusal is judged by ``refusal``, not the breaker: a URL of another chain is not down
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_timeout, name=url, exclude=[ChainIdMismatch]
        )
        self.recheck_after = recheck_after
        self._clock = clock
        self.verified: bool | None = None
        self.refusal: ChainIdMismatch | None = None
        self.checked_at: float | None = None  # when it last answered eth_chainId (by ``clock``)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_ok_at: float | None = None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._exchanges: set[asyncio.Task[Any]] = set()  # running exchanges, kept referenced until they end

    def _session_here(self) -> aiohttp.ClientSession:
        """One pooled keep-alive session per event loop (web3's default opens a TCP connection per request)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            self._session_loop = loop
            self._session = aiohttp.ClientSession(
                raise_for_status=True,
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=15),
                headers={"Content-Type": "application/json"},
            )
        return self._session

    def refused(self) -> ChainIdMismatch | None:
        """The URL's refusal while it stands: it answered another chain id less than ``recheck_after`` seconds ago.
        After that it is asked again on its next use (a node restarted as the right chain is used again)."""
        if self.refusal is None or self.checked_at is None:
            return self.refusal
        return self.refusal if self._clock() - self.checked_at < self.recheck_after else None

    def health(self) -> EndpointHealth:
        return EndpointHealth(
            url=self.url,
            breaker=str(self.breaker.current_state),
            chain_id_ok=self.verified,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            last_ok_at=self.last_ok_at,
        )

    async def post(self, body: bytes, *, bypass_breaker: bool = False) -> Any:
        """POST one JSON-RPC body (a request or a batch) and return the answer, decoded (``answer_of``).

        The exchange runs as its own task, shielded from the caller: cancelling the caller (a fan-out or chain
        deadline) stops the wait but not the exchange, which ends within ``timeout`` and is judged by the breaker on
        what the endpoint did. Transport failures, the endpoint's own timeout and an answer that is not a JSON-RPC
        answer (``RpcBadAnswer``) count against the breaker. The node's chain id is asked first, in the same breaker
        call, when it was never asked, the URL failed since, or its last answer is ``recheck_after`` seconds old
        (``ChainIdMismatch`` when it serves another chain)."""
        exchange = asyncio.ensure_future(self._exchange(body, bypass_breaker))
        self._exchanges.add(exchange)
        exchange.add_done_callback(self._forget)
        return await asyncio.shield(exchange)

    def _forget(self, exchange: asyncio.Task[Any]) -> None:
        self._exchanges.discard(exchange)
        if not exchange.cancelled():
            exchange.exception()  # an abandoned exchange's error was counted by the breaker: mark it retrieved

    async def _exchange(self, body: bytes, bypass_breaker: bool) -> Any:
        try:
            if bypass_breaker:
                return await self._checked(body)
            with self.breaker.calling():
                return await self._checked(body)
        except ChainIdMismatch:
            raise
        except Exception:  # failed, or its breaker is open: a node restarted as another chain must be refused
            if self.verified:
                self.verified = None
            raise

    async def _checked(self, body: bytes) -> Any:
        if not self.verified or self._clock() - (self.checked_at or 0.0) >= self.recheck_after:
            await self._check_chain_id()
        batch = body[:1] == b"["  # the provider's encoders: a batch is a JSON list, a request an object
        return answer_of(await self._send(body), self.url, batch=batch)

    async def _check_chain_id(self) -> None:
        answer = answer_of(await self._send(CHAIN_ID_REQUEST), self.url, batch=False)
        try:
            actual = int(str(answer["result"]), 16)
        except (KeyError, ValueError) as err:
            raise RpcBadAnswer(f"RPC {shown_url(self.url)} did not answer eth_chainId: {answer.get('error')}") from err
        self.checked_at = self._clock()
        if actual != self.chain_id:
            self.verified = False
            self.refusal = ChainIdMismatch(self.url, self.chain_id, actual)
            raise self.refusal
        self.verified, self.refusal = True, None

    async def _send(self, body: bytes) -> bytes:
        session = self._session_here()
        async with asyncio.timeout(self.timeout):
            try:
                async with session.post(self.url, data=body) as response:
                    return await response.read()
            except aiohttp.ClientError as err:
                if not _closed_under_it(err):
                    raise
            # A pooled keep-alive connection the server had closed (a node restarted): one fresh connection, same URL.
            async with session.post(self.url, data=body) as response:
                return await response.read()

    async def close(self) -> None:
        """Close the session; exchanges still running end with it."""
        for exchange in list(self._exchanges):
            exchange.cancel()
        session, self._session = self._session, None
        if session is not None and not session.closed and self._session_loop is asyncio.get_running_loop():
            await session.close()  # a session of a loop that has ended went with its loop


def _closed_under_it(err: aiohttp.ClientError) -> bool:
    """Whether ``err`` says the pooled connection a request went out on had been closed by the server: it
    disconnected before answering, or the request could not be written to a connection closing under it (aiohttp's
    "Can not write request body", caused by "Cannot write to closing transport": nothing reached the node)."""
    return isinstance(err, aiohttp.ServerDisconnectedError) or (
        isinstance(err, aiohttp.ClientOSError) and isinstance(err.__cause__, aiohttp.ClientConnectionResetError)
    )


def answer_of(raw: bytes, url: str, *, batch: bool) -> Any:
    """``raw`` decoded when it is a JSON-RPC answer: to a request, an object with ``jsonrpc``, ``id`` and ``result``
    or ``error``; to a batch, a list of those, or one error object (a node that refuses the batch). Anything else
    (not JSON, not UTF-8, empty, truncated, another shape) raises ``RpcBadAnswer`` naming the URL and the answer's
    first bytes."""
    try:
        answer = json.loads(raw)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise RpcBadAnswer(f"RPC {shown_url(url)} answered with no JSON: {_opening(raw)}") from err
    if batch and isinstance(answer, list) and all(_is_answer(item) for item in answer):
        return answer
    if _is_answer(answer) and (not batch or "error" in answer):
        return answer
    raise RpcBadAnswer(f"RPC {shown_url(url)} answered with JSON that is not a JSON-RPC answer: {_opening(raw)}")


def _is_answer(item: Any) -> bool:
    return isinstance(item, dict) and "jsonrpc" in item and "id" in item and ("result" in item or "error" in item)


def _opening(raw: bytes) -> str:
    if not raw:
        return "an empty body"
    return repr(raw[:80]) + (f" ({len(raw)} bytes)" if len(raw) > 80 else "")


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
        recheck_after: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not urls:
            raise ChainError("a chain needs at least one RPC URL")
        self.chain_id = chain_id
        self.endpoints = [
            Endpoint(
                url,
                chain_id,
                timeout=timeout,
                fail_max=fail_max,
                reset_timeout=reset_timeout,
                recheck_after=recheck_after,
                clock=clock,
            )
            for url in urls
        ]
        self._active = 0
        self._clock = clock

    def __str__(self) -> str:
        return f"FailoverProvider({', '.join(e.url for e in self.endpoints)})"

    @property
    def active_url(self) -> str:
        return self.endpoints[self._active].url

    def encode_rpc_request(self, method: RPCEndpoint, params: Any) -> bytes:
        """web3's request (``form_request``: the same fields and ids) encoded by the standard library's JSON encoder
        when its params are plain JSON, as the request path's are (hex strings, numbers, lists, dicts): the same
        bytes as web3's ``encode_rpc_dict``, without its encoder class built per call and its error wrapper (a batch
        of three on each chain for every credit request's on-chain history). Params it cannot encode (bytes,
        ``AttributeDict``, models) go to web3's encoder, which knows them."""
        request = self.form_request(method, params)
        try:
            return json.dumps(request).encode()
        except TypeError:
            return self.encode_rpc_dict(request)

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        body = self.encode_rpc_request(method, params)
        return cast(RPCResponse, await self._post(body, str(method), failover=method not in NOT_FAILED_OVER))

    async def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        """Several requests as one JSON-RPC batch, failed over as a whole; answers in request order (a node that
        refuses the batch answers with one error object, returned as it is)."""
        if not requests:
            return []
        refused = [str(method) for method, _ in requests if method in NOT_FAILED_OVER]
        if refused:
            raise ChainError(f"{refused[0]} is never sent in a batch")
        answer = await self._post(self.encode_batch_rpc_request(requests), f"batch of {len(requests)}", failover=True)
        if not isinstance(answer, list):
            return cast(RPCResponse, answer)
        return sorted(answer, key=lambda response: int(response.get("id") or 0))

    async def _post(self, body: bytes, what: str, *, failover: bool, probe: bool = False) -> Any:
        """``body`` sent to the URLs in turn from the active one (only to it without ``failover``); a ``probe``
        passes every breaker by (neither counted in one nor refused by it) and leaves the active URL where it is."""
        attempts = len(self.endpoints) if failover else 1
        last_error: BaseException | None = None
        refusals: list[ChainIdMismatch] = []
        skipped_open: list[Endpoint] = []
        # Read the active URL once: concurrent requests move it, and re-reading it per step could try one URL twice
        # and never the other.
        start = self._active
        for step in range(attempts):
            index = (start + step) % len(self.endpoints)
            endpoint = self.endpoints[index]
            refusal = endpoint.refused()
            if refusal is not None:
                refusals.append(refusal)
                continue
            try:
                answer = await endpoint.post(body, bypass_breaker=probe)
            except ChainIdMismatch as err:
                refusals.append(err)
                self._note_error(endpoint, err)
                continue
            except pybreaker.CircuitBreakerError as err:
                last_error = err
                skipped_open.append(endpoint)
                continue
            except URL_FAILURES as err:
                last_error = err
                self._note_error(endpoint, err)
                log.warning(
                    "rpc %s failed for %s: %s; failing over", shown_url(endpoint.url), what, without_urls(repr(err))
                )
                continue
            endpoint.last_ok_at = self._clock()
            if not probe:
                self._active = index
            return answer
        if skipped_open and len(skipped_open) + len(refusals) == len(self.endpoints) and attempts > 1:
            # Every usable URL's breaker is open: one last-resort try of the URL that answered last, so that a
            # burst of timeouts does not shut the chain off for a whole reset period.
            endpoint = self.endpoints[self._active] if self.endpoints[self._active] in skipped_open else skipped_open[0]
            try:
                answer = await endpoint.post(body, bypass_breaker=True)
            except ChainIdMismatch as err:
                refusals.append(err)
                self._note_error(endpoint, err)
            except URL_FAILURES as err:
                last_error = err
                self._note_error(endpoint, err)
            else:
                endpoint.last_ok_at = self._clock()
                return answer
        if refusals and (last_error is None or len(refusals) == len(self.endpoints)):
            raise refusals[0]
        raise RpcUnavailable(
            without_urls(f"no RPC URL of chain {self.chain_id} answered {what}: {last_error!r}")
            + (f"; refused: {', '.join(shown_url(r.url) for r in refusals)}" if refusals else "")
        ) from last_error

    def _note_error(self, endpoint: Endpoint, err: BaseException) -> None:
        endpoint.last_error = without_urls(f"{type(err).__name__}: {err}")[:300]
        endpoint.last_error_at = self._clock()

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
            await endpoint.close()


class ProbeProvider(AsyncJSONBaseProvider):
    """Health probes over ``failover``'s URLs (see the module docstring): its requests fail over as the request path's
    do, but pass every URL's breaker by and leave the active URL where it is."""

    def __init__(self, failover: FailoverProvider) -> None:
        super().__init__()
        self._failover = failover

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        body = self._failover.encode_rpc_request(method, params)
        return cast(RPCResponse, await self._failover._post(body, str(method), failover=True, probe=True))


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
        recheck_after: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``recheck_after``: seconds after which a URL's chain id is asked again on its next use (a URL refused for
        serving another chain, and one verified: it may have been restarted as another chain since)."""
        self.config = config
        self.chain_id = ChainId(config.chain_id)
        self.provider = FailoverProvider(
            list(config.rpc_urls),
            config.chain_id,
            timeout=timeout,
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            recheck_after=recheck_after,
            clock=clock,
        )
        self.w3: AsyncWeb3[Any] = AsyncWeb3(self.provider, middleware=[])
        #: the head block's reads of ``health``: not counted in (nor refused by) the breakers ``w3`` goes through
        self._probe_w3: AsyncWeb3[Any] = AsyncWeb3(ProbeProvider(self.provider), middleware=[])
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
        """The node's head block number; ChainError when it answers ``eth_blockNumber`` with something else."""
        number: Any = await self.w3.eth.block_number
        if not isinstance(number, int) or isinstance(number, bool):
            raise ChainError(f"{self.name} answered eth_blockNumber with {number!r:.80}")
        return BlockNumber(number)

    async def rpc(self, method: str, *params: Any) -> Any:
        """A raw JSON-RPC call (devnet methods, ``eth_feeHistory`` …); an error answer raises ChainError."""
        answer = await self.provider.make_request(RPCEndpoint(method), list(params))
        if "error" in answer:
            raise ChainError(f"{method} failed on {self.name}: {answer['error']}")
        return answer.get("result")

    async def batch(self, *calls: tuple[str, list[Any]]) -> list[Any]:
        """Raw JSON-RPC calls sent as one batch (one HTTP round trip); their results in order. An error answer to
        any of them, or a node that refuses the batch, raises ChainError."""
        answers = await self.provider.make_batch_request([(RPCEndpoint(method), params) for method, params in calls])
        if not isinstance(answers, list):
            raise ChainError(f"{self.name} refused a batch of {len(calls)}: {answers.get('error')}")
        if len(answers) != len(calls):
            raise ChainError(f"{self.name} answered {len(answers)} of a batch of {len(calls)}")
        results = []
        for (method, _), answer in zip(calls, answers, strict=True):
            if "error" in answer:
                raise ChainError(f"{method} failed on {self.name}: {answer['error']}")
            results.append(answer.get("result"))
        return results

    async def health(self, within: float | None = None) -> ChainHealth:
        """The chain's head block and its lag, read now (within ``within`` seconds when given) past the URLs' breakers
        (``ProbeProvider``: a failed read opens none, an open one refuses none), and each URL's state. Never raises
        for what the chain answered: an outage, a refused URL, a bad answer, a block of another shape or no answer in
        time is reported as not healthy with the error."""
        head: int | None = None
        lag: float | None = None
        try:
            async with asyncio.timeout(within):
                block = await self._probe_w3.eth.get_block("latest")
            number, lag = int(block["number"]), max(0.0, self._clock() - float(block["timestamp"]))
            head, self._last_error = number, None
        except TimeoutError as err:
            self._last_error = f"no answer within {within} s" if not str(err) else f"TimeoutError: {err}"[:300]
        except ChainError as err:
            self._last_error = str(err)[:300]
        except Exception as err:  # web3's BlockNotFound, a block without a number: what one chain answered, reported
            self._last_error = f"{type(err).__name__}: {err}"[:300]
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
