"""The address a request comes from, for per-source limits (velocity, refused webhooks).

The TCP peer is the client unless it is one of the configured trusted proxies (``CREDITMESH_TRUSTED_PROXIES``);
only then is ``X-Forwarded-For`` read, right to left, skipping trusted proxies. Nothing is assumed: without trusted
proxies the header is ignored (anyone can write it), and a trusted proxy that sends no usable header gives no
address (the caller then applies no per-address limit rather than lumping every client into one)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from fastapi import Request

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = "X-Forwarded-For"


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def in_networks(host: str, networks: Sequence[IpNetwork]) -> bool:
    """Whether ``host`` is an address in one of ``networks`` (a name, or no address at all: never)."""
    address = _address(host)
    return address is not None and any(address in network for network in networks)


def client_address(request: Request, trusted_proxies: Sequence[IpNetwork]) -> str | None:
    peer = _address(request.client.host) if request.client else None
    if peer is None:
        return None
    if not any(peer in network for network in trusted_proxies):
        return str(peer)
    hops = request.headers.get(FORWARDED_FOR, "").split(",")
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None
        if not any(address in network for network in trusted_proxies):
            return str(address)
    return None
