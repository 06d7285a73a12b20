"""Migration 0032 gives the quotes stored before it their lender's reference (``providerRef`` in the offer) as the
``provider_ref`` column the webhook and payment lookups now read, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from store.aggregator import QuoteRow, of_offer
from store.db import Database
from tests.support.migrations import upgrade

pytestmark = pytest.mark.integration

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _insert_quote(connection: object, quote_id: str, provider_id: str, offer: dict[str, object]) -> None:
    connection.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO quotes (id, request_id, borrower_id, provider_id, kind, chain_name, chain_id, contract, "
            "rank, offer, offer_digest, offer_signature, attestation, attestation_signature, disclosure, status, "
            "expires_at, created_at) VALUES (:id, 'r-1', 'b-1', :provider, 'lender', 'ethereum-local', 31337, "
            ":contract, 1, :offer, :digest, '0x', '{}', '0x', '{}', 'offered', :at, :at)"
        ),
        {
            "id": quote_id,
            "provider": provider_id,
            "contract": "0x" + "11" * 20,
            "offer": json.dumps(offer),
            "digest": "0x" + quote_id.encode().hex().rjust(64, "0"),
            "at": AT,
        },
    )


def test_quotes_stored_before_0032_are_found_by_their_lender_s_reference(fresh: Database) -> None:
    with fresh.engine.begin() as connection:
        upgrade(connection, "0031_identity_kyc_applicant")
        connection.execute(
            text(
                "INSERT INTO borrowers (id, wallet_address, jurisdiction, created_at) "
                "VALUES ('b-1', :wallet, 'US-NY', :at)"
            ),
            {"wallet": "0x" + "ab" * 20, "at": AT},
        )
        connection.execute(
            text(
                "INSERT INTO credit_requests (id, borrower_id, asset, amount, term_days, purpose, collateral_asset, "
                "collateral_amount, preferred_chains, status, risk, created_at) VALUES ('r-1', 'b-1', 'USDC', "
                "'1000', 30, 'test', 'WETH', '1', '[]', 'quoted', '{}', :at)"
            ),
            {"at": AT},
        )
        _insert_quote(connection, "q-bank", "sim-bank", {"providerRef": "offer-7", "principal": "1000"})
        _insert_quote(connection, "q-other", "sim-fintech", {"providerRef": "offer-7"})
        _insert_quote(connection, "q-pool", "pool:usdc", {"principal": "1000"})
    fresh.migrate()
    with fresh.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, provider_ref FROM quotes ORDER BY id")).all()
    assert {quote_id: reference for quote_id, reference in rows} == {
        "q-bank": "offer-7",
        "q-other": "offer-7",
        "q-pool": None,
    }
    with fresh.engine.connect() as connection:
        found = connection.execute(select(QuoteRow.id).where(of_offer("sim-bank", "offer-7"))).scalars().all()
    assert found == ["q-bank"]
