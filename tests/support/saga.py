"""The platform of the accept saga's and the loans ledger's end-to-end tests (``tests/e2e/conftest.py`` shares
one between them, and the loan events' test): PostgreSQL, the indexer and the outbox relay running, short leases,
and the kill-point test hook."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, offer_nonces_from, running_platform

#: the test hook that SIGKILLs the API at a named point of an accept (``aggregator.accepting.KILL_POINTS``)
KILL_AT = "CREDITMESH_TEST_ACCEPT_KILL_POINT"


@contextmanager
def saga_platform(
    chains: dict[str, DeployedChain], data_dir: Path, database_url: str, kill_at: str = ""
) -> Iterator[RunningPlatform]:
    # Offer nonces from a random start in [2**40, 2**40 + 2**39): below the other platforms' (2**41, 2**42 + …), and
    # not the same each time, because pytest sets this package fixture up again when one run interleaves files of
    # several packages — its schema is then dropped and made anew while the devnets keep the nonces already spent.
    offer_nonces_from(database_url, chains, 2**40 + secrets.randbelow(2**19) * 2**20)
    with running_platform(
        chains,
        data_dir,
        database_url=database_url,
        settings={
            "CREDITMESH_ACCEPT_LEASE_SECONDS": "2",
            "CREDITMESH_INDEXER_LEASE_SECONDS": "3",  # a restarted API takes the killed one's chains over soon
            "CREDITMESH_INTENT_LEASE_SECONDS": "3",  # and its open transactions
            "CREDITMESH_OUTBOX_LEASE_SECONDS": "3",
            "CREDITMESH_OUTBOX_POLL_SECONDS": "0.2",
            "CREDITMESH_OUTBOX_MAX_BACKOFF_SECONDS": "1",
            KILL_AT: kill_at,
        },
        workers="indexer,outbox",
        lender_timeout=10,  # the revocation test holds a reservation for seconds
    ) as running:
        yield running


def disarmed(platform: RunningPlatform) -> None:
    """The API without a kill point (restarted if it had one)."""
    if platform.env.get(KILL_AT):
        platform.restart_api({KILL_AT: ""})
