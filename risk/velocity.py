"""Velocity and fraud checks: too many requests per borrower, wallet or IP in a sliding window, and one wallet
claimed by several identities.

The counters live behind ``VelocityStore``: ``InMemoryVelocityStore`` for one process and tests,
``RedisVelocityStore`` (sorted sets of event times, one per key) when ``CREDITMESH_REDIS_URL`` is set, so that the
limits hold across processes; a check is one round trip there (``VelocityStore.admit``: one script). Every key
expires: a window's events when they leave it (and the key with them), a wallet's claims ``claim_ttl_seconds`` after
the last one. ``check_velocity`` takes the time as an argument; it reads no clock.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from risk.errors import SubmissionLimitExceeded, VelocityLimitExceeded

#: how long a wallet's claims are remembered after the last one (one identity per wallet within it)
CLAIM_TTL_SECONDS = 90 * 86_400


class VelocityStore(Protocol):
    async def count(self, key: str, now: float, window_seconds: int) -> int:
        """The events of ``key`` in ``(now - window, now]``, recording nothing."""
        ...

    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        """Record one event for ``key`` at ``now``; return the events in ``(now - window, now]``, this one included."""
        ...

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        """Record that ``identity`` claims ``wallet``; return how many distinct identities claim it."""
        ...

    async def counts(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        """``count`` of each of ``keys``, in order (one round trip where the counters are shared)."""
        ...

    async def hits(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        """``hit`` on each of ``keys``, in order (one round trip where the counters are shared)."""
        ...

    async def admit(self, request: VelocityRequest, now: float) -> Admission:
        """``check_velocity``'s steps on this store (one round trip where the counters are shared): each counter
        counted, and the first at its limit refuses with nothing recorded; else the wallet's claim recorded, and too
        many identities refuse; else one hit on every counter."""
        ...


@dataclass(frozen=True, slots=True)
class VelocityRequest:
    """What ``VelocityStore.admit`` checks: ``keys`` each with its limit, the wallet claimed by ``identity`` (none
    without a wallet) and how many identities a wallet may have."""

    keys: tuple[str, ...]
    limits: tuple[int, ...]
    window_seconds: int
    wallet: str | None
    identity: str
    identities_per_wallet: int


@dataclass(frozen=True, slots=True)
class Admission:
    """``refused_by``: the index of the counter at its limit, ``len(keys)`` for the wallet's identities, None when
    admitted (its hits recorded); ``count``: that counter's count (or the wallet's identities) before this request."""

    refused_by: int | None
    count: int = 0


async def admit_in_steps(store: VelocityStore, request: VelocityRequest, now: float) -> Admission:
    """``VelocityStore.admit`` as three calls on ``store`` (its counts, the claim, its hits)."""
    counts = await store.counts(request.keys, now, request.window_seconds)
    for index, (count, limit) in enumerate(zip(counts, request.limits, strict=True)):
        if count >= limit:
            return Admission(index, count)
    if request.wallet:
        claims = await store.claim_wallet(request.wallet, request.identity)
        if claims > request.identities_per_wallet:
            return Admission(len(request.keys), claims)
    await store.hits(request.keys, now, request.window_seconds)
    return Admission(None)


@dataclass(frozen=True, slots=True)
class VelocityLimits:
    window_seconds: int = 3_600
    per_borrower: int = 5
    per_wallet: int = 5
    per_ip: int = 20
    identities_per_wallet: int = 1


class InMemoryVelocityStore:
    """One process. Keys whose events all left their window are dropped on a sweep every ``sweep_every`` hits;
    claims are kept for ``claim_ttl_seconds`` after the last and at most ``max_wallets`` wallets (oldest first)."""

    def __init__(
        self, claim_ttl_seconds: float = CLAIM_TTL_SECONDS, max_wallets: int = 100_000, sweep_every: int = 1_000
    ) -> None:
        self._events: dict[str, tuple[list[float], int]] = {}
        self._claims: OrderedDict[str, tuple[set[str], float]] = OrderedDict()
        self._claim_ttl, self._max_wallets, self._sweep_every = claim_ttl_seconds, max_wallets, sweep_every
        self._hits = 0
        self._now = 0.0

    def __len__(self) -> int:
        """Keys held (event windows and wallets): what a sweep bounds."""
        return len(self._events) + len(self._claims)

    def _live(self, key: str, now: float, window_seconds: int) -> list[float]:
        """The key's events in ``(now - window, now]`` and later ones, in time order; those that left the window
        dropped for good (as the shared store's ``ZREMRANGEBYSCORE`` drops them): a bisection, not a scan of every
        event of the window (a key may hold as many as its limit allows)."""
        events, _ = self._events.get(key, ([], window_seconds))
        del events[: bisect.bisect_right(events, now - window_seconds)]
        return events

    async def count(self, key: str, now: float, window_seconds: int) -> int:
        return len(self._live(key, now, window_seconds))

    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        events = self._live(key, now, window_seconds)
        bisect.insort(events, now)  # in time order even if the clock stepped back
        self._events[key] = (events, window_seconds)
        self._now = max(self._now, now)
        self._hits += 1
        if self._hits % self._sweep_every == 0:
            self.sweep(self._now)
        return len(events)

    def sweep(self, now: float) -> None:
        """Drop the keys with no event left in their window and the claims past their time to live."""
        self._events = {
            key: (live, window)
            for key, (events, window) in self._events.items()
            if (live := [t for t in events if t > now - window])
        }
        for wallet in [w for w, (_, last) in self._claims.items() if last <= now - self._claim_ttl]:
            del self._claims[wallet]

    async def counts(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        return [await self.count(key, now, window_seconds) for key in keys]

    async def hits(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        return [await self.hit(key, now, window_seconds) for key in keys]

    async def admit(self, request: VelocityRequest, now: float) -> Admission:
        # the claim is stamped with the latest time seen: this request's, not the last hit's (0 for a process's first
        # claim, which the next sweep then dropped, and the wallet was free for another identity)
        self._now = max(self._now, now)
        return await admit_in_steps(self, request, now)

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        name = wallet.lower()
        identities, _ = self._claims.pop(name, (set(), 0.0))
        identities.add(identity)
        self._claims[name] = (identities, self._now)
        while len(self._claims) > self._max_wallets:
            self._claims.popitem(last=False)
        return len(identities)


#: ``admit_in_steps`` as one script. KEYS: the counters, then the wallet's claims (when there is a wallet). ARGV: n
#: counters, now, the window's start, a counter's expiry, the identity ("" without a wallet), identities allowed, the
#: claims' expiry, then each counter's limit and each counter's new member. Times go as given (no Lua arithmetic).
_ADMIT = """
local n = tonumber(ARGV[1])
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[3])
    local count = redis.call('ZCARD', KEYS[i])
    if count >= tonumber(ARGV[7 + i]) then return {i - 1, count} end
end
if ARGV[5] ~= '' then
    redis.call('SADD', KEYS[n + 1], ARGV[5])
    local claims = redis.call('SCARD', KEYS[n + 1])
    redis.call('EXPIRE', KEYS[n + 1], ARGV[7])
    if claims > tonumber(ARGV[6]) then return {n, claims} end
end
for i = 1, n do
    redis.call('ZADD', KEYS[i], ARGV[2], ARGV[7 + n + i])
    redis.call('EXPIRE', KEYS[i], ARGV[4])
end
return {-1, 0}
"""


class RedisVelocityStore:
    """Sliding windows in Redis: ``ZADD`` the event, drop what left the window, count, in one MULTI/EXEC; every
    key carries an expiry (a window's key just past its window, a wallet's claims ``claim_ttl_seconds``)."""

    def __init__(
        self, redis: Redis, prefix: str = "creditmesh:risk:velocity", claim_ttl_seconds: int = CLAIM_TTL_SECONDS
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.claim_ttl_seconds = claim_ttl_seconds
        self._admit = redis.register_script(_ADMIT)
        # an event's member in its sorted set: unique across processes by a random prefix drawn once, within this one
        # by a counter (not a uuid4 an event: os.urandom releases the GIL, on the event loop)
        self._process, self._serial = uuid.uuid4().hex, itertools.count()

    def _member(self, now: float) -> str:
        return f"{now}:{self._process}-{next(self._serial)}"

    async def count(self, key: str, now: float, window_seconds: int) -> int:
        return (await self.counts([key], now, window_seconds))[0]

    async def hit(self, key: str, now: float, window_seconds: int) -> int:
        return (await self.hits([key], now, window_seconds))[0]

    async def counts(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        """Every key's count in ONE MULTI/EXEC (one round trip)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                name = f"{self.prefix}:{key}"
                pipe.zremrangebyscore(name, "-inf", now - window_seconds)
                pipe.zcard(name)
            results = await pipe.execute()
        return [int(found) for found in results[1::2]]

    async def hits(self, keys: Sequence[str], now: float, window_seconds: int) -> list[int]:
        """Every key's hit in ONE MULTI/EXEC (one round trip)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                name = f"{self.prefix}:{key}"
                pipe.zremrangebyscore(name, "-inf", now - window_seconds)
                pipe.zadd(name, {self._member(now): now})
                pipe.zcard(name)
                pipe.expire(name, window_seconds + 60)
            results = await pipe.execute()
        return [int(found) for found in results[2::4]]

    async def admit(self, request: VelocityRequest, now: float) -> Admission:
        """The three steps in ONE script (one round trip, atomic): ``_ADMIT``."""
        keys = [f"{self.prefix}:{key}" for key in request.keys]
        if request.wallet:
            keys.append(f"{self.prefix}:wallet-claims:{request.wallet.lower()}")
        args: list[str | int | float] = [len(request.keys), now, now - request.window_seconds]
        args += [request.window_seconds + 60, request.identity if request.wallet else "", request.identities_per_wallet]
        args += [self.claim_ttl_seconds, *request.limits, *(self._member(now) for _ in request.keys)]
        refused_by, count = await self._admit(keys=keys, args=args)
        return Admission(None if int(refused_by) < 0 else int(refused_by), int(count))

    async def claim_wallet(self, wallet: str, identity: str) -> int:
        name = f"{self.prefix}:wallet-claims:{wallet.lower()}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(name, identity)
            pipe.scard(name)
            pipe.expire(name, self.claim_ttl_seconds)
            results = await pipe.execute()
        return int(results[1])


def ip_subject(ip: str) -> str:
    """Who an address stands for in the per-IP limit: an IPv4 address itself (an IPv4-mapped IPv6 one as IPv4), an
    IPv6 address as its /64. One subscriber or host is given a whole /64 to pick addresses from, so counting each
    IPv6 address apart let one client pass the limit by rotating through its own network's addresses."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address (a test's label): counted as given
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


async def check_velocity(
    store: VelocityStore,
    limits: VelocityLimits,
    *,
    borrower_id: str,
    wallet: str | None,
    ip: str | None,
    now: float,
) -> None:
    """Raise ``VelocityLimitExceeded`` (reason R50 or R51) if this request would pass a limit; else count it.

    A refused request is not counted: a borrower (or someone sharing their IP) who is stopped is free again once
    the window has slid past their accepted requests, however often they retried meanwhile. ``ip`` is None when
    the client address is unknown (behind an untrusted proxy): then no per-IP limit applies rather than one shared
    by every client."""
    window = limits.window_seconds
    checks = [("borrower", f"borrower:{borrower_id}", limits.per_borrower)]
    if wallet:
        checks.append(("wallet", f"wallet:{wallet.lower()}", limits.per_wallet))
    if ip:
        checks.append(("ip", f"ip:{ip_subject(ip)}", limits.per_ip))
    # one round trip to a shared store (the counts, the claim and the hits in one script)
    request = VelocityRequest(
        tuple(key for _, key, _ in checks),
        tuple(limit for _, _, limit in checks),
        window,
        wallet or None,
        borrower_id,
        limits.identities_per_wallet,
    )
    admission = await store.admit(request, now)
    if admission.refused_by is None:
        return
    if admission.refused_by < len(checks):
        rule, key, limit = checks[admission.refused_by]
        raise VelocityLimitExceeded(rule, key, admission.count + 1, limit)
    assert wallet
    raise VelocityLimitExceeded(
        "wallet_identities", f"wallet:{wallet.lower()}", admission.count, limits.identities_per_wallet
    )


def velocity_reason_code(error: VelocityLimitExceeded) -> str:
    """R51 for a wallet claimed by several identities, R50 for a too-frequent requester (``risk.reasons``): the
    stops about the applicant. The per-IP limit's stop is none (a rate limit of the platform: its 429 has no reason
    code, ``api.problems``)."""
    return "R51" if error.rule == "wallet_identities" else "R50"


#: the window of ``check_kyc_submissions``: a day
KYC_SUBMISSION_WINDOW_SECONDS = 86_400


def _kyc_key(borrower_id: str) -> str:
    return f"kyc:{borrower_id}"


async def check_kyc_submissions(store: VelocityStore, borrower_id: str, limit: int, now: float) -> None:
    """Raise ``SubmissionLimitExceeded`` if the borrower has submitted ``limit`` identity verifications in the last
    day, counting nothing: each submission creates an applicant at the KYC provider, billed per applicant, so only
    one the provider took is counted (``record_kyc_submission``, after it answered). A refused submission, one the
    provider did not take (an outage: 503 with Retry-After, which the borrower is told to retry) and an
    ``Idempotency-Key`` replay (answered before the route runs) do not count. Concurrent submissions of one borrower
    may each pass before any is counted: the limit bounds a borrower's day, not a burst."""
    window = KYC_SUBMISSION_WINDOW_SECONDS
    (count,) = await store.counts((_kyc_key(borrower_id),), now, window)
    if count >= limit:
        # the store does not say when the oldest counted submission leaves the window: at most a whole window
        raise SubmissionLimitExceeded("identity verifications", f"borrower {borrower_id}", limit, window, window)


async def record_kyc_submission(store: VelocityStore, borrower_id: str, now: float) -> None:
    """Count one identity verification the KYC provider took (``check_kyc_submissions``)."""
    await store.hits((_kyc_key(borrower_id),), now, KYC_SUBMISSION_WINDOW_SECONDS)
