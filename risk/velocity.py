"""Velocity and fraud checks: too many requests per borrower, wallet or IP in a sliding window, and one wallet
claimed by several identities.

The counters live behind ``VelocityStore``: ``InMemoryVelocityStore`` for one process and tests,
``RedisVelocityStore`` (sorted sets of event times, one per key) when ``CREDITMESH_REDIS_URL`` is set, so that the
limits hold across processes. ``check_velocity`` takes the time as an argument; it reads no clock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from risk.errors import VelocityLimitExceeded


class VelocityStore(Protocol):
    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        """Record one event for ``key`` at ``now``; return the events in ``(now - window, now]``, this one included."""
        ...

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        """Record that ``identity`` claims ``wallet``; return how many distinct identities claim it."""
        ...


@dataclass(frozen=True, slots=True)
class VelocityLimits:
    window_seconds: int = 3_600
    per_borrower: int = 5
    per_wallet: int = 5
    per_ip: int = 20
    identities_per_wallet: int = 1


class InMemoryVelocityStore:
    def __init__(self) -> None:
        self._events: dict[str, list[float]] = defaultdict(list)
        self._claims: dict[str, set[str]] = defaultdict(set)

    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        events = [t for t in self._events[key] if t > now - window_seconds]
        events.append(now)
        self._events[key] = events
        return len(events)

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        self._claims[wallet.lower()].add(identity)
        return len(self._claims[wallet.lower()])


class RedisVelocityStore:
    """Sliding windows in Redis: ``ZADD`` the event, drop what left the window, count, in one MULTI/EXEC."""

    def __init__(self, redis: Redis, prefix: str = "creditmesh:risk:velocity") -> None:
        self.redis = redis
        self.prefix = prefix

    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        name = f"{self.prefix}:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - window_seconds)
            pipe.zadd(name, {f"{now}:{uuid.uuid4().hex}": now})
            pipe.zcard(name)
            pipe.expire(name, window_seconds + 60)
            results = await pipe.execute()
        return int(results[2])

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        name = f"{self.prefix}:wallet-claims:{wallet.lower()}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(name, identity)
            pipe.scard(name)
            results = await pipe.execute()
        return int(results[1])


async def check_velocity(
    store: VelocityStore,
    limits: VelocityLimits,
    *,
    borrower_id: str,
    wallet: str | None,
    ip: str | None,
    now: float,
) -> None:
    """Count this request and raise ``VelocityLimitExceeded`` (reason R50 or R51) if any limit is passed.

    Every counter is incremented before any is judged, so a request that is stopped still counts: retrying in a
    loop does not reset the window."""
    window = limits.window_seconds
    checks = [("borrower", f"borrower:{borrower_id}", limits.per_borrower)]
    if wallet:
        checks.append(("wallet", f"wallet:{wallet.lower()}", limits.per_wallet))
    if ip:
        checks.append(("ip", f"ip:{ip}", limits.per_ip))
    counts = [(rule, key, await store.hit(key, now, window), limit) for rule, key, limit in checks]
    claims = await store.claim_wallet(wallet, borrower_id) if wallet else 0
    for rule, key, count, limit in counts:
        if count > limit:
            raise VelocityLimitExceeded(rule, key, count, limit)
    if wallet and claims > limits.identities_per_wallet:
        raise VelocityLimitExceeded(
            "wallet_identities", f"wallet:{wallet.lower()}", claims, limits.identities_per_wallet
        )


def velocity_reason_code(error: VelocityLimitExceeded) -> str:
    """R51 for a wallet claimed by several identities, R50 for a too-frequent requester (``risk.reasons``)."""
    return "R51" if error.rule == "wallet_identities" else "R50"
