"""The problem answers of the API's own error mapping (``api.problems``, ``api.unexpected``), on an application with
the platform's middlewares and handlers and routes that raise each error: every 503 and 429 says when to ask again,
and an error nothing maps is a 500 problem carrying the request's correlation id, nothing of the error itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from aggregator.errors import HoldNotReleased, OperatorUnavailable, PricesUnavailable, RepaymentInProgress
from api import logs, problems
from api.body_limit import BodyLimit
from api.unexpected import UnexpectedErrors
from chain.errors import ChainError, RpcUnavailable
from compliance import SanctionsListStale
from risk.errors import VelocityLimitExceeded

pytestmark = pytest.mark.unit

SECRET = "postgresql://operator:hunter2@db.internal:5432/creditmesh"
_RAISED: dict[str, Exception] = {
    "chain": RpcUnavailable("http://rpc.internal:8545 refused"),
    "chain-error": ChainError("reverted"),
    "stale": SanctionsListStale("sdn", "v1", datetime(2020, 1, 1, tzinfo=UTC), 14, datetime.now(UTC)),
    "operator": OperatorUnavailable("no operator key for anvil-a"),
    "hold": HoldNotReleased("loan-1", "the keeper has not run"),
    "prices": PricesUnavailable("no feed answers"),
    "http-503": HTTPException(503, "the provider registry is not available"),
    "http-429": HTTPException(429, "slow down"),
    "repaying": RepaymentInProgress("loan-1", "another of the platform's processes is still sending one"),
    "per-ip": VelocityLimitExceeded("ip", "ip:198.51.100.7", 21, 20),
    "per-borrower": VelocityLimitExceeded("borrower", "borrower:b-1", 26, 25),
    "bug": RuntimeError(SECRET),
}


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(UnexpectedErrors)
    logs.install(app)
    app.add_middleware(BodyLimit, max_bytes=64)

    @app.post("/raise/{name}")
    async def _raise(name: str) -> None:
        raise _RAISED[name]

    @app.post("/read")
    async def _read(request: Request) -> None:
        await request.body()

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@pytest.mark.parametrize(
    ("name", "status", "slug"),
    [
        ("chain", 503, "chain-unavailable"),
        ("chain-error", 503, "chain-unavailable"),
        ("stale", 503, "sanctions-list-unavailable"),
        ("operator", 503, "operator-unavailable"),
        ("hold", 503, "hold-not-released"),
        ("prices", 503, "prices-unavailable"),
        ("http-503", 503, "service-unavailable"),
        ("http-429", 429, "too-many-requests"),
        ("per-ip", 429, "velocity-limit"),
    ],
)
async def test_every_503_and_429_says_when_to_ask_again(
    client: httpx.AsyncClient, name: str, status: int, slug: str
) -> None:
    answer = await client.post(f"/raise/{name}")
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == f"https://creditmesh.dev/problems/{slug}"
    assert answer.headers["retry-after"].isdigit()
    assert int(answer.headers["retry-after"]) > 0


async def test_a_repayment_in_progress_is_a_409_that_says_when_to_post_it_again(client: httpx.AsyncClient) -> None:
    """Another repayment of the loan under way was 409 ``loan-not-repayable`` without Retry-After: final to a client,
    and kept by the idempotency middleware (which releases a key only on a 5xx or an answer with Retry-After)."""
    answer = await client.post("/raise/repaying")
    assert answer.status_code == 409
    assert answer.json()["type"] == "https://creditmesh.dev/problems/repayment-in-progress"
    assert answer.json()["title"] == "Another repayment of the loan is under way"
    assert answer.headers["retry-after"] == str(problems.REPAYMENT_RETRY_AFTER_SECONDS)


async def test_the_per_ip_limit_s_429_carries_no_adverse_action_reason_code(client: httpx.AsyncClient) -> None:
    """The per-IP limit is a platform rate limit on a network address many may share, not a credit decision (no
    record, no notice: ``aggregator.quote_refusals``); its 429 said ``reason`` R50, an adverse-action reason about the
    applicant ("Too many credit applications in a short period"). It keeps its type, rule and Retry-After; a stop
    about the applicant keeps its reason code."""
    answer = await client.post("/raise/per-ip")

    assert answer.status_code == 429
    body = answer.json()
    assert (body["type"], body["rule"]) == ("https://creditmesh.dev/problems/velocity-limit", "ip")
    assert "reason" not in body
    assert "adverse_action_notice" not in body
    assert body["title"] == "Too many requests from this network"
    assert "not a decision about your application" in body["detail"]
    assert "198.51.100.7" not in answer.text
    assert answer.headers["retry-after"] == "60"

    applicant = (await client.post("/raise/per-borrower")).json()
    assert (applicant["rule"], applicant["reason"]) == ("borrower", "R50")
    assert applicant["title"] == "Too many credit requests"


async def test_an_unmapped_error_is_a_500_problem_with_the_correlation_id_and_nothing_of_the_error(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await client.post("/raise/bug", headers={"X-Correlation-Id": "trace-42"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-correlation-id"] == "trace-42"
    body = answer.json()
    assert body["type"] == "https://creditmesh.dev/problems/internal-error"
    assert (body["title"], body["status"], body["correlation_id"]) == ("Internal error", 500, "trace-42")
    assert "trace-42" in body["detail"]
    assert "hunter2" not in answer.text
    assert "RuntimeError" not in answer.text
    assert any(SECRET in (record.exc_text or "") or record.exc_info for record in caplog.records)


async def test_a_body_over_the_cap_is_still_the_body_limits_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives, cut off inside the app
        for _ in range(4):
            yield b"x" * 32

    answer = await client.post("/read", content=chunks())
    assert answer.status_code == 413
    assert answer.json()["type"] == "https://creditmesh.dev/problems/body-too-large"
