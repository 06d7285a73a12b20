"""The same platform on PostgreSQL, driven the way the README does it: `creditmesh wallet accept`."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from api.cli import main
from chain.signers import devnet_account
from tests.contracts.harness import loan_fields
from tests.support.devnet import DeployedChain
from tests.support.platform import RunningPlatform, running_platform

pytestmark = pytest.mark.e2e

BORROWER = devnet_account(9)


@pytest.fixture(scope="module")
def pg_platform(
    devnet_chains: dict[str, DeployedChain],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_schema: Callable[[str], str],
) -> Iterator[RunningPlatform]:
    url = postgres_schema("e2e")
    with running_platform(devnet_chains, tmp_path_factory.mktemp("pg-platform"), database_url=url) as running:
        yield running


def test_readme_flow_on_postgres_with_the_wallet_cli(
    pg_platform: RunningPlatform, devnet_chains: dict[str, DeployedChain]
) -> None:
    key = pg_platform.onboard(BORROWER.address)
    with pg_platform.client(key) as client:
        response = client.post(
            "/v1/credit-requests",
            json={
                "amount": "250.00",
                "asset": "USDC",
                "term_days": 14,
                "collateral": {"asset": "WETH", "amount": "0.5"},
            },
        )
    assert response.status_code == 201, response.text
    best = response.json()["quotes"][0]

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(
            [
                *("wallet", "accept", "--account", "9", "--api-key", key, "--quote-id", best["id"]),
                *("--api-url", pg_platform.api_url, "--chains-file", str(pg_platform.data_dir / "chains.json")),
            ]
        )
    loan = json.loads(printed.getvalue())
    assert loan["status"] == "active"
    assert loan["chain"] == best["chain"]
    chain = devnet_chains[best["chain"]]
    onchain = loan_fields(chain.contract("CreditAggregator"), int(loan["onchain_loan_id"]))
    assert (onchain["borrower"], onchain["status"]) == (BORROWER.address, 1)  # LoanStatus.Active
    engine = sa.create_engine(pg_platform.database_url)
    with engine.connect() as connection:
        stored = connection.execute(sa.text("select status, tx_hash from e2e.loans where id = :id"), {"id": loan["id"]})
        assert stored.one() == ("active", loan["transaction_hash"])
    engine.dispose()
