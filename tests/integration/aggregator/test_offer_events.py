"""A lender's offer events on real PostgreSQL, stored and acted on in one transaction as the webhook route does
(``aggregator.offer_events``): a withdrawn offer's quote is never accepted nor offered again — whether it was
offered, superseded by another quote's accept, or being accepted when the lender withdrew it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aggregator import offer_events
from aggregator.accept_saga import AcceptRecord, AcceptStep, LockRefused, advance
from providers.webhooks import WebhookEvent
from store.accepts import SqlAcceptStore
from store.aggregator import QuoteRow
from store.db import Database
from store.offer_events import SqlOfferEventRepository
from store.providers import ProviderWebhookEventRow
from tests.support.ledger_facts import add_quote

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
    borrower_id = add_quote(
        database,
        borrower_address="0x" + bank[:8] * 5,
        offer_digest="0x" + uuid.uuid4().hex * 2,
        provider_id=BANK,
        chain_name="ethereum-local",
        chain_id=31337,
        contract="0x" + "11" * 20,
        status="offered",
        quote_id=bank,
        offer={"providerRef": f"ref-{bank}", "principal": "1000000000", "nonce": 1, "borrower": "0x" + "22" * 20},
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
    """The bank's offer.withdrawn, stored and acted on in one transaction (``providers.webhooks``' effect)."""
    event = WebhookEvent(
        protocol_version="1",
        event_id=f"evt-{uuid.uuid4().hex}",
        type="offer.withdrawn",
        offer_ref=offer_ref,
        occurred_at=NOW,
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


def _lock(store: SqlAcceptStore, quote_id: str) -> AcceptRecord:
    """The quote locked for an accept, as ``AcceptanceService._lock`` does (the request's other quotes superseded)."""
    with store.unit_of_work() as uow:
        quote = uow.accepts.quote(quote_id)
        assert quote is not None
        record = AcceptRecord(
            quote_id=quote_id,
            request_id=quote.request_id,
            borrower_id=quote.borrower_id,
            kind=quote.kind,
            chain_name=quote.chain_name,
            attempt=1,
            step=AcceptStep.SIMULATED,
            owner="accept-1",
            lease_until=NOW,
            updated_at=NOW,
        )
        uow.accepts.lock(quote, record)
        uow.commit()
    return record


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
        _lock(store, bank)
    assert refused.value.status == "withdrawn"
    assert _withdraw(database, f"ref-{bank}") == "none", "a repeat (a new event id) changes nothing"
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")
    _lock(store, pool)  # the other lenders' quotes stand


def test_a_superseded_quote_the_lender_withdraws_is_not_offered_again_when_the_other_accept_is_cancelled(
    database: Database,
) -> None:
    bank, pool = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    accepting = _lock(store, pool)
    assert _status(database, bank) == "superseded"
    assert _withdraw(database, f"ref-{bank}") == "withdrawn"
    _cancel(store, accepting)
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")


def test_a_quote_being_accepted_is_left_to_the_accept_and_withdrawn_if_it_is_cancelled(database: Database) -> None:
    """The withdrawal does not touch an accept under way (the lender's answer to the reservation or the funding
    instruction decides it); when that accept is cancelled, the quote goes to withdrawn, not back to offered."""
    bank, pool = _request_with_two_quotes(database)
    store = SqlAcceptStore(database)
    accepting = _lock(store, bank)
    assert _withdraw(database, f"ref-{bank}") == "none"
    assert (_status(database, bank), _status(database, pool)) == ("accepting", "superseded")
    _cancel(store, accepting)
    assert (_status(database, bank), _status(database, pool)) == ("withdrawn", "offered")
    with pytest.raises(LockRefused):
        _lock(store, bank)
