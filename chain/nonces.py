"""Nonce allocation per (chain, account): no gap and no duplicate under hundreds of concurrent sends, without one
lock across accounts or chains, and never a question to the node per transaction (web3's ``fill_nonce`` asks
``eth_getTransactionCount`` each time, and two concurrent senders get the same answer).

Three implementations of one interface:

* ``LocalNonceAllocator`` — an in-process counter; holds **within one process only**.
* ``SqlNonceAllocator`` — a counter row per account locked with ``SELECT … FOR UPDATE``; on PostgreSQL it holds
  across processes. On SQLite (the local default) it holds within one process only: SQLite has no row locks, and
  the allocator serializes an account's allocations with an in-process lock. It binds the nonce to the intent in
  the same database transaction, so a crash right after allocation leaks nothing.
* ``RedisNonceAllocator`` — an atomic Lua script over a counter and a sorted set of released nonces; holds across
  processes.

Recovery: a nonce whose transaction never reached the chain (the node rejected it) is ``release``d and handed out
again before any new one; ``floor`` raises the counter to the chain's own transaction count (run at start-up and
when a nonce turns out to be taken by a transaction the platform did not send), dropping released nonces below it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from chain.errors import ChainError, IntentNotHeld, NonceError
from chain.types import Nonce
from store.chain import SIGNED, AttemptRecord, ChainRepository, IntentRecord, SqlChainStore

#: signs an intent's transaction under the nonce given (in the allocation's worker thread)
SignUnder = Callable[[Nonce], AttemptRecord]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Waiting:
    """One allocation waiting for its account's next group (with ``sign``: its signed attempt recorded with it)."""

    key: str
    owner: str | None
    future: asyncio.Future[tuple[Nonce, AttemptRecord | None]]
    sign: SignUnder | None = None
    intent: IntentRecord | None = None  # created in the allocation's transaction (``allocate_signed``'s ``create``)


class IntentExists(ChainError):
    """``allocate_signed`` was to create the intent, and one is stored under its key already: nothing was taken."""


@dataclass(frozen=True, slots=True)
class AccountRef:
    chain_id: int
    address: str  # checksummed


class NonceAllocator(Protocol):
    cross_process: bool
    # Whether ``allocate`` binds the nonce to its intent itself (the SQL allocator, in the intent's own database
    # transaction). One that does not leaves the binding to the signed attempt's write, and its nonce must be
    # released when that write is refused.
    binds_intents: bool

    async def allocate(self, account: AccountRef, intent_key: str, owner: str | None = None) -> Nonce:
        """The nonce ``intent_key`` will use; never handed out twice unless released. An allocator that binds
        raises ``IntentNotHeld`` (consuming nothing) when ``owner`` no longer holds the intent's lease."""
        ...

    async def release(self, account: AccountRef, nonce: Nonce) -> None:
        """``nonce`` will not reach the chain: hand it out again first."""
        ...

    async def floor(self, account: AccountRef, chain_nonce: Nonce, *, handed_out: Nonce | None = None) -> None:
        """The chain has used every nonce below ``chain_nonce``: never hand those out again. ``handed_out``: raise
        the counter to it too (the nonces the store's intents hold) while keeping the released nonces from
        ``chain_nonce`` up: the chain has not used them, and a later transaction the node queues waits for one."""
        ...

    async def handed_out(self, account: AccountRef) -> Nonce:
        """The counter: every nonce below it has been handed out (some perhaps released since), none above."""
        ...


class LocalNonceAllocator:
    """In-process counters; correct within one process only. No awaits inside, so no lock is needed."""

    cross_process = False
    binds_intents = False

    def __init__(self) -> None:
        self._next: dict[AccountRef, int] = {}
        self._released: dict[AccountRef, list[int]] = {}

    async def allocate(self, account: AccountRef, intent_key: str, owner: str | None = None) -> Nonce:
        released = self._released.get(account)
        if released:
            return Nonce(heapq.heappop(released))
        value = self._next.get(account, 0)
        self._next[account] = value + 1
        return Nonce(value)

    async def release(self, account: AccountRef, nonce: Nonce) -> None:
        if nonce < self._next.get(account, 0):
            heapq.heappush(self._released.setdefault(account, []), nonce)

    async def handed_out(self, account: AccountRef) -> Nonce:
        return Nonce(self._next.get(account, 0))

    async def floor(self, account: AccountRef, chain_nonce: Nonce, *, handed_out: Nonce | None = None) -> None:
        self._next[account] = max(self._next.get(account, 0), chain_nonce, handed_out or 0)
        kept = [n for n in self._released.get(account, []) if n >= chain_nonce]
        heapq.heapify(kept)
        self._released[account] = kept


class SqlNonceAllocator:
    """A counter row per account, locked for the allocation, in the chain store's database.

    Concurrent allocations of one account in this process are grouped: whoever finds the account idle drains
    every request waiting at that moment in one database transaction (lock the row, fence the intents, take released
    nonces first, then a contiguous range, bind each nonce to its intent, commit) — one row lock per group instead
    of per transaction, which is what lets hundreds of concurrent sends through.

    An allocation with an ``owner`` is fenced: its nonce is bound only while ``owner`` still holds the intent's
    unexpired lease (checked and write-locked in one statement before any nonce is taken). A manager that stalled
    past its lease and lost the intent to another gets ``IntentNotHeld``, and no nonce is consumed for it — binding
    one over the new owner's would leave a nonce that nobody sends, holding back every later transaction."""

    binds_intents = True

    def __init__(self, store: SqlChainStore, *, before_bind: Callable[[Sequence[str]], None] | None = None) -> None:
        self.store = store
        self.cross_process = store.cross_process
        self._before_bind = before_bind  # a test seam: run in the worker thread, the counter row locked
        self._locks: dict[AccountRef, asyncio.Lock] = {}
        self._waiting: dict[AccountRef, list[_Waiting]] = {}
        self._ensured: set[AccountRef] = set()

    def _lock(self, account: AccountRef) -> asyncio.Lock:
        return self._locks.setdefault(account, asyncio.Lock())

    def _ensure(self, repo: ChainRepository, account: AccountRef) -> None:
        if account not in self._ensured:
            repo.ensure_nonce_row(account.chain_id, account.address)
            self._ensured.add(account)

    def _forgetting(self, account: AccountRef, work: Callable[[ChainRepository], T]) -> Callable[[ChainRepository], T]:
        """``work``, forgetting the account's counter row when it fails: its unit of work is rolled back, a row
        created in it with it, and the next run (the store's own, after a deadlock) must create it again."""

        def run(repo: ChainRepository) -> T:
            try:
                return work(repo)
            except BaseException:
                self._ensured.discard(account)
                raise

        return run

    async def allocate(self, account: AccountRef, intent_key: str, owner: str | None = None) -> Nonce:
        future: asyncio.Future[tuple[Nonce, AttemptRecord | None]] = asyncio.get_running_loop().create_future()
        return (await self._allocate(account, _Waiting(intent_key, owner, future)))[0]

    async def allocate_signed(
        self,
        account: AccountRef,
        intent_key: str,
        owner: str | None,
        sign: SignUnder,
        create: IntentRecord | None = None,
    ) -> tuple[Nonce, AttemptRecord]:
        """``allocate``, and the intent's transaction signed under the nonce (``sign``, in the worker thread) and
        recorded as its first attempt (the intent ``signed``) in the same database transaction as the binding: one
        unit of work where the allocation's and then ``SqlChainStore.record_signed``'s were two (the allocation's
        fence holds the intent's row, so the write is its owner's). Raises ``IntentNotHeld`` as ``allocate`` does,
        or what ``sign`` raised; neither consumes a nonce.

        With ``create``, the intent itself is inserted in that transaction too (``SqlChainStore.create_intent``'s
        insert-if-absent, a third unit of work folded in): ``IntentExists``, nothing taken, when its key is stored
        already. The intent, its nonce and its signed attempt are then committed together or not at all."""
        future: asyncio.Future[tuple[Nonce, AttemptRecord | None]] = asyncio.get_running_loop().create_future()
        nonce, attempt = await self._allocate(account, _Waiting(intent_key, owner, future, sign, create))
        assert attempt is not None
        return nonce, attempt

    async def _allocate(self, account: AccountRef, waiting: _Waiting) -> tuple[Nonce, AttemptRecord | None]:
        self._waiting.setdefault(account, []).append(waiting)
        async with self._lock(account):
            if not waiting.future.done():
                batch, self._waiting[account] = self._waiting[account], []
                try:
                    outcomes = await self.store.run(
                        self._forgetting(account, lambda repo: self._allocate_many(repo, account, batch))
                    )
                except BaseException as err:
                    # the database's own error where it was one (unavailable, say: the API answers it as such)
                    failed = err if isinstance(err, SQLAlchemyError) else None
                    for each in batch:
                        if not each.future.done():
                            each.future.set_exception(
                                failed or NonceError(f"nonce allocation failed for {account}: {err}")
                            )
                            each.future.exception()  # mark retrieved: its caller may have been cancelled
                    raise
                for each, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        each.future.set_exception(outcome)
                        each.future.exception()  # mark retrieved: its caller may have been cancelled
                    else:
                        each.future.set_result(outcome)
        return await waiting.future

    def _allocate_many(
        self, repo: ChainRepository, account: AccountRef, batch: list[_Waiting]
    ) -> list[tuple[Nonce, AttemptRecord | None] | BaseException]:
        """Each waiting allocation's nonce (and signed attempt), or IntentNotHeld for an intent its owner no longer
        holds, or what its ``sign`` raised (nothing taken for either)."""
        self._ensure(repo, account)
        row = repo.lock_nonce_row(account.chain_id, account.address)
        if self._before_bind is not None:
            self._before_bind([waiting.key for waiting in batch])
        creating = [w.intent for w in batch if w.intent is not None]
        created = repo.add_intents(creating, self.store.dialect) if creating else set()
        # an intent created here is its owner's under a fresh lease, write-locked by its insert: not fenced again
        held: set[str] = {w.key for w in batch if w.owner is None or w.key in created}
        now = datetime.now(UTC)
        for owner in {w.owner for w in batch if w.owner is not None and w.intent is None}:
            held |= repo.fence([w.key for w in batch if w.owner == owner and w.intent is None], owner, now)
        bound = [w for w in batch if w.key in held and (w.intent is None or w.key in created)]
        free = repo.take_gaps(account.chain_id, account.address, len(bound))  # released nonces first, lowest first
        given_back = set(free)  # where a call signed again can repeat the hash of an attempt the node refused
        outcomes: dict[int, tuple[Nonce, AttemptRecord | None] | BaseException] = {}
        for waiting in bound:
            if free:
                nonce = Nonce(free.pop(0))
            else:
                nonce = Nonce(row.next_nonce)
                row.next_nonce = nonce + 1
            try:
                attempt = None if waiting.sign is None else waiting.sign(nonce)
            except Exception as err:  # this intent's own failure: its nonce goes to the next one
                outcomes[id(waiting)] = err
                free.insert(0, nonce)
                continue
            outcomes[id(waiting)] = (nonce, attempt)
        for left in free:  # a nonce left by a failed signature: never taken
            if left == row.next_nonce - 1:
                row.next_nonce = left
            else:
                repo.add_gap(account.chain_id, account.address, left)
        plain: list[dict[str, object]] = []
        signed: list[dict[str, object]] = []
        attempts: list[tuple[str, AttemptRecord]] = []
        for waiting in bound:
            outcome = outcomes[id(waiting)]
            if isinstance(outcome, BaseException):
                continue
            nonce, attempt = outcome
            if attempt is None:
                plain.append({"key": waiting.key, "nonce": nonce})
            else:
                signed.append({"key": waiting.key, "nonce": nonce, "status": SIGNED})
                attempts.append((waiting.key, attempt))
        # every nonce bound to its intent in one executemany (one UPDATE per intent cost 0.8 s per 500), the signed
        # ones with their status and their attempts in one multi-row insert
        repo.update_intents(plain)
        repo.update_intents(signed)
        repo.add_attempts(attempts, take_over=[a.tx_hash for _, a in attempts if a.nonce in given_back])
        return [outcomes.get(id(waiting), _refusal(waiting)) for waiting in batch]

    async def release(self, account: AccountRef, nonce: Nonce) -> None:
        await self.release_with(account, nonce, lambda repo: True)

    async def release_with(self, account: AccountRef, nonce: Nonce, write: Callable[[ChainRepository], bool]) -> bool:
        """``write`` (failing the intent that held ``nonce``: ``store.chain.rejecting``) and, when it answers True,
        ``release``, in one unit of work: a crash in between can leave neither a failed intent whose nonce is never
        handed out again (a gap) nor a released nonce whose intent is still followed. Whether ``write`` wrote."""

        def work(repo: ChainRepository) -> bool:
            if not write(repo):
                return False
            self._ensure(repo, account)
            row = repo.lock_nonce_row(account.chain_id, account.address)
            if nonce < row.next_nonce:
                repo.add_gap(account.chain_id, account.address, nonce)
            return True

        async with self._lock(account):
            return await self.store.run(self._forgetting(account, work))

    async def floor(self, account: AccountRef, chain_nonce: Nonce, *, handed_out: Nonce | None = None) -> None:
        def work(repo: ChainRepository) -> None:
            self._ensure(repo, account)
            row = repo.lock_nonce_row(account.chain_id, account.address)
            row.next_nonce = max(row.next_nonce, chain_nonce, handed_out or 0)
            repo.drop_gaps_below(account.chain_id, account.address, chain_nonce)

        async with self._lock(account):
            await self.store.run(self._forgetting(account, work))

    async def handed_out(self, account: AccountRef) -> Nonce:
        return Nonce(await self.store.run(lambda repo: repo.nonce_counter(account.chain_id, account.address)))

    async def released(self, account: AccountRef) -> list[Nonce]:
        """The nonces released and not handed out again, lowest first."""
        return [Nonce(n) for n in await self.store.run(lambda repo: repo.gaps(account.chain_id, account.address))]


def _refusal(waiting: _Waiting) -> ChainError:
    """Why ``waiting`` got no nonce: the intent it was to create exists, or its owner no longer holds it."""
    if waiting.intent is not None:
        return IntentExists(f"intent {waiting.key!r} exists")
    return IntentNotHeld(waiting.key, waiting.owner or "")


# KEYS[1] = next nonce counter, KEYS[2] = sorted set of released nonces; ARGV[1] = how many nonces.
# Released nonces first (lowest first), then a contiguous range from the counter.
_ALLOCATE = """
local want = tonumber(ARGV[1])
local out = {}
local released = redis.call('ZRANGE', KEYS[2], 0, want - 1)
for _, n in ipairs(released) do
  out[#out + 1] = tonumber(n)
  redis.call('ZREM', KEYS[2], n)
end
local rest = want - #released
if rest > 0 then
  local last = redis.call('INCRBY', KEYS[1], rest)
  for n = last - rest, last - 1 do out[#out + 1] = n end
end
return out
"""
_RELEASE = """
local next = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < next then redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1]) end
return 0
"""
_COUNTER = """
return tonumber(redis.call('GET', KEYS[1]) or '0')
"""
# ARGV[1] = the nonce below which released ones are dropped, ARGV[2] = the counter's floor (at least ARGV[1])
_FLOOR = """
local next = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[2]) > next then redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return 0
"""


class RedisNonceAllocator:
    """Atomic per-account allocation in Redis (Lua runs atomically); holds across processes.

    Concurrent allocations of one account in this process are grouped into one script call, as the SQL allocator
    groups them into one row lock: hundreds of concurrent sends cost a few round trips and a few connections (one
    call per allocation would need a connection each, beyond redis-py's pool of 100).

    The nonce is bound to its intent by the lifecycle's write of the signed attempt, after the allocation: a nonce
    allocated and never bound is lost — the process crashed or its submit was cancelled in between, the write failed,
    or a script call timed out after Redis ran it (the whole group's nonces). Nothing hands it out again (``floor``
    only raises the counter) and the account's later transactions wait on the node behind it, unbumped (a higher fee
    cannot help them), until someone sends under it. The SQL allocator binds in the allocation's own transaction and
    loses none; the platform uses it."""

    cross_process = True
    binds_intents = False

    def __init__(self, redis: Redis, prefix: str = "creditmesh:nonce", timeout: float = 5.0) -> None:
        self.redis, self.prefix, self.timeout = redis, prefix, timeout
        self._allocate: Any = redis.register_script(_ALLOCATE)
        self._release: Any = redis.register_script(_RELEASE)
        self._floor: Any = redis.register_script(_FLOOR)
        self._counter: Any = redis.register_script(_COUNTER)
        self._locks: dict[AccountRef, asyncio.Lock] = {}
        self._waiting: dict[AccountRef, list[asyncio.Future[Nonce]]] = {}

    def _keys(self, account: AccountRef) -> list[str]:
        base = f"{self.prefix}:{account.chain_id}:{account.address}"
        return [f"{base}:next", f"{base}:released"]

    async def _run(self, script: Any, account: AccountRef, *args: int) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await script(keys=self._keys(account), args=list(args))
        except (RedisError, TimeoutError) as err:
            raise NonceError(f"redis nonce allocator failed for {account}: {err}") from err

    async def allocate(self, account: AccountRef, intent_key: str, owner: str | None = None) -> Nonce:
        future: asyncio.Future[Nonce] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(account, []).append(future)
        async with self._locks.setdefault(account, asyncio.Lock()):
            if not future.done():
                batch, self._waiting[account] = self._waiting[account], []
                try:
                    nonces = await self._run(self._allocate, account, len(batch))
                except BaseException as err:  # every waiter of the batch learns it, not only this caller
                    error = err if isinstance(err, NonceError) else NonceError(f"allocation for {account}: {err!r}")
                    for waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(error)
                    if not isinstance(err, Exception):  # cancelled: propagate as is
                        future.exception()
                        raise
                else:
                    for waiter, nonce in zip(batch, nonces, strict=True):
                        waiter.set_result(Nonce(int(nonce)))
        return await future

    async def release(self, account: AccountRef, nonce: Nonce) -> None:
        await self._run(self._release, account, nonce)

    async def floor(self, account: AccountRef, chain_nonce: Nonce, *, handed_out: Nonce | None = None) -> None:
        await self._run(self._floor, account, chain_nonce, max(chain_nonce, handed_out or 0))

    async def handed_out(self, account: AccountRef) -> Nonce:
        return Nonce(int(await self._run(self._counter, account)))
