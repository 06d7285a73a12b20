"""The local balancer of ``creditmesh serve --processes N``: one TCP listener in front of N API processes (one
uvicorn process per loopback port), each client connection handed to the next healthy process in turn.

It reads only each connection's request head: it appends the client's address to ``X-Forwarded-For`` (the API
processes trust the loopback balancer for it, ``CREDITMESH_TRUSTED_PROXIES``, so per-address velocity limits still
see each client and not the balancer) and sets ``Connection: close``, so that every request is a connection of its
own, handed to the next process in turn (a client's keep-alive connection would otherwise stay with one process).
The rest — the body and the answer — is copied as bytes, unparsed and unbuffered. A client pipelining several
requests on one connection gets only the first answered (then the close).

Health-aware: each process's ``/healthz`` is probed every ``probe_seconds``; a process that fails a probe or refuses
a connection gets no new connections until a probe answers 200 again; when none is healthy the others are still
tried, and only when every one refuses is the client answered ``503`` problem+json with ``Retry-After``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: the longest request head read (uvicorn's own limit on the request line and headers is of this order)
MAX_HEAD_BYTES = 64 * 1024
#: a client that opens a connection and sends no complete request head within this is dropped
HEAD_TIMEOUT_SECONDS = 30.0


def forwarded_head(head: bytes, client: str) -> bytes:
    """The request head ``head`` (through its blank line) with ``client`` appended to ``X-Forwarded-For`` (one header,
    any the client sent kept to its left) and ``Connection: close`` instead of any connection header it sent."""
    request_line, *lines = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
    forwarded: list[bytes] = []
    kept = []
    for line in lines:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"x-forwarded-for":
            forwarded.append(value.strip())
        elif lowered != b"connection":
            kept.append(line)
    chain = b", ".join([*forwarded, client.encode()])
    return b"\r\n".join([request_line, *kept, b"X-Forwarded-For: " + chain, b"Connection: close"]) + b"\r\n\r\n"


@dataclass
class Backend:
    """One API process behind the balancer."""

    host: str
    port: int
    healthy: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _unavailable() -> bytes:
    body = json.dumps(
        {
            "type": "https://creditmesh.dev/problems/service-unavailable",
            "title": "Service unavailable",
            "status": 503,
            "detail": "no API process accepts connections right now",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Balancer:
    def __init__(
        self,
        backends: list[Backend],
        *,
        health_path: str = "/healthz",
        probe_seconds: float = 1.0,
        connect_timeout: float = 2.0,
    ) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = backends
        self._turn = itertools.count()
        self._health_path, self._probe_seconds, self._connect_timeout = health_path, probe_seconds, connect_timeout
        self._server: asyncio.Server | None = None
        self._prober: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def candidates(self) -> list[Backend]:
        """The order to try for the next connection: the healthy processes from the next one in turn, then the
        others (a process may be up before its probe says so)."""
        start = next(self._turn) % len(self.backends)
        ordered = self.backends[start:] + self.backends[:start]
        return [b for b in ordered if b.healthy] + [b for b in ordered if not b.healthy]

    async def start(self, host: str, port: int) -> asyncio.Server:
        await asyncio.gather(*(self.probe(backend) for backend in self.backends))
        self._prober = asyncio.create_task(self._probe_forever(), name="balancer-probes")
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_HEAD_BYTES)
        return self._server

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._prober is not None:
            self._prober.cancel()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, *([self._prober] if self._prober else []), return_exceptions=True)

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
        return answered

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._probe_seconds)
            await asyncio.gather(*(self.probe(backend) for backend in self.backends))

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._forward(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # the balancer closing: the connection ends here (re-raised, asyncio would log it as an error)
        finally:
            self._connections.discard(task)
            client_writer.close()
            with contextlib.suppress(OSError):
                await client_writer.wait_closed()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(client_reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            return  # closed, idle, or a head too long to be a request: nothing to forward
        peer = client_writer.get_extra_info("peername")
        head = forwarded_head(head, str(peer[0]) if isinstance(peer, tuple) else "unknown")
        for backend in self.candidates():
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(backend.host, backend.port), self._connect_timeout
                )
            except (OSError, TimeoutError):
                if backend.healthy:
                    log.warning("API process %s refused a connection: unhealthy until it answers", backend.address)
                backend.healthy = False
                continue
            # the client's end of stream half-closes the process's side (it still answers); the process's end of
            # stream ends the connection
            upstream_writer.write(head)
            requests = asyncio.create_task(_pipe(client_reader, upstream_writer))
            try:
                await _pipe(upstream_reader, client_writer)
            finally:
                requests.cancel()
                await asyncio.gather(requests, return_exceptions=True)
                upstream_writer.close()
                with contextlib.suppress(OSError):
                    await upstream_writer.wait_closed()
            return
        client_writer.write(_unavailable())
        with contextlib.suppress(OSError):
            await client_writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close the other side (HTTP clients may still read the answer)."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m api.balancer --port P HOST:PORT …``: the balancer alone, in front of processes started otherwise
    (``bench/scale.py`` puts it in front of the bare baseline's processes, as ``creditmesh serve --processes N`` puts
    it in front of the API's), until SIGINT or SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m api.balancer", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("backends", nargs="+", metavar="HOST:PORT")
    args = parser.parse_args(argv)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop_signal, stop.set)
        backends = [Backend(host, int(port)) for host, _, port in (b.rpartition(":") for b in args.backends)]
        balancer = Balancer(backends)
        await balancer.start(args.host, args.port)
        try:
            await stop.wait()
        finally:
            await balancer.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
