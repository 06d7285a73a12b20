"""Units of work for the chain store, run off the event loop, and the group commit that lets the lifecycle persist
hundreds of concurrent transactions in a few statements and one commit per moment instead of per transaction.

They run on the chain store's own threads (``CHAIN_THREADS``, one pool per process shared by every chain store), not
the event loop's default executor: that one has min(32, CPUs + 4) threads — six on two cores — shared with the whole
request path, and a loaded API process kept the relay's submit (its intent, then its nonce with the signed attempt)
and the intents' lease renewals queued behind its own database work, as it had kept the accepts' steps
(``aggregator/_accept_lease.py``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from store.chain_records import AttemptRecord
from store.chain_repository import ChainRepository
from store.chain_rows import SENT, SIGNED

T = TypeVar("T")
Item = TypeVar("Item")

#: threads for the chain stores' units of work in one process (each holds a pooled connection while it runs; the
#: engine's pool has 10 + 20): one batch per operation is in flight at a time, so a few suffice for any load
CHAIN_THREADS = 8
_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()
#: how often a unit of work PostgreSQL picks as a deadlock's victim is run (the first run included)
DEADLOCK_ATTEMPTS = 5
#: SQLSTATEs of a transaction PostgreSQL rolled back whole so that another could go on: deadlock_detected and
#: serialization_failure
_RUN_AGAIN = frozenset({"40P01", "40001"})


def chain_threads() -> ThreadPoolExecutor:
    """The process's pool for chain-store work, started at first use (its threads start as work arrives)."""
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(max_workers=CHAIN_THREADS, thread_name_prefix="chain-db")
        return _threads


def _lost_to_a_deadlock(err: BaseException) -> bool:
    """Units of work on several intents update their rows in whatever order their statements meet them (a lease
    renewal or a claim by its WHERE clause, a batch by its keys), so two of them in flight at once — a manager's
    renewal and its watcher's outcomes, or two processes' — can deadlock; PostgreSQL then aborts one of them."""
    return isinstance(err, OperationalError) and getattr(err.orig, "sqlstate", None) in _RUN_AGAIN


_ON_DEADLOCK = Retrying(
    retry=retry_if_exception(_lost_to_a_deadlock),
    stop=stop_after_attempt(DEADLOCK_ATTEMPTS),
    wait=wait_random_exponential(multiplier=0.01, max=0.2),
    reraise=True,
)


async def _off_loop(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on the chain store's threads, context variables included (as ``asyncio.to_thread``)."""
    call = functools.partial(contextvars.copy_context().run, work, *args)
    return await asyncio.get_running_loop().run_in_executor(chain_threads(), call)


class UnitsOfWork:
    """Units of work on the chain tables, each run in a worker thread: one at a time (``run``) or grouped with the
    others of the same operation (``run_batched``)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        self.dialect = bind.dialect.name if bind is not None else "unknown"
        self._batches: dict[Callable[..., Any], list[tuple[Any, asyncio.Future[Any]]]] = {}
        self._draining: set[Callable[..., Any]] = set()
        self._drainers: set[asyncio.Task[None]] = set()

    @property
    def cross_process(self) -> bool:
        """Whether the nonce counter holds across processes (PostgreSQL row locks), not only within one."""
        return self.dialect == "postgresql"

    def _unit(self, work: Callable[[ChainRepository], T]) -> T:
        """One committed unit of work; run again whole when PostgreSQL aborted it to break a deadlock (its
        transaction was rolled back entirely, so nothing of the first run stays)."""
        result: T = _ON_DEADLOCK.copy()(self._unit_once, work)
        return result

    def _unit_once(self, work: Callable[[ChainRepository], T]) -> T:
        with self.sessions() as session:
            result = work(ChainRepository(session))
            session.commit()
            return result

    async def run(self, work: Callable[[ChainRepository], T]) -> T:
        """Run ``work`` in one committed unit of work off the event loop."""
        return await _off_loop(self._unit, work)

    async def run_batched(self, operation: Callable[[ChainRepository, list[Item]], list[T]], item: Item) -> T:
        """Run ``operation`` over ``item`` together with the other items of the same operation: one unit of work
        (a few statements) per batch instead of a few statements and a commit per item. One batch of an operation
        is in flight at a time; the items that arrive meanwhile form the next (group commit), so batches grow with
        the load. Each caller resumes with its own result once its batch is committed; if a batch fails, each of its
        items is re-run alone, so one bad item fails only its own caller."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._batches.setdefault(operation, []).append((item, future))
        if operation not in self._draining:  # drained in a task: a cancelled caller stops no one else's batch
            self._draining.add(operation)
            drainer = asyncio.get_running_loop().create_task(self._drain(operation))
            self._drainers.add(drainer)  # the loop keeps only a weak reference to a task
            drainer.add_done_callback(self._drainers.discard)
        return await future

    async def _drain(self, operation: Callable[[ChainRepository, list[Any]], list[Any]]) -> None:
        try:
            while batch := self._batches.pop(operation, []):
                await self._commit_batch(operation, batch)
        finally:
            self._draining.discard(operation)

    async def _commit_batch(
        self, operation: Callable[[ChainRepository, list[Any]], list[Any]], batch: list[tuple[Any, asyncio.Future[Any]]]
    ) -> None:
        items = [item for item, _ in batch]
        try:
            results = await _off_loop(self._unit, lambda repo: operation(repo, items))
        except Exception:
            for item, future in batch:
                try:
                    result = (await self.run(_alone(operation, item)))[0]
                except Exception as err:
                    if not future.done():
                        future.set_exception(err)
                else:
                    if not future.done():
                        future.set_result(result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _alone(
    operation: Callable[[ChainRepository, list[Item]], list[T]], item: Item
) -> Callable[[ChainRepository], list[T]]:
    return lambda repo: operation(repo, [item])


def record_signed_batch(
    repo: ChainRepository, items: list[tuple[str, AttemptRecord, str | None, str | None]]
) -> list[bool]:
    """Signed attempts of many intents: one locking read of their owners, one executemany of the intents' status
    and nonce, one multi-row insert of the attempts; an intent another owner holds now gets nothing written."""
    owners: dict[str, str | None] = {}
    for key, _, _, owner in items:
        owners[key] = owner
    held = repo.held_by(owners)
    written = [(key, attempt, replaces) for key, attempt, replaces, _ in items if key in held]
    repo.update_intents(
        [{"key": key, "status": SIGNED if replaces is None else SENT, "nonce": a.nonce} for key, a, replaces in written]
    )
    # a first attempt here (the Local and Redis allocators', a resumed intent's) may be signed at a nonce given back,
    # where the same call repeats the hash of the attempt the node refused, and a fee bump the node refused (the
    # account short of funds for it) is signed again as the same bytes while the market has not moved
    # (``add_attempts``): one DELETE a batch
    repo.add_attempts([(key, attempt) for key, attempt, _ in written], take_over=[a.tx_hash for _, a, _ in written])
    return [key in held for key, _, _, _ in items]
