"""A credit request refused before it is scored leaves a ``credit-request`` decision record denying it
(``aggregator.quote_refusals.admit_request``): each velocity rule about the applicant under its own reason (R50,
R51; the per-IP rate limit, which is not about the applicant, is not recorded), never naming the wallet in the clear;
a borrower with no identity on file under the 403's reason. Before, neither left a record. A stop about the applicant
(R50, R51) carries its adverse-action notice; the per-IP limit's and the no-identity 403 do not. On the in-memory
store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aggregator.errors import ComplianceDenied
from aggregator.quote_refusals import NO_IDENTITY, VelocityCheck, admit_request, asked_terms, velocity_record
from aggregator.quote_store import InMemoryQuotingStore
from compliance.decisions import DecisionKind, Outcome
from risk.errors import VelocityLimitExceeded
from risk.velocity import InMemoryVelocityStore, VelocityLimits
from tests.support.quoting import WALLET, borrower_file

pytestmark = pytest.mark.unit

ASKED = asked_terms("1500.00", "USDC", 30)
CLIENT = "203.0.113.7"


async def _refused(store: InMemoryQuotingStore, check: VelocityCheck, borrower_id: str = "b1") -> Exception:
    with pytest.raises((VelocityLimitExceeded, ComplianceDenied)) as refused:
        await admit_request(store, check, replace(borrower_file(), id=borrower_id), ASKED)
    return refused.value


@pytest.mark.parametrize(
    ("limits", "borrowers", "code", "message"),
    [
        (
            VelocityLimits(per_borrower=1),
            ("b1", "b1"),
            "R50",
            "Too many credit applications in a short period (borrower: 2, limit 1)",
        ),
        (
            VelocityLimits(),
            ("b1", "b2"),  # a second identity claiming the wallet
            "R51",
            "Unable to verify ownership of the wallet (wallet_identities: 2, limit 1)",
        ),
    ],
)
async def test_a_velocity_stop_is_recorded_denied_under_its_rule(
    limits: VelocityLimits, borrowers: tuple[str, str], code: str, message: str
) -> None:
    store = InMemoryQuotingStore()
    check = VelocityCheck(InMemoryVelocityStore(), limits, CLIENT, bytes(32))
    first, second = borrowers
    await admit_request(store, check, replace(borrower_file(), id=first), ASKED)
    assert store.tables.decision_records == []  # an admitted request records nothing here

    stop = await _refused(store, check, second)
    assert isinstance(stop, VelocityLimitExceeded)

    # a stop about the applicant carries its adverse-action notice, its reason the record's
    assert stop.notice is not None
    assert stop.notice["reasons"] == [{"code": code, "text": message}]
    assert stop.notice["lenders"] == []
    assert "1500.00 USDC for 30 days was denied" in stop.notice["statement"]
    (record,) = store.tables.decision_records
    assert (record.kind, record.outcome, record.subject_ref) == (DecisionKind.CREDIT_REQUEST, Outcome.DENY, second)
    assert [(reason.code, reason.message) for reason in record.reasons] == [(code, message)]
    # the record commits to the notice the 429 gave (Regulation B keeps the notification): its hash among the inputs
    given = velocity_record(stop, limits, second, ASKED, record.decided_at, bytes(32), stop.notice)
    untold = velocity_record(stop, limits, second, ASKED, record.decided_at, bytes(32))
    assert record.inputs_hash == given.inputs_hash != untold.inputs_hash
    for personal in (CLIENT, WALLET.lower()):
        assert personal not in repr(record.body())
    assert store.tables.decision_requests == {}  # no request was written: none is named


async def test_a_velocity_stop_met_again_in_its_window_is_refused_each_time_and_recorded_once() -> None:
    """Each refusal was a database write where the limit cost a counter's round trip: a borrower asking on past a
    limit turned a flood of refused requests into a flood of writes. Another rule's stop is recorded on its own."""
    store = InMemoryQuotingStore()
    check = VelocityCheck(InMemoryVelocityStore(), VelocityLimits(per_borrower=1), CLIENT, bytes(32))
    await admit_request(store, check, borrower_file(), ASKED)

    refusals = [await _refused(store, check) for _ in range(5)]

    assert all(isinstance(refusal, VelocityLimitExceeded) for refusal in refusals)
    assert [record.reasons[0].code for record in store.tables.decision_records] == ["R50"]
    assert isinstance(await _refused(store, check, "b2"), VelocityLimitExceeded)  # R51: the wallet's second identity
    assert [record.reasons[0].code for record in store.tables.decision_records] == ["R50", "R51"]


async def test_the_per_ip_rate_limit_refuses_and_records_nothing() -> None:
    store = InMemoryQuotingStore()
    check = VelocityCheck(InMemoryVelocityStore(), VelocityLimits(per_borrower=9, per_ip=1), CLIENT, bytes(32))
    await admit_request(store, check, borrower_file(), ASKED)

    refused = await _refused(store, check)

    assert isinstance(refused, VelocityLimitExceeded)
    assert refused.rule == "ip"
    assert refused.notice is None, "the platform's rate limit on a network is no credit decision: no notice"
    assert store.tables.decision_records == []


async def test_a_velocity_stop_after_the_window_of_the_last_recorded_is_recorded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A borrower asking every ten minutes past a limit of one an hour: each stop of a later window is recorded,
    however often the borrower was refused in between (the window's mark is set once, not renewed per refusal)."""
    clock = [1_000_000.0]
    monkeypatch.setattr("aggregator.quote_refusals.time.time", lambda: clock[0])
    store = InMemoryQuotingStore()
    check = VelocityCheck(InMemoryVelocityStore(), VelocityLimits(per_borrower=1), CLIENT, bytes(32))
    answers = []
    for _ in range(19):  # three hours
        try:
            await admit_request(store, check, borrower_file(), ASKED)
            answers.append("admitted")
        except VelocityLimitExceeded:
            answers.append("429")
        clock[0] += 600

    assert answers == (["admitted"] + ["429"] * 5) * 3 + ["admitted"]
    assert [record.reasons[0].code for record in store.tables.decision_records] == ["R50"] * 3


async def test_a_borrower_with_no_identity_on_file_is_refused_and_recorded() -> None:
    store = InMemoryQuotingStore()
    check = VelocityCheck(InMemoryVelocityStore(), VelocityLimits(), CLIENT, bytes(32))

    with pytest.raises(ComplianceDenied) as refused:
        await admit_request(store, check, replace(borrower_file(), identity=None), ASKED)

    assert refused.value.reasons == [NO_IDENTITY]
    assert refused.value.notice is None  # an incomplete application: the 403 says what is missing
    (record,) = store.tables.decision_records
    assert (record.kind, record.outcome, record.subject_ref) == (DecisionKind.CREDIT_REQUEST, Outcome.DENY, "b1")
    assert [(reason.code, reason.message) for reason in record.reasons] == [NO_IDENTITY]
