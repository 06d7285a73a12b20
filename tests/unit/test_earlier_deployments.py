"""The open loans of earlier deployments of a chain's contracts (``aggregator.earlier_deployments``): counted per
earlier CreditAggregator, said once per chain at start, kept in the gauge; and on the admins' ``GET /health`` a
database that does not answer within the probe timeout is shown ``unknown`` (the page ``degraded``), not waited for."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
from eth_utils.address import to_checksum_address
from prometheus_client import REGISTRY

from aggregator.earlier_deployments import UnservicedLoans
from api.routers import health
from chain.client import ChainHealth
from chain.deployment import DeploymentRecord
from tests.support.health_page import admin_health_page

SERVED = to_checksum_address("0x" + "ab" * 20)
EARLIER = ("0x" + "11" * 20, "0x" + "22" * 20)


def _record(name: str, chain_id: int, *, aggregator: bool = True) -> DeploymentRecord:
    deployed = {"artifact": "CreditAggregator", "address": SERVED, "tx_hash": "0x" + "00" * 32, "block": 1}
    contracts = {"CreditAggregator": deployed} if aggregator else {}
    return DeploymentRecord.model_validate(
        {"chain_name": name, "chain_id": chain_id, "profile": "devnet", "contracts": contracts}
    )


def _gauge(chain_id: int) -> float | None:
    return REGISTRY.get_sample_value("creditmesh_unserviced_loans", {"chain": str(chain_id)})


def test_each_chain_with_open_loans_of_an_earlier_deployment_is_said_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked: list[tuple[int, str]] = []

    def count(chain_id: int, aggregator: str) -> dict[str, int]:
        asked.append((chain_id, aggregator))
        if chain_id == 31339:
            return {EARLIER[1]: 4}
        return {EARLIER[0]: 2, EARLIER[1]: 1} if chain_id == 31337 else {}

    records = [
        _record("ethereum-local", 31337),
        _record("polygon", 31338),
        _record("arbitrum", 31339, aggregator=False),
    ]
    with caplog.at_level(logging.ERROR, "aggregator.earlier_deployments"):
        found = UnservicedLoans(count).report_at_start(records)

    assert asked == [(31337, SERVED), (31338, SERVED), (31339, "")]  # "": no CreditAggregator, every loan counts
    assert [(chain.count, chain.status) for chain in found] == [(3, "degraded"), (0, "ok"), (4, "degraded")]
    assert found[0].as_json() == {"count": 3, "contracts": {EARLIER[0]: 2, EARLIER[1]: 1}, "status": "degraded"}
    alert, unrecorded = caplog.records
    assert "on arbitrum (chain 31339)" in unrecorded.getMessage()
    assert "the deployment record names none" in unrecorded.getMessage()
    message = alert.getMessage()
    assert message.startswith("3 loan(s) of an earlier deployment of the contracts on ethereum-local (chain 31337)")
    assert f"{EARLIER[0]} (2), {EARLIER[1]} (1)" in message
    assert SERVED in message
    assert "docs/servicing.md" in message
    assert (_gauge(31337), _gauge(31338), _gauge(31339)) == (3, 0, 4)


class _Client:
    async def health(self, within: float) -> ChainHealth:
        return ChainHealth("ethereum-local", 31337, True, 7, 1.0, None, ())


async def test_health_shows_the_count_and_a_database_that_does_not_answer_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "PROBE_TIMEOUT_SECONDS", 0.5)
    counts: dict[str, int] = {EARLIER[0]: 1}

    def count(chain_id: int, aggregator: str) -> dict[str, int]:
        if counts.get("hang"):
            time.sleep(2)
        return {contract: n for contract, n in counts.items() if contract != "hang"}

    chain = SimpleNamespace(client=_Client(), record=_record("ethereum-local", 31337))
    platform = SimpleNamespace(
        chains={"ethereum-local": chain},
        compliance=SimpleNamespace(versions=lambda: {}),
        unserviced_loans=UnservicedLoans(count),
    )
    degraded = await admin_health_page(platform)
    counts.clear()
    ok = await admin_health_page(platform)
    counts["hang"] = 1
    started = time.monotonic()
    unknown = await admin_health_page(platform)
    elapsed = time.monotonic() - started

    entry = degraded["chains"]["ethereum-local"]["earlier_deployment_loans"]
    assert (entry, degraded["status"]) == ({"count": 1, "contracts": {EARLIER[0]: 1}, "status": "degraded"}, "degraded")
    entry = ok["chains"]["ethereum-local"]["earlier_deployment_loans"]
    assert (entry, ok["status"]) == ({"count": 0, "contracts": {}, "status": "ok"}, "ok")
    entry = unknown["chains"]["ethereum-local"]["earlier_deployment_loans"]
    assert (entry["status"], entry["detail"], unknown["status"]) == ("unknown", "TimeoutError", "degraded")
    assert elapsed < 1.5, "the probe's time bound, not the database's two seconds"
