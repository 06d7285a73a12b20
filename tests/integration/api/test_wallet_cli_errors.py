"""``creditmesh wallet`` against an API that is not there, or refuses, over real HTTP: one line and exit status 1, not
a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api.cli import main
from chain.devnet import free_port
from tests.support.served import served

pytestmark = pytest.mark.integration


def test_the_wallet_says_in_one_line_when_the_api_is_down_or_refuses(tmp_path: Path) -> None:
    """``wallet accept`` and ``repay`` with the API not running, or answering 404, were httpx tracebacks; a missing
    typed-data file for ``sign`` was one too."""
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit, match=f"cannot reach the API at {down}"):
        main(["wallet", "accept", "--quote-id", "q1", "--api-key", "k", "--api-url", down])

    app = FastAPI()

    @app.get("/v1/loans/{loan_id}")
    async def no_loan(loan_id: str) -> JSONResponse:
        problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": f"no loan {loan_id}"}
        return JSONResponse(problem, status_code=404, media_type="application/problem+json")

    with (
        served(app, free_port()) as url,
        pytest.raises(SystemExit, match=r"GET .*/v1/loans/l9: 404 Not Found: no loan l9$"),
    ):
        main(["wallet", "repay", "--loan-id", "l9", "--amount", "1", "--api-key", "k", "--api-url", url])
    with pytest.raises(SystemExit, match=r"wallet sign: .*No such file"):
        main(["wallet", "sign", str(tmp_path / "missing.json")])


def test_a_quote_or_loan_on_a_chain_that_is_not_a_local_devnet_needs_the_chains_file() -> None:
    """Without ``--chains-file`` the wallet looks a chain's RPC URL up among the local devnets: a bare ``next()``
    ended ``accept`` and ``repay`` of a quote or loan on any other chain in a StopIteration traceback."""
    app = FastAPI()

    @app.get("/v1/quotes/{quote_id}")
    async def quote(quote_id: str) -> dict[str, str]:
        return {"id": quote_id, "chain": "ethereum"}

    @app.get("/v1/loans/{loan_id}")
    async def loan(loan_id: str) -> dict[str, str]:
        return {"id": loan_id, "chain": "arbitrum"}

    hint = "is not a local devnet (ethereum-local, polygon-local, arbitrum-local): give --chains-file"
    with served(app, free_port()) as url:
        with pytest.raises(SystemExit, match=f"^wallet accept: ethereum {re.escape(hint)}"):
            main(["wallet", "accept", "--quote-id", "q1", "--api-key", "k", "--api-url", url])
        with pytest.raises(SystemExit, match=f"^wallet repay: arbitrum {re.escape(hint)}"):
            main(["wallet", "repay", "--loan-id", "l1", "--amount", "1", "--api-key", "k", "--api-url", url])
