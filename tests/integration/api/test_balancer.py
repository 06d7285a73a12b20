"""The local balancer of ``creditmesh serve --processes N`` over real sockets, in front of two small HTTP servers
(uvicorn, each naming itself): connections go round robin to both; one that stops gets nothing (its refused
connection and its failed probe mark it unhealthy) and gets connections again once its probe answers; with none
left the client gets a 503 problem with Retry-After; a large body goes through both ways intact, and a chunked one;
each request reaches its process with the client's address in X-Forwarded-For (after any the client sent); a
keep-alive client's requests are spread too, on its one connection, and the balancer reuses its connections to the
processes instead of opening one per request; a process that does not answer in time gets the client a 504 problem;
a balancer whose address is taken raises and probes nothing; a client that stalls inside its body gets a 408 problem."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from api.balancer import Backend, Balancer, forwarded_head
from api.cli.serve import process_env
from chain.devnet import free_port

pytestmark = pytest.mark.integration


def _named(name: str) -> Starlette:
    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def echo(request: Request) -> PlainTextResponse:
        headers = {"X-Creditmesh-Process": name, "X-Seen-Forwarded-For": request.headers.get("x-forwarded-for", "")}
        return PlainTextResponse((await request.body()).decode(), headers=headers)

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(float(request.query_params["seconds"]))
        return PlainTextResponse("late", headers={"X-Creditmesh-Process": name})

    return Starlette(routes=[Route("/healthz", healthz), Route("/echo", echo, methods=["POST"]), Route("/slow", slow)])


class _Process:
    """One named HTTP server on a fixed loopback port, started and stopped at will."""

    def __init__(self, name: str) -> None:
        self.name, self.port = name, free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(_named(self.name), host="127.0.0.1", port=self.port, log_level="error")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(1_000):  # uvicorn says it is listening only through this flag
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.name} did not start")

    async def stop(self) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await self._task


@pytest.fixture
async def processes() -> AsyncIterator[tuple[list[_Process], Balancer, str]]:
    named = [_Process("api-1"), _Process("api-2")]
    for process in named:
        await process.start()
    balancer = Balancer([Backend("127.0.0.1", p.port) for p in named], probe_seconds=0.1)
    port = free_port()
    await balancer.start("127.0.0.1", port)
    try:
        yield named, balancer, f"http://127.0.0.1:{port}"
    finally:
        await balancer.close()
        for process in named:
            with contextlib.suppress(AssertionError):
                await process.stop()


async def _served_by(url: str, body: str = "hello") -> tuple[int, str]:
    """One request from a client of its own."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/echo", content=body)
    if response.status_code == 200:
        assert response.text == body
    return response.status_code, response.headers.get("x-creditmesh-process", "")


@pytest.mark.asyncio(loop_scope="session")
async def test_connections_go_round_robin_to_the_healthy_processes_only(
    processes: tuple[list[_Process], Balancer, str],
) -> None:
    named, balancer, url = processes
    assert all(backend.healthy for backend in balancer.backends)
    served = [await _served_by(url) for _ in range(6)]
    assert sorted(served) == [(200, "api-1")] * 3 + [(200, "api-2")] * 3

    big = "x" * 3_000_000  # many chunks each way
    assert await _served_by(url, big) in {(200, "api-1"), (200, "api-2")}

    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b"chunked ", b"x" * 100_000, b" end"):
            yield piece

    async with httpx.AsyncClient() as client:
        chunked = await client.post(f"{url}/echo", content=chunks())
    assert chunked.status_code == 200
    assert chunked.text == "chunked " + "x" * 100_000 + " end"

    opened = balancer.opened
    limits = httpx.Limits(max_connections=1)  # one connection to the balancer, kept alive
    async with httpx.AsyncClient(limits=limits) as keep_alive:
        answers = [await keep_alive.post(f"{url}/echo", content="a", headers={"X-Forwarded-For": "203.0.113.9"})]
        answers += [await keep_alive.post(f"{url}/echo", content=str(n)) for n in range(9)]
    assert [a.text for a in answers] == ["a", *map(str, range(9))]
    assert {a.headers["x-creditmesh-process"] for a in answers} == {"api-1", "api-2"}
    assert [a.headers["x-seen-forwarded-for"] for a in answers[:2]] == ["203.0.113.9, 127.0.0.1", "127.0.0.1"]
    assert all("connection" not in a.headers for a in answers)
    assert all(a.extensions["network_stream"] is answers[0].extensions["network_stream"] for a in answers)
    assert balancer.opened - opened <= 2, "ten requests, at most one new connection per process"

    await named[0].stop()
    after = [await _served_by(url) for _ in range(6)]
    assert after == [(200, "api-2")] * 6, "a stopped process gets no connection"
    assert not balancer.backends[0].healthy

    await named[1].stop()
    status, _ = await _served_by(url)
    assert status == 503
    async with httpx.AsyncClient() as client:
        refused = await client.get(f"{url}/anything")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["status"] == 503

    await named[0].start()
    for _ in range(100):  # its probe marks it healthy again within a probe period or two
        if balancer.backends[0].healthy:
            break
        await asyncio.sleep(0.05)
    assert balancer.backends[0].healthy
    assert [await _served_by(url) for _ in range(3)] == [(200, "api-1")] * 3


def test_the_request_head_carries_the_client_without_hop_by_hop_headers_and_each_process_trusts_the_balancer() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nx-forwarded-for: 1.2.3.4\r\n\r\n"
    assert (
        forwarded_head(head, "10.0.0.7") == b"POST /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n\r\n"
    )
    proto = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n"
    assert b"X-Forwarded-Proto: https" in forwarded_head(proto, "10.0.0.7", trusted=True)  # a proxy's scheme, kept
    assert b"forwarded-proto" not in forwarded_head(proto, "203.0.113.9").lower()  # anyone else's: not passed on
    first = process_env(0, {"CREDITMESH_TRUSTED_PROXIES": '["10.0.0.0/8"]'})
    second = process_env(1, {"CREDITMESH_WORKERS": "indexer"})
    assert (first["CREDITMESH_WORKERS"], second["CREDITMESH_WORKERS"]) == ("all", "none")
    assert (first["CREDITMESH_PROCESS_NAME"], second["CREDITMESH_PROCESS_NAME"]) == ("api-1", "api-2")
    assert first["CREDITMESH_TRUSTED_PROXIES"] == '["10.0.0.0/8", "127.0.0.1/32"]'
    assert second["CREDITMESH_TRUSTED_PROXIES"] == '["127.0.0.1/32"]'


@pytest.mark.asyncio(loop_scope="session")
async def test_a_process_that_does_not_answer_in_time_gets_the_client_a_504_problem(
    processes: tuple[list[_Process], Balancer, str],
) -> None:
    named, _, _ = processes
    impatient = Balancer([Backend("127.0.0.1", p.port) for p in named], probe_seconds=0.1, answer_timeout=0.3)
    port = free_port()
    await impatient.start("127.0.0.1", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            late = await client.get("/slow", params={"seconds": "1"})
            assert late.status_code == 504
            assert late.headers["content-type"] == "application/problem+json"
            assert late.json()["type"] == "https://creditmesh.dev/problems/gateway-timeout"
            assert late.json()["status"] == 504
            in_time = await client.get("/slow", params={"seconds": "0"})
            assert (in_time.status_code, in_time.text) == (200, "late"), "the next request is served as before"
    finally:
        await impatient.close()


async def _raw(port: int, request: bytes) -> bytes:
    """Everything the balancer answers to ``request`` on one connection, until it closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n"


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("headers", "body", "detail"),
    [
        (b"Content-Length: +5\r\n", b"hello", "Content-Length must be one decimal number, not '+5'"),
        (b"Content-Length: 1_0\r\n", b"hello12345", "Content-Length must be one decimal number, not '1_0'"),
        (b"Content-Length: 5\r\nContent-Length: 39\r\n", b"hello", "not '5, 39'"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n", "not both"),
        (b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n", "must end in chunked, not 'chunked, gzip'"),
        (b"Transfer-Encoding: chunked\r\n", b"-5\r\nhello\r\n0\r\n\r\n", "hexadecimal digits, not b'-5'"),
        (b"Content-Length : 39\r\n", b"hello", "a field name, a colon and a value, not 'Content-Length : 39'"),
        (b"X-Note: a\r\n Content-Length: 39\r\n", b"hello", "not ' Content-Length: 39'"),
        (b"Content-Length 39\r\n", b"hello", "not 'Content-Length 39'"),
        (b"Content-Length: " + b"9" * 4_301 + b"\r\n", b"hello", "at most 20 digits, not 99999999999999999999… (4301)"),
    ],
    ids=[
        "signed-length",
        "underscored-length",
        "two-lengths",
        "both-framings",
        "gzip-last",
        "signed-chunk",
        "space-before-colon",
        "folded-line",
        "no-colon",
        "endless-length",  # int() refuses past 4,300 digits: the connection was dropped with a traceback
    ],
)
async def test_a_request_whose_body_cannot_be_framed_gets_a_400_problem_and_nothing_after_it_is_sent_on(
    processes: tuple[list[_Process], Balancer, str], headers: bytes, body: bytes, detail: str
) -> None:
    _, balancer, url = processes
    port = int(url.rsplit(":", 1)[1])
    opened = balancer.opened
    answer = await _raw(port, b"POST /echo HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n" + body + SMUGGLED)
    head, _, problem = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"Content-Type: application/problem+json" in head
    assert b"Retry-After" not in head, "the same request fails again"
    assert json.loads(problem)["type"] == "https://creditmesh.dev/problems/bad-request"
    assert detail in json.loads(problem)["detail"]
    assert answer.count(b"HTTP/1.1 ") == 1, "what followed the body was not read as a request of its own"
    if b"-5" not in body:  # known from the head alone (a chunk size only once the body is read)
        assert balancer.opened == opened, "refused before any process saw it"


@pytest.mark.asyncio(loop_scope="session")
async def test_a_client_that_stops_inside_its_chunked_body_gets_a_400_problem(
    processes: tuple[list[_Process], Balancer, str],
) -> None:
    _, _, url = processes
    reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3")
        writer.write_eof()  # the rest of the size line never comes
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, problem = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert json.loads(problem)["detail"] == "the chunked body ended or ran over"


@pytest.mark.asyncio(loop_scope="session")
async def test_a_balancer_whose_address_is_taken_raises_and_leaves_nothing_probing() -> None:
    probes = 0

    async def count(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal probes
        probes += 1
        writer.close()

    process = await asyncio.start_server(count, "127.0.0.1", 0)
    taken = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    balancer = Balancer([Backend("127.0.0.1", process.sockets[0].getsockname()[1])], probe_seconds=0.05)
    try:
        with pytest.raises(OSError, match="address already in use"):
            await balancer.start("127.0.0.1", taken.sockets[0].getsockname()[1])
        await asyncio.sleep(0.3)  # six probe intervals
        assert probes == 0, "a balancer that could not listen probes nothing, now or later"
    finally:
        await balancer.close()
        for server in (process, taken):
            server.close()
            await server.wait_closed()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_client_that_stalls_inside_its_body_gets_a_408_problem_and_the_process_is_let_go() -> None:
    """The process reading the body sees its connection end (the request abandoned), not a wait without end."""
    ended = asyncio.Event()

    async def process(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        while await reader.read(1024):  # the body, until the balancer lets go
            pass
        ended.set()
        writer.close()

    server = await asyncio.start_server(process, "127.0.0.1", 0)
    balancer = Balancer(
        [Backend("127.0.0.1", server.sockets[0].getsockname()[1], healthy=True)], probe_seconds=60, client_timeout=0.5
    )
    listening = await balancer.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", listening.sockets[0].getsockname()[1])
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhel")  # 7 bytes short, for good
        answer = await asyncio.wait_for(reader.read(), 10)
        await asyncio.wait_for(ended.wait(), 10)
    finally:
        writer.close()
        await balancer.close()
        server.close()
        await server.wait_closed()
    head, _, problem = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"Retry-After" not in head
    assert json.loads(problem)["type"] == "https://creditmesh.dev/problems/request-timeout"
    assert json.loads(problem)["detail"] == "the request's body stopped arriving for 0.5 s"
