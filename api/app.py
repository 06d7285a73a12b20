"""The FastAPI application: ``/v1`` routers, API-key auth, problem+json errors, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import idempotency, logs, metrics, openapi, problems
from api.body_limit import MAX_REQUEST_BYTES, BodyLimit
from api.bootstrap import build_platform
from api.deps import declared_query_only, single_valued_query
from api.head import HeadAsGet
from api.heap import freeze_long_lived
from api.oauth import tokens_from_settings
from api.process_name import ProcessName
from api.routers import (
    api_keys,
    borrowers,
    credit_requests,
    decisions,
    health,
    kyc,
    loan_events,
    loans,
    oauth,
    providers,
    quotes,
    reconciliations,
    sanctions_reviews,
)
from api.routers import platform as discovery
from api.sanctions_reload import SanctionsListReloader, warm_name_index
from api.settings import Settings
from api.unexpected import UnexpectedErrors
from api.workers import Workers
from providers.registry_sync import follow_registrations


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = await build_platform(settings or Settings())
        app.state.platform = platform
        app.state.tokens = tokens_from_settings(platform.settings)
        workers = Workers().start(platform.settings, platform.database, platform.chains, platform.providers)
        app.state.workers = workers
        # Every unfinished accept (its process died) is driven to its end: at start-up, then as leases run out.
        recovery = asyncio.create_task(platform.acceptance.run_recovery(), name="accept-recovery")
        background = [recovery]
        if platform.settings.sanctions_reload_seconds > 0:  # every process, not a leased worker: each screens
            reloader = SanctionsListReloader(
                platform.database, platform.compliance, platform.settings.sanctions_reload_seconds
            )
            background.append(asyncio.create_task(reloader.run(), name="sanctions-list-reload"))
        if platform.settings.providers_reload_seconds > 0:  # every process: each quotes with its own registry
            follow = follow_registrations(platform.providers, platform.settings.providers_reload_seconds)
            background.append(asyncio.create_task(follow, name="provider-registrations"))
        try:
            # The sanctions name index (about a second of CPU for the SDN list) built in a worker thread before the
            # process listens (uvicorn binds only when the lifespan's start-up is done): no request, and no probe of
            # a balancer or of Kubernetes, meets a process that would make it wait for the build. Then everything
            # start-up built is frozen out of the garbage collector's passes (api.heap).
            await asyncio.to_thread(warm_name_index, platform.compliance)
            freeze_long_lived()
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await workers.stop()
            await platform.close()

    app = FastAPI(
        title="creditmesh",
        version="0.1.0",
        description="Ask for credit once; get ranked, signed, comparable quotes from HTTP lenders and DeFi pools; "
        "accept one with a wallet signature and get a loan enforced on-chain. Every operation that creates or moves "
        "something takes an optional `Idempotency-Key` header (listed among its parameters): a retry with the same "
        "key and body replays the first response (kept 24 hours; 5xx answers and 422 validation errors, which changed "
        "nothing, are not kept: the corrected request may reuse the key).",
        lifespan=lifespan,
        # stable operation ids for generated clients: the handler's name (unique across the routers)
        generate_unique_id_function=lambda route: route.name,
        dependencies=[Depends(single_valued_query), Depends(declared_query_only)],
    )
    problems.install(app)
    app.add_middleware(HeadAsGet)  # HEAD wherever GET: the routes see GET, the middlewares outside HEAD
    app.add_middleware(UnexpectedErrors)  # the innermost: every other middleware sees its 500 problem as an answer
    idempotency.install(app)  # inside the others: it stores what the handlers answered
    logs.install(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_REQUEST_BYTES)
    app.add_middleware(metrics.RequestMetrics)
    app.add_middleware(ProcessName)
    for router in (
        borrowers.router,
        kyc.router,
        credit_requests.router,
        quotes.router,
        loans.router,
        loan_events.router,
        health.router,
        providers.router,
        sanctions_reviews.router,
        metrics.router,
        discovery.router,
        api_keys.router,
        oauth.router,
        reconciliations.router,
        decisions.router,
    ):
        app.include_router(router)
    openapi.install(app)  # after the routers: OPTIONS answers for every path they serve
    return app
