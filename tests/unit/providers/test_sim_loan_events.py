"""The simulated lender receives creditmesh's loan events as a lender should (in process, over httpx's ASGI
transport): signed with its secret, kept once per event id (a repeat is answered 200 and recognised), a forged
one refused; the fleet's settings point each lender's webhook_url at it."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from providers.signing import signed_headers
from providers.sim.fleet import SimLender, http_lender_settings
from providers.sim.lender import create_sim_app

pytestmark = pytest.mark.unit

SECRET = "sim-unit-secret"


def _event(event_id: str, sequence: int) -> bytes:
    body = {"protocol_version": "1", "event_id": event_id, "type": "loan.repayment", "loan_id": "l-1"}
    return json.dumps(body | {"sequence": sequence, "loan": {}, "data": {}}).encode()


async def test_the_simulated_lender_keeps_each_loan_event_once() -> None:
    app = create_sim_app([SimLender(lender_id="sim-bank", secret=SECRET)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test") as client:
        url = "/lenders/sim-bank/v1/loan-events"
        now = int(time.time())
        first = await client.post(url, content=_event("e-1", 1), headers=signed_headers(SECRET, now, _event("e-1", 1)))
        assert first.json() == {"received": "e-1", "duplicate": False}
        again = await client.post(
            url, content=_event("e-1", 1), headers=signed_headers(SECRET, now + 1, _event("e-1", 1))
        )
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
        forged = await client.post(
            url, content=_event("e-2", 2), headers=signed_headers("wrong", now, _event("e-2", 2))
        )
        assert forged.status_code == 401
        seen = (await client.get("/control/lenders/sim-bank")).json()
    assert seen["loan_events"] == [{"event_id": "e-1", "type": "loan.repayment", "loan_id": "l-1", "sequence": 1}]
    assert seen["requests"]["loan_event"] == 2


def test_the_fleet_settings_send_loan_events_to_the_simulator() -> None:
    (entry,) = http_lender_settings("http://127.0.0.1:8600", [SimLender(lender_id="sim-bank", secret=SECRET)])
    assert entry["webhook_url"] == "http://127.0.0.1:8600/lenders/sim-bank/v1/loan-events"
