"""The operator's account out of gas over several rounds of the default job, on the package's own devnet with the
ledger on PostgreSQL: two loans past maturity plus the grace period wait for ``markDefault`` while the account is
empty (``anvil_setBalance`` to 0). The first round has one send refused and defers the other; the next rounds send
nothing — no failed intent more, however many rounds — and the operator is told once: an error naming the account
and the chain, the gauge ``creditmesh_operator_unfunded``, and the admins' ``GET /health`` showing the operator
``degraded``. Once the account is funded again, the next round marks both loans in default and the alert clears.
Before, every round left one more failed ``markDefault`` intent per loan, without end, and said nothing more than a
warning per send."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from aggregator.servicing.defaults import DefaultJob, default_intent_key
from aggregator.servicing.delinquency import SECONDS_PER_DAY
from chain.signers import Role
from store.aggregator import LoanRow
from store.chain import CONFIRMED, FAILED
from store.db import Database
from tests.contracts.harness import USDC
from tests.integration.servicing.conftest import (
    admin_health,
    borrower_with_collateral,
    intent_status,
    out_of_gas,
    record_in_ledger,
)
from tests.support.devnet import DeployedChain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

DEFAULTED_ONCHAIN = 3
ROUNDS = 5


def _past_grace_loan(chain: DeployedChain, database: Database) -> int:
    harness, borrower = borrower_with_collateral(chain)
    loan_ref, receipt = harness.open_loan(borrower, principal=1_000 * USDC, originationFee=0, term=SECONDS_PER_DAY)
    record_in_ledger(database, chain, receipt)
    with database.unit_of_work() as uow:
        assert uow.session.scalars(select(LoanRow.id).where(LoanRow.onchain_loan_id == loan_ref)).one()
    return loan_ref


async def _admin_health(job: DefaultJob) -> dict[str, Any]:
    """``GET /health`` as an admin, over the job's chain client and its operator's account."""
    return await admin_health(job.client, {Role.OPERATOR: job.operator})


def _unfunded_gauge(job: DefaultJob) -> float | None:
    return REGISTRY.get_sample_value("creditmesh_operator_unfunded", {"chain": str(job.chain_id), "role": "operator"})


async def test_rounds_back_off_while_the_operator_cannot_pay_and_resume_once_it_is_funded(
    own_chain: DeployedChain, servicing_db: Database, job: DefaultJob, caplog: pytest.LogCaptureFixture
) -> None:
    harness, _ = borrower_with_collateral(own_chain)
    loans = [_past_grace_loan(own_chain, servicing_db) for _ in range(2)]
    harness.advance(int(harness.loan(loans[-1])["maturity"]) + 8 * SECONDS_PER_DAY - harness.now())
    aggregator = own_chain.record.address("CreditAggregator")
    marks = {ref: partial(default_intent_key, own_chain.chain_id, aggregator, ref) for ref in loans}
    account = job.operator.account.address

    with out_of_gas(own_chain, account), caplog.at_level(logging.ERROR, "aggregator.servicing.sender_funds"):
        reports = [await job.run_round() for _ in range(ROUNDS)]
        starved = await _admin_health(job)
        refused = [await intent_status(job.operator, marks[ref](1)) for ref in loans]
        later = [await intent_status(job.operator, marks[ref](2)) for ref in loans]

    assert sorted(refused, key=str) == [None, FAILED], "one send refused, the other loan's deferred in that round"
    assert later == [None, None], "no attempt more in the rounds after"
    for report in reports:
        assert not report.defaulted
        assert set(report.deferred) | set(report.errors) == set(loans)
    assert all(set(report.deferred) == set(loans) for report in reports[1:])
    assert account in next(iter(reports[-1].deferred.values()))
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR and "cannot pay for gas" in r.getMessage()]
    assert len(alerts) == 1, "said once, not every round"
    assert account in alerts[0].getMessage()
    assert str(job.chain_id) in alerts[0].getMessage()
    assert _unfunded_gauge(job) == 1
    assert starved["status"] == "degraded"
    assert starved["chains"]["servicing"]["ok"] is True, "the chain's RPC is fine: the operator's account is not"
    operator = starved["chains"]["servicing"]["operator"]
    assert (operator["address"], operator["status"]) == (account, "degraded")
    assert "insufficient funds" in operator["detail"]

    funded = await job.run_round()  # the account funded again: its balance pays for what was refused
    assert set(funded.defaulted) == set(loans), funded.skipped
    assert not funded.deferred
    assert all(int(harness.loan(ref)["status"]) == DEFAULTED_ONCHAIN for ref in loans)
    statuses = [[await intent_status(job.operator, marks[ref](n)) for n in (1, 2)] for ref in loans]
    assert sorted(statuses, key=str) == sorted([[FAILED, CONFIRMED], [CONFIRMED, None]], key=str)
    assert _unfunded_gauge(job) == 0
    assert (await _admin_health(job))["chains"]["servicing"]["operator"]["status"] == "ok"
