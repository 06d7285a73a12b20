"""What a simulated lender is: its id and secret, its latency distribution, how it fails, how it prices. Plain
models (no server imports), so the settings can name the default fleet without starting anything."""

from __future__ import annotations

import random
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from providers.sim.pricing import PricingSpec

LOCAL_SIM_SECRET = "sim-lender-local-secret"  # noqa: S105 - the local simulated lenders' published secret
DEFAULT_PORT = 8600

FailureMode = Literal[
    "none",
    "timeout",
    "error_5xx",
    "malformed_json",
    "schema_violation",
    "negative_rate",
    "expired_offer",
    "slow_body",
    "flapping",
    "wrong_schedule",
]


class LatencySpec(BaseModel):
    """How long the lender thinks before answering: ``fixed`` (``ms``), ``uniform`` (``low_ms``..``high_ms``) or
    ``lognormal`` (median ``ms``, shape ``sigma``)."""

    model_config = ConfigDict(extra="forbid")

    distribution: Literal["fixed", "uniform", "lognormal"] = "fixed"
    ms: float = Field(default=20, ge=0)
    low_ms: float = Field(default=10, ge=0)
    high_ms: float = Field(default=40, ge=0)
    sigma: float = Field(default=0.4, ge=0, le=3)

    def sample(self, rng: random.Random) -> float:
        """Seconds."""
        if self.distribution == "uniform":
            return rng.uniform(self.low_ms, self.high_ms) / 1000
        if self.distribution == "lognormal":
            return rng.lognormvariate(0, self.sigma) * self.ms / 1000
        return self.ms / 1000


class FailureSpec(BaseModel):
    """How the lender misbehaves on a ``rate`` fraction of quote calls.

    ``timeout`` answers correctly after ``hang_seconds``; ``error_5xx`` answers ``status_code``; ``malformed_json``
    sends a truncated body; ``schema_violation`` a body of the wrong shape; ``negative_rate`` an offer at a negative
    rate; ``expired_offer`` an offer that expired an hour ago; ``slow_body`` trickles a correct body over
    ``slow_body_seconds``; ``flapping`` alternates ``period_seconds`` healthy and ``period_seconds`` answering 503;
    ``wrong_schedule`` sends an amortizing offer whose first payment is a cent more than its terms give."""

    model_config = ConfigDict(extra="forbid")

    mode: FailureMode = "none"
    rate: float = Field(default=1.0, ge=0, le=1)
    hang_seconds: float = Field(default=5.0, ge=0, le=600)
    status_code: int = Field(default=503, ge=500, le=599)
    slow_body_seconds: float = Field(default=5.0, ge=0, le=600)
    period_seconds: float = Field(default=2.0, gt=0, le=3_600)

    def failing_now(self, rng: random.Random, now: float | None = None) -> bool:
        if self.mode == "none":
            return False
        if self.mode == "flapping":
            return int((time.time() if now is None else now) / self.period_seconds) % 2 == 1
        return rng.random() < self.rate


class InstallmentProduct(BaseModel):
    """An amortizing product: equal installments at ``frequency`` across the requested term (as many whole periods
    as fit after the first, at least ``min_installments``, else the lender offers a single payment), interest under
    ``day_count``; ``first_due_days`` after the start makes an odd first period; ``balloon_bps`` of the principal is
    left for the last payment. With ``send_payments`` the lender sends the payments it computed (creditmesh checks
    them)."""

    model_config = ConfigDict(extra="forbid")

    frequency: Literal["monthly", "semimonthly", "biweekly", "weekly", "quarterly"] = "monthly"
    day_count: Literal["30/360", "actual/365", "actual/actual"] = "30/360"
    first_due_days: int | None = Field(default=None, ge=1, le=180)
    balloon_bps: int = Field(default=0, ge=0, lt=10_000)
    min_installments: int = Field(default=2, ge=1)
    send_payments: bool = True


class SimLender(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lender_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    secret: str = Field(default=LOCAL_SIM_SECRET, min_length=8)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    failure: FailureSpec = Field(default_factory=FailureSpec)
    pricing: PricingSpec = Field(default_factory=PricingSpec)
    installments: InstallmentProduct | None = Field(default=None, description="None: single payment at maturity")
    offer_ttl_seconds: int = Field(default=900, ge=1)
    seed: int = 0
    #: the creditor it lends as (made up: a simulated lender), which the platform's notices name; None: none on file
    legal_name: str | None = Field(default=None, min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=400)


DEFAULT_FLEET: tuple[SimLender, ...] = (
    SimLender(
        lender_id="sim-bank",
        latency=LatencySpec(distribution="lognormal", ms=25, sigma=0.3),
        legal_name="Simulated Bank, N.A. (a simulated lender)",
        address="100 Devnet Avenue, Localhost, ST 00001 (not a real address)",
    ),
    SimLender(
        lender_id="sim-credit-union",
        latency=LatencySpec(distribution="uniform", low_ms=30, high_ms=80),
        pricing=PricingSpec(
            grade_rate_bps={1: 600, 2: 760, 3: 1_150, 4: 1_650, 5: 2_400},
            fee_bps=50,
            max_amount_units=25_000,
            worst_grade=4,
        ),
        seed=1,
        legal_name="Simulated Federal Credit Union (a simulated lender)",
        address="200 Devnet Avenue, Localhost, ST 00001 (not a real address)",
    ),
    SimLender(
        lender_id="sim-fintech",
        latency=LatencySpec(distribution="lognormal", ms=60, sigma=0.6),
        pricing=PricingSpec(
            grade_rate_bps={1: 700, 2: 850, 3: 1_050, 4: 1_400, 5: 1_950},
            term_bps_per_30_days=10,
            fee_bps=150,
            risky_grade_max_units=50_000,
        ),
        installments=InstallmentProduct(),  # monthly installments when the term holds two months or more
        seed=2,
        legal_name="Simulated Fintech Lending, Inc. (a simulated lender)",
        address="300 Devnet Avenue, Localhost, ST 00001 (not a real address)",
    ),
)


def lender_url(base_url: str, lender_id: str) -> str:
    """Where the sim server serves one lender's protocol endpoints."""
    return f"{base_url.rstrip('/')}/lenders/{lender_id}"


def http_lender_settings(base_url: str, lenders: tuple[SimLender, ...] | list[SimLender]) -> list[dict[str, object]]:
    """``CREDITMESH_HTTP_LENDERS`` entries for these lenders served at ``base_url`` (their loan events go to the
    simulator too), each with its made-up legal name and address where it has them."""
    return [
        {
            "provider_id": lender.lender_id,
            "base_url": lender_url(base_url, lender.lender_id),
            "secret": lender.secret,
            "webhook_url": f"{lender_url(base_url, lender.lender_id)}/v1/loan-events",
        }
        | ({} if lender.legal_name is None else {"legal_name": lender.legal_name, "address": lender.address})
        for lender in lenders
    ]
