"""Borrower accounts: registering a wallet (one borrower per wallet) and the webhook a borrower's loan events go to.
Through the ``BorrowerStore`` repository (``aggregator.borrower_store``); each call is one unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aggregator.borrower_store import BorrowerAccount, BorrowerStore
from aggregator.errors import BorrowerAlreadyRegistered, BorrowerNotFound


class BorrowerAccounts:
    def __init__(self, store: BorrowerStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store, self._clock = store, clock

    def register(self, wallet_address: str, jurisdiction: str) -> BorrowerAccount:
        """A new borrower for ``wallet_address`` (checksummed by the caller).

        Raises:
            BorrowerAlreadyRegistered: the wallet is registered already (also when a concurrent registration of the
                same wallet commits first).
        """
        account = BorrowerAccount(str(uuid.uuid4()), wallet_address, jurisdiction.upper(), self._clock())
        with self._store.unit_of_work() as uow:
            if uow.borrowers.account_by_wallet(wallet_address) is not None:
                raise BorrowerAlreadyRegistered(wallet_address)
            uow.borrowers.add_account(account)
            uow.commit()
        return account

    def exists(self, borrower_id: str) -> bool:
        with self._store.unit_of_work() as uow:
            return uow.borrowers.account(borrower_id) is not None

    def set_webhook(self, borrower_id: str, url: str | None, secret_sealed: str | None) -> None:
        """Where the borrower's loan events go and the sealed secret they are signed with (None, None: nowhere).

        Raises:
            BorrowerNotFound: no such borrower.
        """
        with self._store.unit_of_work() as uow:
            if uow.borrowers.account(borrower_id) is None:
                raise BorrowerNotFound(borrower_id)
            uow.borrowers.set_webhook(borrower_id, url, secret_sealed)
            uow.commit()

    def webhook_url(self, borrower_id: str) -> str | None:
        """Raises BorrowerNotFound for no such borrower."""
        with self._store.unit_of_work() as uow:
            account = uow.borrowers.account(borrower_id)
        if account is None:
            raise BorrowerNotFound(borrower_id)
        return account.webhook_url
