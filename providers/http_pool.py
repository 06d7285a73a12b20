"""The lender calls' HTTP transport: httpx's interface over aiohttp's connection pool and HTTP parser.

A lender call through httpx's own transport spent most of its CPU in httpcore: its pool's bookkeeping (it walks its
connections on every request queued or finished, encode/httpcore#1035), anyio's stream wrappers and h11's pure-Python
parsing — 1.25 ms of CPU per quote call at concurrency 10 against 0.65 ms through aiohttp (in-process A/B, see
docs/performance.md). :class:`LenderTransport` keeps everything above the transport as it was — the
``httpx.AsyncClient`` the adapters call, its request and response objects, ``MockTransport`` as the test seam, the
``PinnedTransport`` that checks each destination and connects to the checked address — and sends the request on an
``aiohttp.ClientSession`` of its own (one per lender host: ``PinnedTransport`` builds one transport per destination).
aiohttp is already the chain clients' HTTP library (web3's).

What it keeps of httpx's behaviour: no redirects, no cookies (aiohttp's jar is a ``DummyCookieJar``), no proxies
from the environment, the body handed on undecoded (httpx decodes it, so ``MAX_RESPONSE_BYTES`` still counts the
decoded bytes), the request's ``Host`` header, the TLS server name of the URL (``sni_hostname``), certificates
checked against httpx's trust store, and httpx's timeouts (connect, read, pool). aiohttp's errors are translated
here into httpx's (a refused connection is ``httpx.ConnectError``, a read timeout ``httpx.ReadTimeout``, a lender
that hangs up mid-answer ``httpx.RemoteProtocolError``), which the adapters translate in turn.

``LenderTransport.exchange`` sends one request and reads its whole answer on the same session without httpx's
request and response objects at all: the HTTP lender adapter's path on the lender client (``providers.destinations.
LenderClient.exchange``), ~0.2 ms of CPU less a lender call than ``send`` through httpx (docs/performance.md)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from yarl import URL

#: httpx's default pool limits: 100 connections per lender host, idle ones kept for 5 s
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
READ_CHUNK = 64 * 1024

#: aiohttp's errors and the httpx errors they become, the more specific first
_ERRORS: tuple[tuple[type[BaseException], type[httpx.HTTPError] | type[httpx.InvalidURL]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.InvalidURL),
    (aiohttp.ClientError, httpx.ReadError),
    (TimeoutError, httpx.ReadTimeout),
)


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as err:
        for foreign, ours in _ERRORS:
            if isinstance(err, foreign):
                raise ours(f"{type(err).__name__}: {err}") from err
        raise  # pragma: no cover - ClientError and TimeoutError are both in the table


class AnswerTooLarge(Exception):
    """An answer's body (declared or read) exceeds the limit ``LenderTransport.exchange`` was given."""


def _timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeouts (``httpx.Timeout.as_dict()``) as aiohttp's: pool → connect, connect → sock_connect, read →
    sock_read; no total."""
    return aiohttp.ClientTimeout(
        total=None, connect=timeout.get("pool"), sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
    )


class _AiohttpBody(httpx.AsyncByteStream):
    """An answer's body as aiohttp reads it, chunk by chunk; closing it hands the connection back (or drops it when
    the body was not read to its end)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated():
            async for chunk in self._response.content.iter_chunked(READ_CHUNK):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


_trust_store: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """httpx's default certificate check (certifi's roots), built once: loading the roots takes ~60 ms."""
    global _trust_store
    if _trust_store is None:
        _trust_store = httpx.create_ssl_context()
    return _trust_store


class LenderTransport(httpx.AsyncBaseTransport):
    """An httpx transport sending on an aiohttp session of its own (see the module docstring). ``limits`` are
    httpx's: ``max_connections`` bounds the session's connections (None: no bound), ``keepalive_expiry`` how long an
    idle one is kept; ``verify`` is an ``ssl.SSLContext`` or True (httpx's default trust store)."""

    def __init__(
        self, *, limits: httpx.Limits = DEFAULT_LIMITS, verify: ssl.SSLContext | bool = True, **options: Any
    ) -> None:
        if options.get("proxy") is not None:
            raise ValueError("LenderTransport does not proxy")
        if options:
            raise TypeError(f"LenderTransport takes no option {', '.join(sorted(options))}")
        if verify is False:
            raise ValueError("LenderTransport always checks certificates")
        self._limits = limits
        self._ssl = verify if isinstance(verify, ssl.SSLContext) else None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The session, built on first use (inside the running event loop, which aiohttp binds it to)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=self._limits.keepalive_expiry or 5.0,
                ssl=self._ssl or _default_ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        url = request.url
        server_name = request.extensions.get("sni_hostname") if url.scheme == "https" else None
        content = request.content if isinstance(request.stream, httpx.ByteStream) else await request.aread()
        with _translated():
            response = await self._client().request(
                request.method,
                URL(str(url), encoded=True),
                data=content or None,
                headers=request.headers.multi_items(),
                allow_redirects=False,
                compress=False,
                timeout=_timeout(timeout),
                server_hostname=server_name,
            )
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("ascii", "replace")
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response),
            request=request,
            extensions=extensions,
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Mapping[str, float | None],
        server_name: str | None,
        limit: int,
    ) -> tuple[int, bytes]:
        """One request and its whole answer (status, body) on this transport's aiohttp session, without httpx's
        request and response objects (``LenderClient.exchange``): the same session, timeouts, no redirects or
        cookies as ``handle_async_request``. ``headers`` are sent as given (``Host`` included); the body is decoded
        as httpx decodes it (gzip, deflate) and read up to ``limit`` bytes, past that (declared or read)
        ``AnswerTooLarge``. aiohttp's errors are httpx's, as above."""
        with _translated():
            response = await self._client().request(
                method,
                URL(url, encoded=True),
                data=body or None,
                headers=headers,
                allow_redirects=False,
                compress=False,
                auto_decompress=True,
                timeout=_timeout(timeouts),
                server_hostname=server_name,
            )
            try:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise AnswerTooLarge(declared)
                content = bytearray()
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    content += chunk
                    if len(content) > limit:
                        raise AnswerTooLarge(len(content))
            finally:
                response.release()  # the connection back to the pool, or closed when the body was not read to its end
        return response.status, bytes(content)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
            await asyncio.sleep(0)  # aiohttp closes the connections' transports on the next loop iteration
