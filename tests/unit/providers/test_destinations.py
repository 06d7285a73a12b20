"""The SSRF guard and the lender transport's hardening: a lender URL on loopback, link-local or a private network is
refused outside the allow-list (at registration and on every call, connecting to the address checked); answers are
read up to a cap and never quoted to the borrower; a correlation id that is not valid is not forwarded; a request
that cannot be encoded here never counts against the lender."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest

from providers._exceptions import (
    DestinationRefused,
    InvalidRegistration,
    LocalRequestError,
    ProviderProtocolError,
    ProviderServerError,
)
from providers.base import AdapterContext, ProviderRegistration
from providers.destinations import LOOPBACK_NETWORKS, DestinationGuard, PinnedTransport, check_url_shape, is_public
from providers.http_lender import MAX_RESPONSE_BYTES, HttpLenderAdapter
from providers.models import Capabilities, Decline, ProviderOffer, QuoteRequest
from providers.policy import ResiliencePolicy
from providers.resilience import AsyncBreaker, MemoryBreakerStore, MemoryRateLimiter, ResilientProvider
from tests.unit.providers.fakes import REQUEST

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret"
INTERNAL = ["http://127.0.0.1:8600", "http://169.254.169.254", "http://10.0.0.1", "http://[::1]:80", "http://localhost"]


@pytest.mark.parametrize("url", INTERNAL)
async def test_an_internal_lender_url_is_refused_at_registration_outside_the_allow_list(url: str) -> None:
    context = AdapterContext(httpx.AsyncClient(), destinations=DestinationGuard())
    adapter = HttpLenderAdapter.from_registration(
        ProviderRegistration("evil", "http", {"base_url": url, "secret": SECRET}), context
    )
    with pytest.raises(InvalidRegistration, match=r"base_url refused: .* are refused"):
        await adapter.check_destination()


async def test_the_allow_list_admits_loopback_only() -> None:
    guard = DestinationGuard(LOOPBACK_NETWORKS)
    assert str(await guard.check("http://127.0.0.1:8600")) == "127.0.0.1"
    assert str(await guard.check("http://localhost:8600")) in ("127.0.0.1", "::1")
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1", "http://192.168.1.1"):
        with pytest.raises(DestinationRefused):
            await guard.check(url)


async def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_address_it_maps_to() -> None:
    """An allowed network of IPv4-mapped addresses admits no mapped loopback or metadata address (the production
    settings check the IPv4 networks only); the loopback allow list admits mapped loopback."""
    mapped = DestinationGuard(["::ffff:0:0/96"])
    for url in ("http://[::ffff:127.0.0.1]:8600", "http://[::ffff:169.254.169.254]/latest/meta-data"):
        with pytest.raises(DestinationRefused):
            await mapped.check(url)
    loopback = DestinationGuard(LOOPBACK_NETWORKS)
    assert str(await loopback.check("http://[::ffff:127.0.0.1]:8600")) == "::ffff:7f00:1"  # 127.0.0.1, mapped


@pytest.mark.parametrize(
    "address",
    [
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - refused, not bound
        "224.0.0.1",
        "::ffff:10.0.0.1",
        "fe80::1",
        "fd00::1",
        "172.16.0.1",
        "240.0.0.1",
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (the metadata service): Python calls it global
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "fec0::1",  # site-local, deprecated: Python calls it global
    ],
)
def test_non_public_addresses_are_recognized(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_pass() -> None:
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))
    assert is_public(ipaddress.ip_address("2002:5db8:d822::1"))  # 6to4 of a public address (93.184.216.34)


@pytest.mark.parametrize(
    "base_url", ["http://lender.test/api?x=1", "http://lender.test/#frag", "http://user:pw@lender.test"]
)
def test_a_base_url_with_query_fragment_or_credentials_is_refused(base_url: str) -> None:
    with pytest.raises(InvalidRegistration, match="base_url"):
        HttpLenderAdapter.from_registration(
            ProviderRegistration("x", "http", {"base_url": base_url, "secret": SECRET}),
            AdapterContext(httpx.AsyncClient()),
        )


LONG_LABEL = "a" * 64  # one over DNS's 63 between dots
NO_DNS_NAME = [f"https://{LONG_LABEL}.example", "https://" + "0" * 2000, "https://" + "a." * 127 + "com"]


@pytest.mark.parametrize("url", NO_DNS_NAME)
def test_a_host_no_dns_name_can_be_is_refused_for_what_it_is(url: str) -> None:
    """Such a host once reached the resolver, whose IDNA codec raised UnicodeError: a 500 on registering a webhook."""
    with pytest.raises(ValueError, match="no DNS name can be: at most 253 characters, 63 between dots"):
        check_url_shape(url)
    with pytest.raises(InvalidRegistration, match="base_url"):
        HttpLenderAdapter.from_registration(
            ProviderRegistration("x", "http", {"base_url": url, "secret": SECRET}), AdapterContext(httpx.AsyncClient())
        )


@pytest.mark.parametrize(
    "url", ["https://" + "a" * 63 + ".example", "https://bücher.example/v1", "http://[2606:2800:220:1::1]:8080"]
)
def test_the_longest_labels_international_names_and_addresses_pass_the_shape_check(url: str) -> None:
    assert check_url_shape(url).host


async def test_the_resolver_refuses_a_name_its_codec_cannot_encode() -> None:
    with pytest.raises(DestinationRefused, match="does not resolve"):
        await DestinationGuard().resolve(f"{LONG_LABEL}.example", 443)


async def test_the_pinned_transport_connects_to_the_checked_address_keeping_host_and_sni() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    transport = PinnedTransport(DestinationGuard(LOOPBACK_NETWORKS), inner=httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://localhost:8443/v1/health")
        with pytest.raises(DestinationRefused) as refused:
            await client.get("http://169.254.169.254/latest/meta-data")
    assert str(refused.value) == "destination refused: not a public address", "no address in what borrowers see"
    assert len(seen) == 1, "the refused request never reached the network"
    assert seen[0].url.host in ("127.0.0.1", "::1")
    assert seen[0].headers["Host"] == "localhost:8443"
    assert seen[0].extensions["sni_hostname"] == "localhost"


async def test_each_lender_host_gets_a_connection_pool_of_its_own() -> None:
    """Two lenders, a limit of one connection: lender A answers only once lender B has its request, which a pool
    shared between them (one connection, held by A's call) would never let through."""
    b_reached = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: bool) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if wait:
            await b_reached.wait()
        else:
            b_reached.set()
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    server_a = await asyncio.start_server(lambda r, w: serve(r, w, True), "127.0.0.1", 0)
    server_b = await asyncio.start_server(lambda r, w: serve(r, w, False), "127.0.0.1", 0)
    port_a, port_b = (server.sockets[0].getsockname()[1] for server in (server_a, server_b))
    transport = PinnedTransport(DestinationGuard(LOOPBACK_NETWORKS), limits=httpx.Limits(max_connections=1))
    async with server_a, server_b, httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(10.0)) as client:
        first = asyncio.create_task(client.get(f"http://127.0.0.1:{port_a}/v1/quote"))
        await asyncio.sleep(0)  # A's call takes its pool's one connection first
        second = await client.get(f"http://127.0.0.1:{port_b}/v1/quote")
        assert second.status_code == 204
        assert (await first).status_code == 204


def _adapter(handler: Callable[[httpx.Request], httpx.Response]) -> HttpLenderAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpLenderAdapter("bank", "http://lender.test", SECRET, Capabilities(assets=frozenset({"USDC"})), client)


async def test_an_oversized_answer_is_refused_without_reading_it_all() -> None:
    big = b"x" * (MAX_RESPONSE_BYTES + 1)
    with pytest.raises(ProviderProtocolError, match="exceeds"):
        await _adapter(lambda r: httpx.Response(200, content=big)).quote(REQUEST)

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"y" * 65_536

    def streaming(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    with pytest.raises(ProviderProtocolError, match="exceeds"):
        await _adapter(streaming).quote(REQUEST)


@pytest.mark.parametrize(("status", "error"), [(418, ProviderProtocolError), (503, ProviderServerError)])
async def test_a_lender_body_never_reaches_the_error_a_borrower_sees(status: int, error: type[Exception]) -> None:
    leak = "<html>internal stack trace: db password hunter2</html>"
    with pytest.raises(error) as raised:
        await _adapter(lambda r: httpx.Response(status, text=leak)).quote(REQUEST)
    assert "hunter2" not in str(raised.value)
    assert f"HTTP {status}" in str(raised.value)


@pytest.mark.parametrize("given", ["é" * 8, "x" * 65, "a b", "id\r\nX-Injected: 1", ""])
async def test_an_invalid_correlation_id_is_replaced_not_forwarded(given: str) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["X-Correlation-Id"])
        return httpx.Response(204)

    await _adapter(handler).quote(replace(REQUEST, correlation_id=given))
    assert sent[0] != given
    assert len(sent[0]) == 32
    assert sent[0].isalnum()


async def test_a_valid_correlation_id_is_forwarded() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["X-Correlation-Id"])
        return httpx.Response(204)

    await _adapter(handler).quote(replace(REQUEST, correlation_id="req-42-abc"))
    assert sent == ["req-42-abc"]


class _Unencodable(HttpLenderAdapter):
    """An adapter whose own request building fails on a non-ASCII value (the pre-fix path of a borrower's
    correlation id reaching httpx)."""

    async def quote(self, request: QuoteRequest) -> list[ProviderOffer] | Decline:
        raise UnicodeEncodeError("ascii", request.correlation_id, 0, 1, "ordinal not in range(128)")


async def test_a_local_encoding_error_never_counts_against_the_lender() -> None:
    policy = ResiliencePolicy(fail_max=5, quote_attempts=1)
    client = httpx.AsyncClient()
    adapter = _Unencodable("bank", "http://lender.test", SECRET, Capabilities(assets=frozenset({"USDC"})), client)
    breaker = await AsyncBreaker("bank", policy, MemoryBreakerStore()).start()
    provider = ResilientProvider(adapter, policy, breaker, MemoryRateLimiter(1_000, 1_000))
    for _ in range(6):
        with pytest.raises(LocalRequestError):
            await provider.quote(replace(REQUEST, correlation_id="\u00e9"))
    assert await provider.breaker.state() == "closed"


async def test_a_permitted_address_literal_is_checked_once_and_a_name_or_a_refused_literal_every_time() -> None:
    guard = DestinationGuard(LOOPBACK_NETWORKS)
    lookups: list[str] = []

    async def lookup(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1") if len(lookups) == 1 else ipaddress.ip_address("10.0.0.1")]

    guard._lookup = lookup  # type: ignore[method-assign]
    first = await guard.check("http://127.0.0.1:9000/v1")
    assert await guard.check("http://127.0.0.1:9000/v1") is first is guard.literal("127.0.0.1")
    for _ in range(2):
        with pytest.raises(DestinationRefused):
            await guard.check("http://169.254.169.254/latest")
    assert guard.literal("169.254.169.254") is None
    assert str(await guard.check("http://lender.test/v1")) == "127.0.0.1"
    with pytest.raises(DestinationRefused):  # the name now resolves elsewhere: resolved again, refused
        await guard.check("http://lender.test/v1")
    assert lookups == ["lender.test", "lender.test"]
