"""Health: a public liveness probe (``/healthz``) that says nothing but "alive", a public readiness probe
(``/readyz``: 503 only when the database is down or a sanctions list is past its age; Redis and each chain's RPC
reported ``degraded`` with 200, so one dead chain never takes every process out of a load balancer; answered from a
shared probe run at most about once per ``CREDITMESH_READINESS_CACHE_SECONDS``, so anyone's flood of calls is no
flood of RPC calls), and the admins' per-chain health
(``/health``: head block, lag, last error and each RPC URL's breaker, the operator's and the keeper's accounts:
``degraded`` while one cannot pay for its servicing job's transactions, and the ledger's open loans of an earlier
deployment of the contracts: ``degraded`` while there are any, as nothing services them). ``/health`` is not public:
hosted RPC URLs
usually carry an API key, and last errors describe the infrastructure. Both read the chains' head blocks past the
RPC circuit breakers (``ChainClient.health``): a failing probe never opens a breaker real traffic uses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from aggregator.earlier_deployments import UnservicedLoans
from aggregator.servicing.sender_funds import sender_state
from api.bootstrap import Platform
from api.deps import AdminPrincipal, PlatformDep
from api.problems import problem
from chain.signers import Role
from chain.transactions import TransactionManager

PROBE_TIMEOUT_SECONDS = 3.0
#: the roles whose accounts a servicing job sends from, each shown under its name where this process has its key
SERVICING = (Role.OPERATOR, Role.KEEPER)

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers requests (for load balancers and process supervisors; no key needed)."""
    return {"status": "ok"}


@router.get("/health")
async def health(_: AdminPrincipal, platform: PlatformDep) -> dict[str, Any]:
    """Per-chain health for admins: head block, lag, last error and each RPC URL with its breaker, and where this
    process has the operator's or the keeper's key that account (``operator``, ``keeper``: ``degraded`` while the node
    refused its transactions for its funds and its balance still cannot pay for them: the default job defers its
    ``markDefault``, ``cancelUnfunded``, holds and releases meanwhile, the keeper its liquidations, impairments and
    collateral claims), and the loans the ledger shows open of an earlier CreditAggregator than the chain's
    deployment record names (``earlier_deployment_loans``: their ``count``, by ``contracts``; ``degraded`` while there
    are any: nothing services them; read from the database at the request); the versions of the sanctions lists and
    jurisdiction rules in use. Chains and every entry are asked concurrently, each within the probe timeout: a chain
    that answers badly or not in time is shown not ok with its error, beside the others."""
    names = list(platform.chains)
    unserviced = getattr(platform, "unserviced_loans", None)
    statuses, accounts, earlier = await asyncio.gather(
        asyncio.gather(*(platform.chains[name].client.health(within=PROBE_TIMEOUT_SECONDS) for name in names)),
        asyncio.gather(*(_senders(platform.chains[name]) for name in names)),
        asyncio.gather(*(_earlier_deployment_loans(unserviced, platform.chains[name]) for name in names)),
    )
    chains: dict[str, Any] = {}
    for name, status, sending, loans in zip(names, statuses, accounts, earlier, strict=True):
        chains[name] = {
            "chain_id": status.chain_id,
            "ok": status.healthy,
            "head_block": status.head_block,
            "lag_seconds": status.lag_seconds,
            "last_error": status.last_error,
            "rpc": [{"url": endpoint.url, "breaker": endpoint.breaker} for endpoint in status.endpoints],
        }
        chains[name].update(sending)
        if loans is not None:
            chains[name]["earlier_deployment_loans"] = loans
    entries = [*(role.value for role in SERVICING), "earlier_deployment_loans"]
    healthy = all(c["ok"] and all(_ok(c, entry) for entry in entries) for c in chains.values())
    return {
        "status": "ok" if healthy else "degraded",
        "chains": chains,
        "lists": platform.compliance.versions(),  # the sanctions lists and rules this process screens with now
    }


def _ok(chain: dict[str, Any], entry: str) -> bool:
    """Whether ``chain``'s ``entry`` (an account, the earlier deployments' loans) is ``ok``, or not shown."""
    return bool(chain.get(entry, {}).get("status", "ok") == "ok")


async def _earlier_deployment_loans(unserviced: UnservicedLoans | None, chain: Any) -> dict[str, Any] | None:
    """The open loans of earlier deployments on ``chain`` (``UnservicedLoans.read``: one indexed query), within the
    probe timeout; None where this process does not read them."""
    if unserviced is None:
        return None
    try:
        found = await asyncio.wait_for(asyncio.to_thread(unserviced.read, chain.record), PROBE_TIMEOUT_SECONDS)
    except Exception as err:  # the database did not answer in time: said, not raised
        return {"count": None, "contracts": {}, "status": "unknown", "detail": type(err).__name__}
    return found.as_json()


async def _senders(chain: Any) -> dict[str, dict[str, Any]]:
    """The servicing roles' accounts of ``chain`` by role (``operator``, ``keeper``), each where this process has
    its key."""
    held = [role for role in SERVICING if role in getattr(chain, "senders", {})]
    states = await asyncio.gather(*(_sender(chain, chain.senders[role]) for role in held))
    return {role.value: state for role, state in zip(held, states, strict=True)}


async def _sender(chain: Any, sender: TransactionManager) -> dict[str, Any]:
    """The account of ``sender`` on ``chain`` (``sender_funds.sender_state``), within the probe timeout."""
    try:
        state = await asyncio.wait_for(sender_state(chain.client, sender), PROBE_TIMEOUT_SECONDS)
    except Exception as err:  # the store or the node did not answer in time: said, not raised
        return {"address": sender.account.address, "status": "unknown", "detail": type(err).__name__}
    return state.as_json()


@router.get("/readyz")
async def readyz(platform: PlatformDep) -> JSONResponse:
    """Ready to serve: 503 naming the failing part only when the database does not answer or a sanctions list is
    older than its maximum age (nothing could be screened); Redis and each chain's RPC are reported ``degraded`` with
    200. Names only parts, never URLs or errors (no key needed). Answered from the platform's shared probe
    (``api.readiness``): one run for every caller at a time, its result reused for
    ``CREDITMESH_READINESS_CACHE_SECONDS``, so callers, however many, never make more than about one read of each part
    per that interval."""
    checks = await platform.readiness.result(lambda: _checks(platform))
    failing = [part for part in ("database", "sanctions_lists") if checks[part] != "ok"]
    if failing:
        detail = "not ready: " + ", ".join(f"{part} {checks[part]}" for part in failing)
        return problem(503, "not-ready", "Not ready", detail, "/readyz", failing=failing, checks=checks)
    degraded = checks["redis"] == "degraded" or "degraded" in checks["chains"].values()
    return JSONResponse({"status": "degraded" if degraded else "ready", "checks": checks})


async def _checks(platform: Platform) -> dict[str, Any]:
    """Every part's state, read now: the database, the sanctions lists' ages, Redis and each chain's head block
    (``ChainClient.health``: past the RPC breakers, so a failing probe opens none real traffic uses)."""
    database, sanctions = await asyncio.gather(_database(platform), asyncio.to_thread(_sanctions, platform))
    chain_names = list(platform.chains)
    states = await asyncio.gather(_redis(platform), *(_chain(platform, name) for name in chain_names))
    return {
        "database": database,
        "sanctions_lists": sanctions,
        "redis": states[0],
        "chains": dict(zip(chain_names, states[1:], strict=True)),
    }


async def _database(platform: Platform) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(platform.database.ping), PROBE_TIMEOUT_SECONDS)
    except Exception:
        return "down"
    return "ok"


def _sanctions(platform: Platform) -> str:
    screen, now = platform.compliance.screen, datetime.now(UTC)
    for version, max_age in (
        (screen.addresses.version, screen.policy.address_list_max_age),
        (screen.names.version, screen.policy.name_list_max_age),
    ):
        if now - version.published > max_age:
            return f"{version.name} past its maximum age of {max_age.days} days"
    return "ok"


async def _redis(platform: Platform) -> str:
    """``redis_state``, and ``degraded`` too while any state shared through Redis (velocity limits, the providers'
    breakers and rate limits) is served from this process's own: a Redis that takes the probe's write may still
    refuse what they send (a script error), and it is the limits that are no longer shared."""
    if platform.readiness_redis is None:
        return "not configured"
    state = await redis_state(platform.readiness_redis)
    if any(shared.serving_locally() for shared in platform.shared_state):
        return "degraded"
    return state


#: the key ``redis_state`` writes (with a short expiry): one for every process, written at most once per
#: ``CREDITMESH_READINESS_CACHE_SECONDS`` by each (``/readyz`` answers from its shared probe)
PROBE_KEY = "creditmesh:readyz"


async def redis_state(client: Redis) -> str:
    """``ok`` when ``client`` (the platform's kept pool: a probe opens no connection of its own) takes a write
    within the probe timeout, else ``degraded``. A write, not a PING: a Redis at its memory limit (``noeviction``)
    or a read-only replica after a failover answers a PING but refuses the counters' writes."""
    try:
        await asyncio.wait_for(client.set(PROBE_KEY, b"1", px=10_000), PROBE_TIMEOUT_SECONDS)
    except Exception:
        return "degraded"
    return "ok"


async def _chain(platform: Platform, name: str) -> str:
    try:
        status = await platform.chains[name].client.health(within=PROBE_TIMEOUT_SECONDS)
    except Exception:
        return "degraded"
    return "ok" if status.healthy else "degraded"
