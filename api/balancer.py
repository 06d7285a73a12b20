"""The local balancer of ``creditmesh serve --processes N``: one TCP listener in front of N API processes (one
uvicorn process per loopback port), each request handed to the next healthy process in turn.

HTTP/1.1-aware, with connections kept alive on both sides: it reads each request's head, appends the client's
address to ``X-Forwarded-For`` (the API processes trust the loopback balancer for it, ``CREDITMESH_TRUSTED_PROXIES``,
so per-address velocity limits still see each client and not the balancer), keeps ``X-Forwarded-Proto`` only from a
client among the trusted proxies (the API processes believe the balancer's, and build their links with it), drops the
hop-by-hop headers
(``Connection``, ``Keep-Alive``), and sends the request on an idle connection to the chosen process left open by an
earlier request, or a new one. The body and the answer are copied as bytes, framed by ``Content-Length`` or chunked
encoding (an answer framed by neither ends with its connection, which is then not kept). A client's keep-alive
connection stays open across its requests, each of which goes to the next process in turn; pipelined requests are
answered one after another. An upstream connection idle for longer than ``IDLE_SECONDS`` (under uvicorn's 5 s
keep-alive) is closed rather than reused, so that a request never meets a connection the process is closing; one
that fails before its answer began gets a ``502`` problem+json. A process whose answer has not begun within
``answer_timeout`` of the request (``ANSWER_TIMEOUT_SECONDS``; ``creditmesh serve`` sets it above the API's longest
own wait, an accept's ``CREDITMESH_ACCEPT_WAIT_SECONDS``), or whose answer then stalls as long, loses the connection:
the client gets a ``504`` problem+json if nothing of the answer was sent yet. ``Expect: 100-continue`` is answered by
the balancer. A request whose body cannot be framed without doubt (RFC 9112 sections 5 and 6: a header line that is
not a field name, a colon and a value, a ``Content-Length`` other than one header of decimal digits, both
``Transfer-Encoding`` and ``Content-Length``, a transfer coding other than chunked last, a chunk size that is not
hexadecimal) gets a ``400`` problem+json and its connection closed: sent on, the API process could read where it ends
differently, and the rest as a request of its own. A client that stops sending for ``client_timeout``
(``HEAD_TIMEOUT_SECONDS``) is closed: silently while its next request's head is incomplete, with a ``408``
problem+json inside a body (the process's connection closed too, so that no handler waits for a body that does not
come).

Health-aware: each process's ``/healthz`` is probed every ``probe_seconds``; a process that fails a probe or refuses
a connection gets no new requests until a probe answers 200 again; when none is healthy the others are still
tried, and only when every one refuses is the client answered ``503`` problem+json with ``Retry-After``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from api.client import IpNetwork, in_networks

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: the longest request head read (uvicorn's own limit on the request line and headers is of this order)
MAX_HEAD_BYTES = 64 * 1024
#: the most digits a Content-Length may have (h11's own limit; 10^20 bytes is no body)
MAX_LENGTH_DIGITS = 20
#: a client connection with no complete request head within this (a new one, or a kept-alive one) is closed, and one
#: whose request body then sends nothing for as long gets a 408 (the API process is not kept waiting for the rest)
HEAD_TIMEOUT_SECONDS = 30.0
#: an upstream connection idle longer than this is closed instead of reused (uvicorn closes its own after 5 s)
IDLE_SECONDS = 2.0
#: idle upstream connections kept per process
MAX_IDLE_PER_BACKEND = 256
#: the longest wait for a process's answer to begin, and then for each next part of it
ANSWER_TIMEOUT_SECONDS = 150.0
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection"})
_HEX = re.compile(rb"[0-9A-Fa-f]+")
#: a header field's name (RFC 9110 section 5.1: a token)
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Closed(Exception):
    """A connection ended, or sent something that is not HTTP/1.x framing, in the middle of a message."""


def forwarded_head(head: bytes, client: str, trusted: bool = False) -> bytes:
    """The request head ``head`` (through its blank line) with ``client`` appended to ``X-Forwarded-For`` (one header,
    any the client sent kept to its left), without the hop-by-hop headers (``Connection``, ``Keep-Alive``), without
    ``Expect: 100-continue`` (the balancer answers it) and, unless the client is a ``trusted`` proxy, without
    ``X-Forwarded-Proto`` (anyone could write it; the API processes would build their links with it)."""
    request_line, *lines = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
    forwarded: list[bytes] = []
    kept = []
    for line in lines:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"x-forwarded-for":
            forwarded.append(value.strip())
        elif lowered == b"x-forwarded-proto" and not trusted:
            continue
        elif lowered not in _HOP_BY_HOP and not (lowered == b"expect" and value.strip().lower() == b"100-continue"):
            kept.append(line)
    chain = b", ".join([*forwarded, client.encode()])
    return b"\r\n".join([request_line, *kept, b"X-Forwarded-For: " + chain]) + b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class _Message:
    """What the balancer needs of one HTTP/1.x head: its first line's words and its headers, names lower-cased."""

    first: list[bytes]
    headers: list[tuple[bytes, bytes]]
    #: the first header line that is not a field name, a colon and a value (whitespace before the colon, a folded
    #: continuation line, no colon), if any
    malformed: bytes | None = None

    @classmethod
    def parse(cls, head: bytes) -> _Message:
        first, *lines = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
        headers = []
        malformed = None
        for line in lines:
            name, colon, value = line.partition(b":")
            if malformed is None and not (colon and _FIELD_NAME.fullmatch(name)):
                malformed = line
            headers.append((name.strip().lower(), value.strip()))
        return cls(first.split(b" ", 2), headers, malformed)

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    def tokens(self, name: bytes) -> set[bytes]:
        return {token.strip().lower() for value in self.values(name) for token in value.split(b",")}

    @property
    def http11(self) -> bool:
        version = self.first[0] if self.first[0].startswith(b"HTTP/") else self.first[-1]
        return version.strip() == b"HTTP/1.1"

    @property
    def chunked(self) -> bool:
        return b"chunked" in self.tokens(b"transfer-encoding")

    @property
    def length(self) -> int | None:
        """The ``Content-Length``, if given (a malformed one is refused as framing the balancer cannot follow)."""
        found = self.values(b"content-length")
        if not found:
            return None
        if len(found) > 1 or not found[0].isdigit():  # one header, ASCII digits only: no sign, space or "_"
            raise _Closed(
                f"Content-Length must be one decimal number, not {b', '.join(found).decode(errors='replace')!r}"
            )
        if len(found[0]) > MAX_LENGTH_DIGITS:  # int() refuses past 4,300 digits; no body is 10^20 bytes
            shown = found[0][:MAX_LENGTH_DIGITS].decode()
            raise _Closed(f"Content-Length must be at most {MAX_LENGTH_DIGITS} digits, not {shown}… ({len(found[0])})")
        return int(found[0])

    def framing_error(self) -> str | None:
        """Why a request's body cannot be told apart from the next request on its connection (RFC 9112 section 6),
        or None: a header line that is not a field name, a colon and a value (RFC 9112 section 5: a name spaced from
        its colon or folded onto a line of its own may be read as another header, or as none, by the API process), a
        transfer coding other than chunked last, both ``Transfer-Encoding`` and ``Content-Length``, or
        ``Content-Length`` other than one header of one decimal number."""
        if self.malformed is not None:
            shown = self.malformed[:80].decode(errors="replace")
            return f"a header line must be a field name, a colon and a value, not {shown!r}"
        codings = [token.strip().lower() for value in self.values(b"transfer-encoding") for token in value.split(b",")]
        if codings and codings[-1] != b"chunked":
            return f"Transfer-Encoding must end in chunked, not {b', '.join(codings).decode(errors='replace')!r}"
        if codings and self.values(b"content-length"):
            return "a request may have Transfer-Encoding or Content-Length, not both"
        try:
            _ = self.length
        except _Closed as err:
            return str(err)
        return None


@dataclass(slots=True)
class _Upstream:
    """One connection to an API process, kept open between requests."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        self.writer.close()


@dataclass(eq=False)
class Backend:
    """One API process behind the balancer (each one itself: its port may change, ``Balancer.move``)."""

    host: str
    port: int
    healthy: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _problem(status: int, reason: str, slug: str, detail: str, *, retry: bool = True) -> bytes:
    """A problem+json answer that ends its connection (with ``Retry-After: 1`` when ``retry``: a passing condition)."""
    body = json.dumps(
        {"type": f"https://creditmesh.dev/problems/{slug}", "title": reason, "status": status, "detail": detail}
    ).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        *(["Retry-After: 1"] if retry else []),
        "Connection: close",
    ]
    return "\r\n".join([*headers, "", ""]).encode() + body


def _bad_request(detail: str) -> bytes:
    return _problem(400, "Bad Request", "bad-request", detail, retry=False)


def _unavailable() -> bytes:
    return _problem(503, "Service Unavailable", "service-unavailable", "no API process accepts connections right now")


def _bad_gateway() -> bytes:
    return _problem(502, "Bad Gateway", "bad-gateway", "the API process closed the connection before it answered")


def _request_timeout(seconds: float) -> bytes:
    detail = f"the request's body stopped arriving for {seconds:g} s"
    return _problem(408, "Request Timeout", "request-timeout", detail, retry=False)


def _gateway_timeout(seconds: float) -> bytes:
    return _problem(504, "Gateway Timeout", "gateway-timeout", f"the API process did not answer within {seconds:g} s")


class Balancer:
    def __init__(
        self,
        backends: list[Backend],
        *,
        health_path: str = "/healthz",
        probe_seconds: float = 1.0,
        connect_timeout: float = 2.0,
        answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
        client_timeout: float = HEAD_TIMEOUT_SECONDS,
        trusted_proxies: Sequence[IpNetwork] = (),
    ) -> None:
        """``trusted_proxies``: the reverse proxies in front of the balancer (``CREDITMESH_TRUSTED_PROXIES``), whose
        ``X-Forwarded-Proto`` is passed on."""
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = backends
        self._turn = itertools.count()
        self._health_path, self._probe_seconds, self._connect_timeout = health_path, probe_seconds, connect_timeout
        self._answer_timeout, self._client_timeout = answer_timeout, client_timeout
        self._trusted_proxies = tuple(trusted_proxies)
        self._server: asyncio.Server | None = None
        self._prober: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._idle: dict[Backend, list[_Upstream]] = {backend: [] for backend in backends}
        #: upstream connections opened (not reused) since start: what keep-alive saves
        self.opened = 0

    def candidates(self) -> list[Backend]:
        """The order to try for the next request: the healthy processes from the next one in turn, then the others
        (a process may be up before its probe says so)."""
        start = next(self._turn) % len(self.backends)
        ordered = self.backends[start:] + self.backends[:start]
        return [b for b in ordered if b.healthy] + [b for b in ordered if not b.healthy]

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port`` (an ``OSError`` if that address cannot be had, nothing left running), probe every
        process once, then accept connections."""
        server = await asyncio.start_server(self._accept, host, port, limit=MAX_HEAD_BYTES, start_serving=False)
        self._server = server
        await asyncio.gather(*(self.probe(backend) for backend in self.backends))
        self._prober = asyncio.create_task(self._probe_forever(), name="balancer-probes")
        await server.start_serving()
        return server

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._prober is not None:
            self._prober.cancel()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, *([self._prober] if self._prober else []), return_exceptions=True)
        for idle in self._idle.values():
            for upstream in idle:
                upstream.close()
            idle.clear()

    async def probe(self, backend: Backend) -> bool:
        """One ``GET /healthz`` to the process; its health is whether it answered 200."""
        answered = False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(backend.host, backend.port), self._connect_timeout
            )
            try:
                writer.write(f"GET {self._health_path} HTTP/1.0\r\nHost: {backend.address}\r\n\r\n".encode())
                await writer.drain()
                status_line = await asyncio.wait_for(reader.readline(), self._connect_timeout)
                answered = status_line.split(b" ")[1:2] == [b"200"]
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except (OSError, TimeoutError):
            answered = False
        if answered != backend.healthy:
            log.warning("API process %s is %s", backend.address, "healthy" if answered else "unhealthy")
        backend.healthy = answered
        if not answered:
            self._close_idle(backend)
        return answered

    def move(self, backend: Backend, port: int) -> None:
        """``backend``'s process now listens on ``port`` (started again there): it gets no requests until a probe
        there answers, and no connection to its old port is reused."""
        log.warning("API process %s moves to port %d", backend.address, port)
        backend.port, backend.healthy = port, False
        self._close_idle(backend)

    def _close_idle(self, backend: Backend) -> None:
        for upstream in self._idle[backend]:
            upstream.close()
        self._idle[backend].clear()

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._probe_seconds)
            await asyncio.gather(*(self.probe(backend) for backend in self.backends))

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # the balancer closing: the connection ends here (re-raised, asyncio would log it as an error)
        except (_Closed, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent what is not HTTP/1.x: nothing more to answer on this connection
        finally:
            self._connections.discard(task)
            client_writer.close()
            with contextlib.suppress(OSError):
                await client_writer.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """The client's requests, one after another, until it closes, asks to close, or an answer ends with its
        connection."""
        peer = client_writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        trusted = in_networks(client, self._trusted_proxies)
        while True:
            try:
                async with asyncio.timeout(self._client_timeout):  # (wait_for would make a task per request)
                    head = await client_reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                return  # idle: closed
            request = _Message.parse(head)
            if (framing_error := request.framing_error()) is not None:
                client_writer.write(_bad_request(framing_error))  # sent on, it could be read as two requests
                await client_writer.drain()
                return
            if not await self._exchange(request, forwarded_head(head, client, trusted), client_reader, client_writer):
                return
            if not request.http11 or b"close" in request.tokens(b"connection"):
                return

    async def _upstream(self, backend: Backend) -> _Upstream | None:
        """An idle connection to ``backend`` still fit for a request, else a new one; None when it refuses."""
        idle = self._idle[backend]
        while idle:
            upstream = idle.pop()
            if upstream.usable():
                return upstream
            upstream.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(backend.host, backend.port, limit=MAX_HEAD_BYTES), self._connect_timeout
            )
        except (OSError, TimeoutError):
            if backend.healthy:
                log.warning("API process %s refused a connection: unhealthy until it answers", backend.address)
            backend.healthy = False
            return None
        self.opened += 1
        return _Upstream(reader, writer)

    async def _exchange(
        self,
        request: _Message,
        head: bytes,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> bool:
        """One request to the next process that takes it, and its answer to the client; whether the client's
        connection may carry another request."""
        for backend in self.candidates():
            upstream = await self._upstream(backend)
            if upstream is not None:
                break
        else:
            client_writer.write(_unavailable())
            await client_writer.drain()
            return False
        if b"100-continue" in request.tokens(b"expect"):
            client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            upstream.writer.write(head)
            await _copy_body(request, client_reader, upstream.writer, self._client_timeout)
        except TimeoutError:  # (an OSError too) the client stopped inside its body: the process's connection ends
            upstream.close()
            with contextlib.suppress(OSError):
                client_writer.write(_request_timeout(self._client_timeout))
                await client_writer.drain()
            return False
        except (_Closed, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
            # the client's body: a chunk size that is not one or runs over, or the client gone inside the body
            upstream.close()
            with contextlib.suppress(OSError):
                client_writer.write(
                    _bad_request(str(err) if isinstance(err, _Closed) else "the chunked body ended or ran over")
                )
                await client_writer.drain()
            return False
        except OSError:
            upstream.close()
            with contextlib.suppress(OSError):
                client_writer.write(_bad_gateway())
                await client_writer.drain()
            return False
        answered = False
        try:
            async with asyncio.timeout(self._answer_timeout):
                while True:  # interim answers (1xx) first
                    response_head = await upstream.reader.readuntil(b"\r\n\r\n")
                    response = _Message.parse(response_head)
                    status = response.first[1] if len(response.first) > 1 else b""
                    if not status.startswith(b"1") or status == b"101":
                        break
                    client_writer.write(response_head)
            answered = True
            until_close = _until_close(request, response, status)
            keep = response.http11 and not until_close and b"close" not in response.tokens(b"connection")
            client_keeps = not until_close and request.http11 and b"close" not in request.tokens(b"connection")
            client_writer.write(_answer_head(response_head, close=not client_keeps))
            if until_close:
                await _copy_until_eof(upstream.reader, client_writer, self._answer_timeout)
            elif _has_body(request, status):
                await _copy_body(response, upstream.reader, client_writer, self._answer_timeout)
            await client_writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, _Closed, OSError, TimeoutError) as err:
            upstream.close()  # a process still working on the request: its answer, if any, goes nowhere
            if not answered:
                if isinstance(err, TimeoutError):
                    log.warning("API process %s did not answer in %s s", backend.address, self._answer_timeout)
                with contextlib.suppress(OSError):
                    client_writer.write(
                        _gateway_timeout(self._answer_timeout) if isinstance(err, TimeoutError) else _bad_gateway()
                    )
                    await client_writer.drain()
            return False
        if keep and len(self._idle[backend]) < MAX_IDLE_PER_BACKEND:
            upstream.idle_since = time.monotonic()
            self._idle[backend].append(upstream)
        else:
            upstream.close()
        return client_keeps


def _has_body(request: _Message, status: bytes) -> bool:
    return request.first[0] != b"HEAD" and status not in (b"204", b"304")


def _until_close(request: _Message, response: _Message, status: bytes) -> bool:
    """Whether an answer's body is framed only by the end of its connection (neither length nor chunks)."""
    return _has_body(request, status) and not response.chunked and response.length is None


def _answer_head(head: bytes, *, close: bool) -> bytes:
    """An answer's head without its hop-by-hop headers, with ``Connection: close`` when the balancer closes the
    client's connection after it."""
    status_line, *lines = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
    kept = [line for line in lines if line.partition(b":")[0].strip().lower() not in _HOP_BY_HOP]
    return b"\r\n".join([status_line, *kept, *([b"Connection: close"] if close else [])]) + b"\r\n\r\n"


async def _copy_body(
    message: _Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stall: float | None = None
) -> None:
    """The body of ``message`` (its head already copied) from ``reader`` to ``writer``, as framed by its head: chunks
    through the last one and the trailers, ``Content-Length`` bytes, or none; ``TimeoutError`` when ``reader`` sends
    nothing for ``stall`` seconds."""
    if message.chunked:
        while True:
            async with asyncio.timeout(stall):
                size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            digits = size_line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):
                raise _Closed(f"a chunk size must be hexadecimal digits, not {digits!r}")
            size = int(digits, 16)
            if size == 0:
                async with asyncio.timeout(stall):
                    while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                        writer.write(trailer)
                writer.write(trailer)
                break
            await _copy_exactly(reader, writer, size + 2, stall)  # the chunk and its CRLF
    elif (length := message.length) is not None:
        await _copy_exactly(reader, writer, length, stall)
    await writer.drain()


async def _copy_exactly(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: int, stall: float | None = None
) -> None:
    while count > 0:
        async with asyncio.timeout(stall):
            chunk = await reader.read(min(CHUNK, count))
        if not chunk:
            raise _Closed("the connection ended inside a body")
        writer.write(chunk)
        await writer.drain()
        count -= len(chunk)


async def _copy_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stall: float) -> None:
    while True:
        async with asyncio.timeout(stall):
            chunk = await reader.read(CHUNK)
        if not chunk:
            return
        writer.write(chunk)
        await writer.drain()


def main(argv: list[str] | None = None) -> None:
    """``python -m api.balancer --port P HOST:PORT …``: the balancer alone, in front of processes started otherwise
    (``bench/scale.py`` puts it in front of the bare baseline's processes, as ``creditmesh serve --processes N`` puts
    it in front of the API's), until SIGINT or SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m api.balancer", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answer-timeout", type=float, default=ANSWER_TIMEOUT_SECONDS, metavar="SECONDS")
    parser.add_argument("backends", nargs="+", metavar="HOST:PORT")
    args = parser.parse_args(argv)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stop.set)
        backends = [Backend(host, int(port)) for host, _, port in (b.rpartition(":") for b in args.backends)]
        balancer = Balancer(backends, answer_timeout=args.answer_timeout)
        await balancer.start(args.host, args.port)
        try:
            await stop.wait()
        finally:
            await balancer.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
