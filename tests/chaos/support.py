"""What the chaos scenarios share: borrowers ready to accept on a chain, load spread over the API processes, and
the invariants checked after it — one loan per accepted quote (chain and database agree), no gap or repeat in the
relayer's nonces on any chain."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.demo import onboard
from api.wallet import sign_acceptance
from chain.signers import Role, devnet_signer
from tests.support.cluster import ApiCluster
from tests.support.devnet import DeployedChain
from tests.support.services import _sqlalchemy_postgres_url

COLLATERAL = 10**18  # 1 WETH
REQUEST = {"amount": "1000.00", "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "1.0"}}


@dataclass(frozen=True, slots=True)
class Borrower:
    account: LocalAccount
    key: str
    chain: DeployedChain


def _send(chain: DeployedChain, account: LocalAccount, call: Any) -> None:
    tx = call.build_transaction({"from": account.address, "nonce": chain.w3.eth.get_transaction_count(account.address)})
    tx_hash = chain.w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)
    assert chain.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def borrower(cluster: ApiCluster, chain: DeployedChain, via: int) -> Borrower:
    """A fresh wallet with gas and 5 WETH on ``chain``, the aggregator approved for it, onboarded through API
    process ``via``."""
    account: LocalAccount = Account.create()
    chain.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**18)])  # type: ignore[arg-type]
    _send(chain, account, chain.contract("WETH").functions.mint(account.address, 5 * COLLATERAL))
    aggregator = chain.record.address("CreditAggregator")
    _send(chain, account, chain.contract("WETH").functions.approve(aggregator, 5 * COLLATERAL))
    key = onboard(cluster.urls[via % len(cluster.urls)], cluster.platform.admin_key, account.address)
    return Borrower(account, key, chain)


async def credit_request(client: httpx.AsyncClient, url: str, who: Borrower) -> httpx.Response:
    return await client.post(
        f"{url}/v1/credit-requests",
        json=REQUEST | {"preferred_chains": [who.chain.name]},
        headers={"X-API-Key": who.key},
    )


def pool_quote(response: httpx.Response, chain: str) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    found = [q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == chain]
    assert len(found) == 1, f"no pool quote on {chain}: {response.json().get('provider_outcomes')}"
    return dict(found[0])


async def accept(client: httpx.AsyncClient, url: str, who: Borrower, quote: dict[str, Any]) -> httpx.Response:
    return await client.post(
        f"{url}/v1/quotes/{quote['id']}/accept",
        json={"signature": sign_acceptance(who.account, quote["acceptance_typed_data"])},
        headers={"X-API-Key": who.key},
    )


def settled(cluster: ApiCluster, who: Borrower, quote_id: str, via: int = 0, timeout: float = 120) -> str:
    """The quote's status once its accept has been driven to an end (accepted, or offered again)."""
    deadline = time.monotonic() + timeout
    with cluster.client(via, who.key) as client:
        while time.monotonic() < deadline:
            answer = client.get(f"/v1/quotes/{quote_id}")
            if answer.status_code == 200 and answer.json()["status"] in ("accepted", "offered"):
                return str(answer.json()["status"])
            time.sleep(0.3)
    raise AssertionError(f"the accept of {quote_id} was not driven to its end in {timeout} s")


def loans_by_quote(database_url: str) -> dict[str, int]:
    """How many loan records each quote has."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("select quote_id, count(*) from loans group by quote_id"))
            return {str(quote_id): int(count) for quote_id, count in rows}
    finally:
        engine.dispose()


def loans_opened(who: Borrower) -> list[Any]:
    event = who.chain.contract("CreditAggregator").events.LoanOpened()
    return list(event.get_logs(from_block=0, argument_filters={"borrower": who.account.address}))


def relayer_nonces(chain: DeployedChain, from_block: int) -> list[int]:
    """The nonces of the relayer's transactions mined on ``chain`` since ``from_block``, in block order."""
    relayer = devnet_signer(Role.RELAYER).address
    nonces = []
    for number in range(from_block, chain.w3.eth.block_number + 1):
        for tx in chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if not isinstance(tx, bytes) and tx["from"] == relayer:
                nonces.append(int(tx["nonce"]))
    return nonces


def assert_no_nonce_gap_or_repeat(chain: DeployedChain, from_block: int, first_nonce: int) -> None:
    """The relayer's nonces on ``chain`` since ``from_block`` are ``first_nonce``, ``first_nonce + 1``, … with none
    repeated or skipped, and nothing of the relayer's waits in the pool behind a gap."""
    nonces = relayer_nonces(chain, from_block)
    assert nonces == list(range(first_nonce, first_nonce + len(nonces))), f"{chain.name}: {nonces}"
    relayer = devnet_signer(Role.RELAYER).address
    mined = chain.w3.eth.get_transaction_count(relayer, "latest")
    assert mined == first_nonce + len(nonces), f"{chain.name}: nonce {mined} after {len(nonces)} from {first_nonce}"
    pool: Any = chain.w3.provider.make_request("txpool_status", [])  # type: ignore[arg-type]
    assert int(pool["result"]["queued"], 16) == 0, f"{chain.name}: transactions queued behind a nonce gap"


class RestartablePostgres:
    """A PostgreSQL of the test's own (pgserver) on one data directory, which the test stops and starts again at
    the same address (its unix socket in the data directory), keeping what was written."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""
        self._server: Any = None

    def start(self) -> None:
        from pgserver.postgres_server import get_server

        self._server = get_server(str(self.data_dir), cleanup_mode="stop")
        self.url = _sqlalchemy_postgres_url(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
