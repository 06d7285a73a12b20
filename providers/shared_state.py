"""Provider rate limits that degrade rather than fail: a token bucket per provider in Redis shared by every process
while Redis answers; when it errors, this process's own bucket (the same rate and burst) until Redis answers again,
tried every few seconds (``risk.shared_state.SharedStateHealth``: the change logged once each way). While degraded a
limit holds per process, not across them. Breaker state in Redis does not degrade yet (issue 18)."""

from __future__ import annotations

from providers.resilience import RateLimiter
from risk.shared_state import SHARED_STATE_ERRORS, SharedStateHealth


class DegradableRateLimiter:
    """``shared`` (a ``RedisRateLimiter``) while Redis answers, else ``local`` (a ``MemoryRateLimiter``)."""

    def __init__(self, shared: RateLimiter, local: RateLimiter, health: SharedStateHealth) -> None:
        self.shared, self.local, self.health = shared, local, health

    async def acquire(self, name: str, remaining: float) -> None:
        if self.health.worth_trying():
            try:
                await self.shared.acquire(name, remaining)
            except SHARED_STATE_ERRORS as err:
                self.health.failed(err)
            else:
                self.health.answered()
                return
        await self.local.acquire(name, remaining)
