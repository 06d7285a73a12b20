"""The Redis clients of one process: each on a bounded pool of reused connections.

redis-py's ``Redis.from_url`` gives a client an unbounded pool — every command in flight beyond the idle connections
opens one more, so a process under load holds one connection per concurrent lender call — and builds the driver
information sent with ``CLIENT SETINFO`` anew for every connection it makes (``importlib.metadata.version("redis")``,
~1 ms each on a loaded machine: 8% of an API process at N = 3 in bench/scale.py). Here a client's pool holds at most
``max_connections``; a caller beyond them waits up to ``POOL_WAIT_SECONDS`` for one to come back (then a
``ConnectionError``, which the degrading stores treat as Redis not answering), and the driver information is built
once per process."""

from __future__ import annotations

import redis
import redis.asyncio
from redis.driver_info import DriverInfo

from risk.shared_state import REDIS_TIMEOUTS

#: connections of one async client: a Redis round trip is short, so a few serve many lender calls at once
ASYNC_POOL_SIZE = 16
#: connections of one synchronous client (the breaker store's worker threads and the event loop's own calls)
SYNC_POOL_SIZE = 8
#: how long a command waits for a free connection of a full pool before it fails like an unanswered Redis
POOL_WAIT_SECONDS = 2.0

_DRIVER_INFO = DriverInfo()  # redis-py's defaults (name, version), looked up once


def async_redis(url: str, max_connections: int = ASYNC_POOL_SIZE) -> redis.asyncio.Redis:
    """An async client of ``url`` with at most ``max_connections`` connections, kept and reused."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS, driver_info=_DRIVER_INFO, **REDIS_TIMEOUTS
    )
    return redis.asyncio.Redis.from_pool(pool)


def sync_redis(url: str, max_connections: int = SYNC_POOL_SIZE) -> redis.Redis:
    """A synchronous client of ``url`` with at most ``max_connections`` connections, kept and reused."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS, driver_info=_DRIVER_INFO, **REDIS_TIMEOUTS
    )
    return redis.Redis.from_pool(pool)
