"""``creditmesh wallet`` against an API that is not there, or refuses, over real HTTP: one line and exit status 1, not
a traceback; ``accept`` of a quote whose acceptance or RPC is for another chain or contract refused before anything
is signed or sent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from web3 import Web3

from api.bootstrap import write_chains_file
from api.cli import main
from api.wallet import sign_acceptance
from chain.devnet import Devnet, free_port
from tests.integration.chain.support import fresh_anvil
from tests.support.acceptances import AGGREGATOR, BORROWER, acceptance, offer
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


@pytest.fixture
def anvil() -> Iterator[Devnet]:
    with fresh_anvil() as devnet:  # ethereum-local, chain 31337
        yield devnet


def _quote(chain_id: int, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "q1",
        "chain": "ethereum-local",
        "chain_id": chain_id,
        "contract": AGGREGATOR,
        "principal": "1500.00",
        "asset": "USDC",
        "term_days": 30,
        "collateral": {"asset": "WETH", "amount": "1.0"},
        "offer": offer(chain_id),
        "acceptance_typed_data": document,
    }


def _lender_api(quote: dict[str, Any], posted: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/quotes/{quote_id}")
    async def get_quote(quote_id: str) -> dict[str, Any]:
        return quote

    @app.post("/v1/quotes/{quote_id}/accept", status_code=201)
    async def accept(quote_id: str, body: dict[str, Any]) -> dict[str, Any]:
        posted.append(body)
        return {"id": "loan-1", "quote_id": quote_id}

    return app


REFUSALS = [
    (
        _quote(31337, acceptance(chain_id=1, offered_on=1)),
        r"wallet accept: quote q1's acceptance is for chain 1, the quote is on ethereum-local \(chain 31337\): "
        "not signed$",
    ),
    (
        _quote(31337, acceptance(contract="0x" + "55" * 20)),
        f"wallet accept: quote q1's acceptance is for contract {Web3.to_checksum_address('0x' + '55' * 20)}, the "
        f"quote's contract is {AGGREGATOR}: not signed$",
    ),
    (  # the quote and its acceptance agree on chain 137, the RPC of the chains file serves 31337
        _quote(137, acceptance(chain_id=137, offered_on=137)),
        r"wallet accept: the RPC http://127\.0\.0\.1:\d+ serves chain 31337, not ethereum-local \(chain 137\) of "
        r"quote q1: nothing signed; give that chain's RPC URL \(--chains-file\)$",
    ),
]


@pytest.mark.parametrize(("quote", "reason"), REFUSALS, ids=["domain-chain", "domain-contract", "rpc-chain"])
def test_accept_refuses_an_acceptance_or_rpc_for_another_chain_or_contract_before_signing(
    anvil: Devnet, tmp_path: Path, capsys: pytest.CaptureFixture[str], quote: dict[str, Any], reason: str
) -> None:
    """``accept`` signed the quote's acceptance under whatever domain it named and used whatever chain the RPC
    served: a permit or approval (a transaction) and a signature for another chain or contract than the quote's."""
    write_chains_file(tmp_path / "chains.json", [anvil.config()])
    posted: list[dict[str, Any]] = []
    with served(_lender_api(quote, posted), free_port()) as url, pytest.raises(SystemExit) as refused:
        main(["wallet", "accept", "--quote-id", "q1", "--api-key", "k", "--api-url", url,
              "--chains-file", str(tmp_path / "chains.json")])  # fmt: skip
    assert re.match(reason, str(refused.value.code)), refused.value.code
    assert posted == []
    assert Web3(Web3.HTTPProvider(anvil.rpc_url)).eth.get_transaction_count(BORROWER.address) == 0  # no approval
    assert capsys.readouterr().out == ""


def test_accept_tells_what_it_signs_on_stderr_and_prints_the_loan_alone_on_stdout(
    anvil: Devnet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_chains_file(tmp_path / "chains.json", [anvil.config()])
    document = acceptance()
    posted: list[dict[str, Any]] = []
    with served(_lender_api(_quote(31337, document), posted), free_port()) as url:
        main(["wallet", "accept", "--quote-id", "q1", "--api-key", "k", "--api-url", url,
              "--chains-file", str(tmp_path / "chains.json")])  # fmt: skip
    said = capsys.readouterr()
    assert json.loads(said.out) == {"id": "loan-1", "quote_id": "q1"}  # what README's `| tee /tmp/loan.json` reads
    assert said.err == (
        f"wallet accept: signing an acceptance on chain 31337 for contract {AGGREGATOR}: principal 1500000000 base "
        f"units of {offer()['asset']}, collateral 1000000000000000000 base units of {offer()['collateralAsset']} — "
        "quote q1: 1500.00 USDC for 30 days on ethereum-local against 1.0 WETH\n"
    )
    assert [body["signature"] for body in posted] == [sign_acceptance(BORROWER, document)]
