"""The lender calls' HTTP transport: httpx's own, with a cheaper idle-connection check.

httpcore asks each of a pool's connections whether it has expired every time a request is queued or finished
(encode/httpcore#1035), and an idle connection answers by asking its stream whether the socket is readable (the
server closed it). Through anyio, that question first builds the stream's whole typed-attribute mapping (a dict of
closures) to find the raw socket, on every call: under load most of the pool's cost. :class:`LenderTransport` gives
httpcore a network backend whose streams keep their raw socket from the connect and answer the same question with
the same ``poll`` (``httpcore._utils.is_socket_readable``); everything else is the stream's own."""

# ruff: noqa: ASYNC109 -- the timeout parameters are httpcore's network-backend interface

from __future__ import annotations

import socket
import ssl
import typing
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class _KeptSocketStream(httpcore.AsyncNetworkStream):
    """A network stream that knows its raw socket (see the module docstring)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _KeptSocketStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class _KeptSocketBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, its streams wrapped in :class:`_KeptSocketStream`."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _KeptSocketStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[SocketOption] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)
        return _KeptSocketStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class LenderTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` (same options) over :class:`_KeptSocketBackend`. The backend is set on the
    pool httpx built, before any connection exists (httpx does not take a network backend)."""

    def __init__(self, **options: Any) -> None:
        if options.get("proxy") is not None:
            raise ValueError("LenderTransport does not proxy")
        super().__init__(**options)
        pool = typing.cast(Any, self._pool)
        if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
            raise TypeError(f"httpx built an unexpected pool: {type(pool).__name__}")  # an httpx/httpcore upgrade
        pool._network_backend = _KeptSocketBackend()
