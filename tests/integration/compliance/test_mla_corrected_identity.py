"""The MLA status cache asks again when the identity changes: a servicemember whose first KYC carried a mistyped SSN
(not covered) and who corrects it is covered at once, not left "not covered" for the rest of the day. Against the
simulated MLA service over real HTTP (``compliance.sim``), through ``HttpMlaStatusProvider``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx
import pytest

from chain.devnet import free_port
from compliance.identity_http import HttpMlaStatusProvider
from compliance.mla import CoveredPeriod, MlaQuery, MlaStatusCache
from compliance.sim.identity import IdentitySimConfig, create_identity_app
from tests.support.served import served

pytestmark = pytest.mark.integration

MLA_SECRET = b"mla-secret-for-the-cache-test"
BORN = date(1985, 12, 10)
SERVICEMEMBER = CoveredPeriod("Hopper", BORN, "123456789", date(2020, 1, 1))


async def test_a_corrected_ssn_is_asked_about_again_the_same_day() -> None:
    app = create_identity_app(
        IdentitySimConfig(b"kyc-secret-unused", "http://127.0.0.1:1/unused", MLA_SECRET, (SERVICEMEMBER,))
    )
    now = datetime.now(UTC)
    mistyped = MlaQuery("Hopper", "Grace", BORN, "123456780", now.date())
    corrected = MlaQuery("Hopper", "Grace", BORN, "123456789", now.date())
    asked: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        asked.append(request)

    with served(app, free_port()) as url:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0), event_hooks={"request": [count]}) as http:
            cache = MlaStatusCache(HttpMlaStatusProvider(f"{url}/mla", MLA_SECRET, http))
            assert not (await cache.status("b-1", mistyped, now)).covered
            assert not (await cache.status("b-1", mistyped, now)).covered  # the same identity: cached
            assert len(asked) == 1
            assert (await cache.status("b-1", corrected, now)).covered  # a new identity: asked, covered
            assert (await cache.status("b-1", corrected, now)).covered
            assert len(asked) == 2
            cache.forget("b-1")  # a new identity submitted (or an erasure): nothing of the borrower kept
            assert len(cache) == 0
