"""How hard the platform protects itself from one provider: breaker, timeouts, retries, bulkhead, rate limit."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ResiliencePolicy(BaseModel):
    """Per provider; every field has a default that suits an HTTP lender answering in tens of milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_max: int = Field(default=5, ge=1, le=1_000)
    reset_timeout_seconds: float = Field(default=10.0, gt=0, le=3_600)
    half_open_max_calls: int = Field(default=1, ge=1, le=100)
    success_threshold: int = Field(default=1, ge=1, le=100)
    call_timeout_seconds: float = Field(
        default=1.5,
        gt=0,
        le=60,
        description="the provider's own time limit per attempt; keep it below the fan-out deadline (2 s by default): "
        "only a call that outlives this limit fails the provider, one the deadline ends first records no outcome",
    )
    quote_budget_seconds: float = Field(default=2.0, gt=0, le=60, description="deadline when the caller sets none")
    quote_attempts: int = Field(default=2, ge=1, le=5)
    retry_base_seconds: float = Field(default=0.05, ge=0, le=5)
    retry_max_seconds: float = Field(default=0.5, ge=0, le=10)
    accept_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_concurrency: int = Field(default=32, ge=1, le=10_000)
    rate_per_second: float = Field(default=100.0, gt=0, le=100_000)
    burst: int = Field(default=100, ge=1, le=100_000)
    health_window: int = Field(default=200, ge=10, le=10_000)
