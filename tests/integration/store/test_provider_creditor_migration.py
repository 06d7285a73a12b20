"""Migration 0040 gives the provider registrations the creditor a lender lends as (``legal_name``,
``postal_address``), on SQLite and on PostgreSQL. A registration stored before it has neither: it still loads and
quotes, and the notices given for it say its identity is not on file (never a crash); the downgrade keeps the rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from aggregator.fanout import ProviderOutcome
from aggregator.quote_refusals import request_notice
from compliance.adverse_action import LOCAL_NOTICE_PARTIES
from providers.destinations import PinnedTransport
from store.db import Database
from store.providers import ProviderRepository
from tests.integration.providers.support import GUARD, SECRET, stored_registry
from tests.support.migrations import downgrade, upgrade

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AT = datetime(2026, 11, 1, tzinfo=UTC)


async def test_a_lender_registered_before_0040_loads_with_no_creditor_and_its_notice_says_so(fresh: Database) -> None:
    with fresh.engine.begin() as connection:
        upgrade(connection, "0039_chain_intent_key_prefix")
        connection.execute(
            text(
                "INSERT INTO provider_registrations (provider_id, kind, config, enabled, created_at) "
                "VALUES ('old-bank', 'http', :config, :enabled, :at)"
            ),
            {
                "config": json.dumps({"base_url": "http://127.0.0.1:9/lenders/old-bank", "secret": SECRET}),
                "enabled": True,
                "at": AT,
            },
        )
    fresh.migrate()
    with fresh.unit_of_work() as uow:
        row = ProviderRepository(uow.session).registration("old-bank")
        assert row is not None
        assert (row.legal_name, row.postal_address) == (None, None)

    async with httpx.AsyncClient(transport=PinnedTransport(GUARD)) as http:
        registry = stored_registry(fresh, http)
        await registry.load_persisted()
        assert registry.load_errors == {}
        provider = registry.get_provider("old-bank")
        assert provider in registry.adapters(), "it still quotes"
        assert provider.creditor() is None
        outcome = ProviderOutcome("old-bank", "declined", "outside our appetite", 0)
        notice = request_notice(LOCAL_NOTICE_PARTIES, "1 USDC for 7 days", [], [outcome], AT, registry.adapters())
    (lender,) = notice["lenders"]
    assert (lender["provider_id"], lender["identity"], lender["legal_name"]) == ("old-bank", "not-on-file", None)

    with fresh.engine.begin() as connection:
        connection.execute(
            text("UPDATE provider_registrations SET legal_name = 'Old Bank, N.A.', postal_address = '1 Old Street'")
        )
        downgrade(connection, "0039_chain_intent_key_prefix")
        rows = connection.execute(text("SELECT provider_id FROM provider_registrations")).scalars().all()
    assert rows == ["old-bank"]
