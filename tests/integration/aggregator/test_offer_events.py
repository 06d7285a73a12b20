"""A lender's offer events on real PostgreSQL, stored and acted on in one transaction as the webhook route does
(``aggregator.offer_events``): a withdrawn offer's quote is never accepted nor offered again — whether it was
offered, superseded by another quote's accept, or being accepted when the lender withdrew it; a failed funding fails
the accept waiting on it once, whichever of the lender's report and the saga's settlement of its answer to ``/fund``
comes first (the other changes nothing), and is refused for now (503, not stored) while the accept is under way."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aggregator import offer_events
from aggregator.accept_saga import (
    FUND_REFUSED,
    REPORTED_FUNDING_FAILURE,
    AcceptRecord,
    AcceptStep,
    LockRefused,
    advance,
)
from providers._exceptions import WebhookRejected
from providers.webhooks import WebhookEvent
from store.accepts import SqlAcceptStore
from store.aggregator import QuoteRow
from store.db import Database
from store.offer_events import SqlOfferEventRepository
from store.providers import ProviderWebhookEventRow
from tests.support.ledger_facts import lock_accept, new_quote

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
BANK = "sim-bank"


@pytest.fixture(scope="module")
def database(postgres_schema: Callable[[str], str]) -> Iterator[Database]:
    db = Database(postgres_schema("offer_events"))
    db.migrate()
    yield db
    db.dispose()


def _request_with_two_quotes(database: Database) -> tuple[str, str]:
    """A credit request quoted by the bank (its offer ``ref-<quote id>``) and by a pool: (bank quote, pool quote)."""
    bank = str(uuid.uuid4())
    offer = {"providerRef": f"ref-{bank}", "principal": "1000000000", "nonce": 1, "borrower": "0x" + "22" * 20}
    borrower_id, _ = new_quote(
        database, status="offered", provider_id=BANK, kind="traditional", offer=offer, quote_id=bank
    )
    pool = str(uuid.uuid4())
    with database.unit_of_work() as uow:
        first = uow.session.get(QuoteRow, bank)
        assert first is not None
        uow.session.add(
            QuoteRow(
                **{c: getattr(first, c) for c in ("request_id", "chain_name", "chain_id", "contract", "disclosure")},
                id=pool,
                borrower_id=borrower_id,
                provider_id="pool:usdc",
                kind="pool",
                rank=2,
                offer={"principal": "1000000000", "nonce": 1},
                offer_digest="0x" + uuid.uuid4().hex * 2,
                offer_signature="0x",
                attestation={},
                attestation_signature="0x",
                status="offered",
                expires_at=NOW + timedelta(hours=1),
                created_at=NOW,
            )
        )
        uow.commit()
    return bank, pool


def _withdraw(database: Database, offer_ref: str) -> str | None:
    return _post(database, offer_ref, "offer.withdrawn")


def _post(database: Database, offer_ref: str, event_type: str) -> str | None:
    """The bank's event, stored and acted on in one transaction (``providers.webhooks``' effect)."""
    event = WebhookEvent.model_validate(
        {
            "protocol_version": "1",
            "event_id": f"evt-{uuid.uuid4().hex}",
            "type": event_type,
            "offer_ref": offer_ref,
            "occurred_at": NOW,
            "detail": "the disbursement account was frozen",
        }
    )
    with database.unit_of_work() as uow:
        uow.session.add(
            ProviderWebhookEventRow(
                provider_id=BANK,
                event_id=event.event_id,
                event_type=event.type,
                offer_ref=event.offer_ref,
                payload=event.model_dump(mode="json"),
                received_at=NOW,
            )
        )
        effect = offer_events.act(SqlOfferEventRepository(uow.session), BANK, event, NOW)
        uow.commit()
    return effect


def _status(database: Database, quote_id: str) -> str:
    with database.unit_of_work() as uow:
        row = uow.session.get(QuoteRow, quote_id)
        assert row is not None
        return row.status


def _cancel(store: SqlAcceptStore, record: AcceptRecord) -> None:
    """The accept cancelled (nothing was sent): ``AcceptRepository.release``."""
    with store.unit_of_work() as uow:
        uow.accepts.release(advance(record, AcceptStep.CANCELLED, NOW, error="the lender refused"), NOW)
        uow.commit()


def test_an_offered_quote_the_lender_withdraws_cannot_be_locked(database: Database) -> None:
    bank, pool = _request_with_two_quotes(database)
    assert _withdraw(database, f"ref-{bank}") == "withdrawn"
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")
    store = SqlAcceptStore(database)
    with pytest.raises(LockRefused) as refused:
        lock_accept(store, bank, NOW)
    assert refused.value.status == "withdrawn"
    assert _withdraw(database, f"ref-{bank}") == "none", "a repeat (a new event id) changes nothing"
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")
    lock_accept(store, pool, NOW)  # the other lenders' quotes stand


def test_a_superseded_quote_the_lender_withdraws_is_not_offered_again_when_the_other_accept_is_cancelled(
    database: Database,
) -> None:
    bank, pool = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    accepting = lock_accept(store, pool, NOW)
    assert _status(database, bank) == "superseded"
    assert _withdraw(database, f"ref-{bank}") == "withdrawn"
    _cancel(store, accepting)
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")


def test_a_quote_being_accepted_is_left_to_the_accept_and_withdrawn_if_it_is_cancelled(database: Database) -> None:
    """The withdrawal does not touch an accept under way (the lender's answer to the reservation or the funding
    instruction decides it); when that accept is cancelled, the quote goes to withdrawn, not back to offered."""
    bank, pool = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    accepting = lock_accept(store, bank, NOW)
    assert _withdraw(database, f"ref-{bank}") == "none"
    assert (_status(database, bank), _status(database, pool)) == ("accepting", "superseded")
    _cancel(store, accepting)
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")
    with pytest.raises(LockRefused):
        lock_accept(store, bank, NOW)


def _at(store: SqlAcceptStore, record: AcceptRecord, step: AcceptStep, **changes: object) -> AcceptRecord:
    """The accept moved on to ``step`` (its quote ``accepted`` from ``recorded`` on, as ``record_loan`` has it)."""
    moved = advance(record, step, NOW, **changes)
    with store.unit_of_work() as uow:
        assert uow.accepts.save(moved)
        if step in (AcceptStep.RECORDED, AcceptStep.FUNDED):
            uow.accepts.session.execute(
                update(QuoteRow).where(QuoteRow.id == record.quote_id).values(status="accepted")
            )
        uow.commit()
    return moved


def _record(store: SqlAcceptStore, quote_id: str) -> AcceptRecord:
    with store.unit_of_work() as uow:
        record = uow.accepts.record(quote_id)
    assert record is not None
    return record


def _settle(store: SqlAcceptStore, record: AcceptRecord) -> bool:
    with store.unit_of_work() as uow:
        settled = uow.accepts.settle_funding(record)
        uow.commit()
    return settled


def test_a_failed_funding_fails_the_accept_waiting_on_it_once_and_the_sagas_answer_after_it_changes_nothing(
    database: Database,
) -> None:
    bank, _ = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    recorded = _at(store, lock_accept(store, bank, NOW), AcceptStep.RECORDED, loan_id="loan-1", lender_state="reserved")
    assert _post(database, f"ref-{bank}", "offer.funding_failed") == "funding-failed"
    failed = _record(store, bank)
    assert (failed.step, failed.lender_state, failed.owner) == (AcceptStep.RECORDED, FUND_REFUSED, "accept-1")
    assert failed.error is not None
    assert REPORTED_FUNDING_FAILURE in failed.error
    assert "frozen" in failed.error
    # the saga's answer from the lender arrives after the report: it does not overwrite it
    assert not _settle(store, advance(recorded, AcceptStep.FUNDED, NOW, lender_state="funded"))
    assert not _settle(store, advance(recorded, AcceptStep.RECORDED, NOW, error="funding instruction not delivered"))
    assert _record(store, bank) == failed
    assert _post(database, f"ref-{bank}", "offer.funding_failed") == "none", "once, however often reported"
    assert _record(store, bank) == failed


def test_a_failed_funding_reported_after_the_lender_funded_changes_nothing(database: Database) -> None:
    bank, _ = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    recorded = _at(store, lock_accept(store, bank, NOW), AcceptStep.RECORDED, loan_id="loan-2", lender_state="reserved")
    assert _settle(store, advance(recorded, AcceptStep.FUNDED, NOW, lender_state="funded"))
    assert _post(database, f"ref-{bank}", "offer.funding_failed") == "none"
    assert (_record(store, bank).step, _record(store, bank).lender_state) == (AcceptStep.FUNDED, "funded")


def test_a_failed_funding_reported_while_the_accept_is_under_way_is_refused_for_now_and_not_stored(
    database: Database,
) -> None:
    bank, _ = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    submitted = _at(store, lock_accept(store, bank, NOW), AcceptStep.SUBMITTED, lender_state="reserved")
    with pytest.raises(WebhookRejected) as refused:
        _post(database, f"ref-{bank}", "offer.funding_failed")
    assert refused.value.status_code == 503
    assert "under way" in str(refused.value)
    with database.unit_of_work() as uow:
        stored = uow.session.scalars(
            select(ProviderWebhookEventRow).where(ProviderWebhookEventRow.offer_ref == f"ref-{bank}")
        ).all()
    assert stored == [], "rolled back with its refusal: the lender's retry is a new event"
    assert _record(store, bank) == submitted
