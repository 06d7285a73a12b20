"""``/metrics`` in the Prometheus text format (prometheus-client): HTTP requests and their latency by route template
and status, the aggregator's fan-out outcomes per provider, and each chain RPC endpoint's circuit breaker. The
endpoint is public like ``/healthz`` (scrapers carry no key); no label carries a URL, a key or an id, nor anything a
client chose freely (a route template, not its path; a standard method or ``other``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import aggregator.metrics  # noqa: F401  (registers the aggregator's counters)

REQUESTS = Counter(
    "creditmesh_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "creditmesh_http_request_seconds", "HTTP request latency by method and route template", ["method", "route"]
)
BREAKER_STATES = ("closed", "half-open", "open")
#: the methods counted under their own name: any other (a server may pass made-up ones on) is counted as ``other``,
#: so a client cannot add a series per method it makes up
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})

router = APIRouter(tags=["health"])


class RequestMetrics:
    """Counts every HTTP answer by its route's template (``/v1/quotes/{quote_id}``), never the raw path, and its
    method when standard (``other`` else)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status, recorded = time.perf_counter(), 500, False

        def record() -> None:
            nonlocal recorded
            recorded = True
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in STANDARD_METHODS else "other"
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not recorded:
                record()  # before the last byte leaves: a client that saw the answer sees it counted
            await send(message)

        try:
            await self._app(scope, receive, send_status)
        finally:
            if not recorded:
                record()


class ChainBreakers(Collector):
    """Each chain RPC endpoint's breaker state at scrape time (1 for the current state), by chain and endpoint
    index (the URL may carry a key)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "creditmesh_chain_rpc_breaker_state",
            "Chain RPC endpoint circuit breaker state",
            labels=["chain", "endpoint", "state"],
        )
        platform = getattr(self._app.state, "platform", None)
        for name, chain in platform.chains.items() if platform is not None else ():
            for index, endpoint in enumerate(chain.client.provider.endpoints):
                current = str(endpoint.breaker.current_state)
                for state in BREAKER_STATES:
                    family.add_metric([name, str(index), state], 1.0 if current == state else 0.0)
        yield family


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format: request counts by route and status, latency by route, fan-out outcomes per provider,
    chain RPC breaker states (no key needed, like ``/healthz``)."""
    breakers = CollectorRegistry(auto_describe=True)
    breakers.register(ChainBreakers(request.app))
    return Response(generate_latest(REGISTRY) + generate_latest(breakers), media_type=CONTENT_TYPE_LATEST)
