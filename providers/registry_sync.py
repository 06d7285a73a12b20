"""Every API process follows the provider registrations stored in the database: a provider registered (or changed,
or disabled) through one process is quoted (or dropped) by every other within about a second, without a restart.

Each process polls the registrations' change counter (one row, ``store.providers.ProviderRegistryVersionRow``,
bumped in the registering transaction) every ``CREDITMESH_PROVIDERS_RELOAD_SECONDS`` and, when it moved, brings its
``ProviderRegistry`` in line with the stored rows (``ProviderRegistry.sync_persisted``); the quoting service holds
the registry's live adapter list, so its next fan-out asks the new provider. On SQLite (one process) the poll finds
nothing new and costs one indexed read."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from providers.registry import ProviderRegistry

log = logging.getLogger(__name__)


async def follow_registrations(registry: ProviderRegistry, interval_seconds: float) -> None:
    """Poll until cancelled; a database that does not answer is retried at the next poll."""
    failing = False
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await registry.sync_persisted()
        except SQLAlchemyError as err:
            if not failing:
                log.warning("provider registrations not followed while the database fails (retried): %s", err)
            failing = True
        except Exception:  # never the end of the poll: this process would quote removed providers for good
            log.exception("provider registrations not followed this time (retried)")
            failing = True
        else:
            if failing:
                log.info("provider registrations followed again")
            failing = False
