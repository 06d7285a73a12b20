"""Where the platform may send a lender's HTTP requests: no server-side request forgery through a ``base_url``.

A lender's host is resolved and refused when any of its addresses is loopback, link-local (169.254.169.254, the
cloud metadata service), private, shared, multicast, reserved or unspecified — unless it lies in the configured
allow-list (``CREDITMESH_OUTBOUND_ALLOWED_NETWORKS``; the local default allows loopback for the simulated lenders).
``PinnedTransport`` checks every request and connects to the address it checked, keeping the ``Host`` header and
the TLS server name (SNI, certificate check) of the URL, so a DNS answer that changes between the check and the
connection (DNS rebinding) cannot redirect the call."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request

import httpx

from providers._exceptions import DestinationRefused
from providers.http_pool import LenderTransport

log = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: how many permitted address literals a guard remembers (lender hosts written as addresses; a bound, not a cache
#: policy: past it each is checked again every time)
MAX_REMEMBERED_LITERALS = 256
#: the allow-list of local runs and tests: the simulated lenders listen on 127.0.0.1
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
#: a DNS name's length and its labels' (RFC 1035, 2.3.4), its IDNA (punycode) form counted
MAX_HOST_NAME, MAX_HOST_LABEL = 253, 63


def is_public(address: IpAddress) -> bool:
    """True for a globally routable unicast address (what a lender on the internet has). An IPv6 address that embeds
    an IPv4 one (IPv4-mapped, 6to4 ``2002::/16``) is as public as that IPv4 address, and a site-local one
    (``fec0::/10``, deprecated but still routed by some hosts) is not: Python counts both of the latter global."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def check_url_shape(value: str) -> httpx.URL:
    """The URL of a lender's ``base_url``, refused when it is not plain ``http(s)://host[:port][/path]`` (a query
    or fragment would let the registration steer the paths of our calls; credentials do not belong in it)."""
    if "?" in value or "#" in value:
        raise ValueError("must not carry a query (?) or fragment (#)")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as err:  # a host IDNA cannot encode (a lone surrogate, say): refused, not a 500
        raise ValueError(f"is not a URL: {err}") from err
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    if url.userinfo:
        raise ValueError("must not carry credentials (user:password@)")
    host = url.raw_host  # a name in its IDNA form, or an address (an IPv6 one is 39 characters at most)
    if len(host) > MAX_HOST_NAME or any(len(label) > MAX_HOST_LABEL for label in host.split(b".")):
        raise ValueError(
            f"has a host no DNS name can be: at most {MAX_HOST_NAME} characters, {MAX_HOST_LABEL} between dots"
        )
    return url


def check_https(what: str, url: str) -> None:
    """Refuse a plain ``http://`` URL the platform sends to (production): a lender's (the quotes and the borrower's
    request data would cross the network unencrypted, and an on-path attacker could answer for the lender: the HMAC
    signs the body, not the connection) or a webhook's (a borrower's loans and payments, readable on the path)."""
    if urlsplit(url).scheme.lower() != "https":
        raise ValueError(
            f"{what} must be an https:// URL in production (CREDITMESH_ENVIRONMENT=production), not {url!r}: plain "
            "http:// carries what is sent to it unencrypted"
        )


class DestinationGuard:
    """Resolves a host and returns the address to connect to, or raises ``DestinationRefused``."""

    def __init__(self, allowed: Iterable[str | IpNetwork] = ()) -> None:
        self.allowed: tuple[IpNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in allowed)
        #: hosts written as a permitted address: checked once (an address does not resolve to anything else)
        self._permitted_literals: dict[str, IpAddress] = {}

    def literal(self, host: str) -> IpAddress | None:
        """The address ``host`` is written as, if it is a permitted address literal already checked."""
        return self._permitted_literals.get(host)

    def permits(self, address: IpAddress) -> bool:
        """A public address, or one in an allowed network; an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is
        the IPv4 address it maps to, so an allowed IPv6 network that holds the mapped range admits no loopback or
        metadata address the IPv4 networks do not."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return is_public(address) or any(address in network for network in self.allowed)

    async def resolve(self, host: str, port: int) -> IpAddress:
        """The first address of ``host``; refused if ANY of its addresses is not permitted (a name that answers
        both a public and a private address is refused, whichever the connection would have picked). A name is
        resolved every time (no DNS cache here: the connection goes to the address just checked)."""
        known = self._permitted_literals.get(host)
        if known is not None:
            return known
        literal = True
        try:
            addresses: list[IpAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            literal = False
            addresses = await self._lookup(host, port)
        refused = [str(a) for a in addresses if not self.permits(a)]
        if refused:
            raise DestinationRefused(
                f"{host} resolves to {', '.join(refused)}: loopback, link-local and private addresses are refused "
                "(allow a network with CREDITMESH_OUTBOUND_ALLOWED_NETWORKS for local runs)"
            )
        if literal and len(self._permitted_literals) < MAX_REMEMBERED_LITERALS:
            self._permitted_literals[host] = addresses[0]
        return addresses[0]

    async def check(self, url: str | httpx.URL) -> IpAddress:
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return await self.resolve(parsed.host, port)

    @staticmethod
    async def _lookup(host: str, port: int) -> list[IpAddress]:
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as err:  # UnicodeError: a name the IDNA codec refuses (a label over 63)
            raise DestinationRefused(f"{host[:100]} does not resolve: {err}") from err
        found: list[IpAddress] = []
        for *_, sockaddr in answers:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        if not found:
            raise DestinationRefused(f"{host} has no address")
        return found


#: lender hosts that get a connection pool of their own; further hosts share one (a bound on pools, not on hosts)
MAX_HOST_POOLS = 64


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that checks every request's host with the guard and connects to the checked address.

    Without an ``inner`` transport, each destination (scheme, checked address, port, server name) gets a connection
    pool of its own (a :class:`~providers.http_pool.LenderTransport`: aiohttp's pool under httpx's interface), each
    with the ``options`` given (``limits`` apply per destination), up to :data:`MAX_HOST_POOLS`; later destinations
    share one more pool. A slow or saturated lender then holds only its own pool's connections."""

    def __init__(self, guard: DestinationGuard, inner: httpx.AsyncBaseTransport | None = None, **options: Any):
        self.guard = guard
        self._inner = inner
        self._options = options
        self._pools: dict[tuple[str, str, int | None, str], httpx.AsyncBaseTransport] = {}
        self._shared: httpx.AsyncBaseTransport | None = None

    async def _route(self, url: httpx.URL) -> tuple[httpx.URL, str | None, httpx.AsyncBaseTransport]:
        """The URL to connect to (the checked address in place of the host), the TLS server name when it changed
        (https), and the transport of that destination; ``DestinationRefused`` for a host the guard refuses."""
        host = url.host
        try:
            address = await self.guard.check(url)
        except DestinationRefused as err:
            # the addresses are for operators; the message may reach provider_outcomes[].detail, which borrowers read
            log.warning("call to %s refused: %s", host, err)
            raise DestinationRefused("destination refused: not a public address") from err
        pinned = host if address is self.guard.literal(host) else str(address)
        server_name = None
        if pinned != host:
            url = url.copy_with(host=pinned)
            if url.scheme == "https":
                server_name = host  # SNI and the certificate check follow the original name
        return url, server_name, self._transport(url.scheme, pinned, url.port, host)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # the Host header was set from the URL when the request was built
        request.url, server_name, transport = await self._route(request.url)
        if server_name is not None:
            request.extensions = {**request.extensions, "sni_hostname": server_name}
        return await transport.handle_async_request(request)

    async def exchange(
        self, method: str, url: httpx.URL, headers: dict[str, str], body: bytes, timeouts: httpx.Timeout, limit: int
    ) -> tuple[int, bytes] | None:
        """``LenderTransport.exchange`` to ``url``'s checked address, the ``Host`` header from ``url`` as httpx sets
        it; None when this transport sends through an ``inner`` one that is not a ``LenderTransport`` (a test's
        ``MockTransport``): the caller sends through httpx then."""
        if self._inner is not None and not isinstance(self._inner, LenderTransport):
            return None
        headers = headers | {"Host": url.netloc.decode("ascii")}
        pinned, server_name, transport = await self._route(url)
        if not isinstance(transport, LenderTransport):  # pragma: no cover - every pool is one
            return None
        return await transport.exchange(method, str(pinned), headers, body, timeouts.as_dict(), server_name, limit)

    def _transport(self, scheme: str, address: str, port: int | None, server_name: str) -> httpx.AsyncBaseTransport:
        if self._inner is not None:
            return self._inner
        key = (scheme, address, port, server_name)
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) < MAX_HOST_POOLS:
                pool = self._pools[key] = LenderTransport(**self._options)
            else:
                if self._shared is None:
                    self._shared = LenderTransport(**self._options)
                pool = self._shared
        return pool

    async def aclose(self) -> None:
        transports = [self._inner, self._shared, *self._pools.values()]
        self._pools.clear()
        self._shared = None
        for transport in transports:
            if transport is not None:
                await transport.aclose()


class _NoCookiePolicy(DefaultCookiePolicy):
    """Accepts no cookie and returns none."""

    def set_ok(self, cookie: Cookie, request: Request) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Request) -> bool:
        return False


class _NoCookies(httpx.Cookies):
    """A cookie store that stays empty: a response's ``Set-Cookie`` is not read (not even parsed) and no request
    gets a ``Cookie`` header from it; its jar refuses every cookie as well, should anything set one."""

    def __init__(self) -> None:
        super().__init__(CookieJar(policy=_NoCookiePolicy()))

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


class LenderClient(httpx.AsyncClient):
    """The HTTP client of lender calls: keeps no cookies. Cookies are scoped by host, not port (RFC 6265 §8.5), so
    with one shared jar a cookie one lender set would be sent to every other lender on the same host; and no lender
    protocol call needs one. Per-request ``cookies=`` (deprecated by httpx) are the caller's and still sent."""

    def __init__(self, **options: Any) -> None:
        if "cookies" in options:
            raise ValueError("a lender client keeps no cookies")
        super().__init__(**options)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise ValueError("a lender client keeps no cookies")

    async def exchange(
        self, method: str, url: httpx.URL, headers: dict[str, str], body: bytes, timeouts: httpx.Timeout, limit: int
    ) -> tuple[int, bytes] | None:
        """One lender call and its whole answer (status, body read up to ``limit`` bytes, else
        ``providers.http_pool.AnswerTooLarge``) straight on the destination's aiohttp pool (``PinnedTransport``,
        ``LenderTransport``): the same guard, pinning, connections, timeouts and errors (httpx's) as ``send``, without
        building httpx's request and response (~0.1 ms of CPU a call: their headers, streams and the client's layers
        of auth, redirects and hooks, none of which a lender call uses). ``headers`` are all the request's but
        ``Host``. None when this client's transport for ``url`` is another (a test's ``MockTransport``): send
        through httpx then."""
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        transport = self._transport_for_url(url)
        if not isinstance(transport, PinnedTransport):
            return None
        return await transport.exchange(method, url, headers, body, timeouts, limit)


def lender_client(guard: DestinationGuard, *, timeout: float = 5.0, max_connections: int | None = None) -> LenderClient:
    """The client lender calls go through: every destination checked by ``guard`` (``PinnedTransport``, a pool per
    lender host of at most ``max_connections``), no redirects followed, no cookies kept."""
    options: dict[str, Any] = {}
    if max_connections is not None:
        options["limits"] = httpx.Limits(max_connections=max_connections)
    return LenderClient(
        timeout=httpx.Timeout(timeout), transport=PinnedTransport(guard, **options), follow_redirects=False
    )
