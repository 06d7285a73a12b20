"""A loan's detail while its chain's node refuses: the record answers, and the reason shown to the borrower names the
chain, never the node's URL (an RPC provider's key sits in its path) nor the node's own message."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest
from aiohttp import web
from web3 import AsyncWeb3

from aggregator.loans import InMemoryLoanStore, LoanRecord, LoanScope, LoanService
from aggregator.platform import ChainRuntime
from chain.client import FailoverProvider
from tests.support.served import posts_served

pytestmark = pytest.mark.integration

KEY = "SECRET-PROJECT-KEY"


@asynccontextmanager
async def refusing_node() -> AsyncIterator[str]:
    """A JSON-RPC node behind a keyed path that answers every call with an error naming the key (run in the test's
    own event loop, so that it answers while the test waits)."""

    async def refuse(request: web.Request) -> web.Response:
        call = await request.json()
        error = {"code": -32000, "message": f"internal error (project {KEY})"}
        return web.json_response({"jsonrpc": "2.0", "id": call["id"], "error": error})

    async with posts_served(refuse, "/v3/{key}") as url:
        yield f"{url}/v3/{KEY}"


async def test_the_live_error_names_the_chain_and_not_the_node(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryLoanStore()
    opened = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    loan = LoanRecord(
        "l0", "ethereum-local", 31337, "0x" + "11" * 20, "active", "USDC", 10**9, "0x" + "ab" * 32, opened
    )
    store.loans = {"l0": replace(loan, borrower_id="alice", onchain_loan_id=1)}
    async with refusing_node() as url:
        provider = FailoverProvider([url], 31337)
        aggregator = SimpleNamespace(address=loan.contract)  # the loan's deployment: the newest
        chain = SimpleNamespace(name="ethereum-local", w3=AsyncWeb3(provider), aggregator=lambda: aggregator)
        service = LoanService(store, {"ethereum-local": cast(ChainRuntime, chain)})
        try:
            with caplog.at_level(logging.WARNING, logger="aggregator.loans"):
                detail = await service.detail("l0", LoanScope(borrower_id="alice"))
        finally:
            await provider.disconnect()

    assert detail.live is None
    assert detail.loan.id == "l0"
    assert detail.live_error == "chain ethereum-local did not answer"
    assert KEY in caplog.text, "the operator's log keeps the node's answer"
