"""What the outbox relay (``aggregator.relay``) reads and writes, in SQL: each unit of work holds the outbox
(``store.outbox.SqlOutboxStore``), the recipients' webhook settings (provider registrations, borrowers) and the
lease's fence, all in one session; the relay's unit of work commits, none of these does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from aggregator.event_destinations import BorrowerWebhook, ProviderWebhook
from store.api import BorrowerRow
from store.db import Database
from store.leases import Lease, SqlLeaseStore, fence
from store.outbox import SqlOutboxStore
from store.providers import ProviderRegistrationRow


class SqlRecipientDirectory:
    """``aggregator.event_destinations.RecipientDirectory`` in the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        # read once per transaction: a relay's batch names the same few providers and borrowers many times
        self._providers: dict[str, ProviderWebhook | None] = {}
        self._borrowers: dict[str, BorrowerWebhook | None] = {}

    def provider(self, provider_id: str) -> ProviderWebhook | None:
        if provider_id not in self._providers:
            row = self.session.get(ProviderRegistrationRow, provider_id)
            found = None if row is None else ProviderWebhook(row.provider_id, row.webhook_url, row.enabled, row.config)
            self._providers[provider_id] = found
        return self._providers[provider_id]

    def borrower(self, borrower_id: str) -> BorrowerWebhook | None:
        if borrower_id not in self._borrowers:
            row = self.session.get(BorrowerRow, borrower_id)
            found = None if row is None else BorrowerWebhook(row.id, row.webhook_url, row.webhook_secret_sealed)
            self._borrowers[borrower_id] = found
        return self._borrowers[borrower_id]


class SqlRelayUnitOfWork:
    def __init__(self, session: Session, commit: Callable[[], None]) -> None:
        self.session, self._commit = session, commit
        self.outbox = SqlOutboxStore(session)
        self.recipients = SqlRecipientDirectory(session)

    def fence(self, lease: Lease) -> None:
        fence(self.session, lease)

    def commit(self) -> None:
        self._commit()


class SqlRelayStore:
    """``aggregator.relay.RelayStore`` on ``database``: a unit of work per relay step, and the leases."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.leases = SqlLeaseStore(database.sessions)

    @contextmanager
    def unit_of_work(self) -> Iterator[SqlRelayUnitOfWork]:
        with self._db.unit_of_work() as uow:
            yield SqlRelayUnitOfWork(uow.session, uow.commit)
