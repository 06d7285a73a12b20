"""``bench/scale_loans.py``'s borrowers: fresh wallets with gas, WETH minted and the aggregator approved for the
collateral, each onboarded through the API and holding one pool quote on the loans' chain (``prepare``), made before
any clock starts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from api.demo import onboard
from bench.raw_sends import WETH
from chain.artifacts import load_artifact
from chain.deployment import DeploymentRecord

AMOUNT = "100.00"
LOAN_REQUEST = {"amount": AMOUNT, "asset": "USDC", "term_days": 30, "collateral": {"asset": "WETH", "amount": "0.1"}}
QUOTE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Borrower:
    """A borrower ready to accept: its wallet, its API key and the pool quote it holds."""

    account: LocalAccount
    key: str
    quote: dict[str, Any]


def _send(w3: Web3, account: LocalAccount, call: Any) -> None:
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)
    if w3.eth.wait_for_transaction_receipt(tx_hash)["status"] != 1:
        raise RuntimeError(f"setting up a borrower failed: {tx_hash.hex()}")


def _funded(rpc_url: str, record: DeploymentRecord) -> LocalAccount:
    """A fresh wallet with gas and 1 WETH, the aggregator approved to take its collateral."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    weth = w3.eth.contract(address=record.address("WETH"), abi=load_artifact("MockERC20").abi)
    account: LocalAccount = Account.create()
    w3.provider.make_request("anvil_setBalance", [account.address, hex(WETH)])  # type: ignore[arg-type]
    _send(w3, account, weth.functions.mint(account.address, WETH))
    _send(w3, account, weth.functions.approve(record.address("CreditAggregator"), 2**256 - 1))
    return account


def _quoted(api_url: str, admin_key: str, rpc_url: str, record: DeploymentRecord, chain: str) -> Borrower:
    account = _funded(rpc_url, record)
    key = onboard(api_url, admin_key, account.address)
    for _ in range(QUOTE_ATTEMPTS):  # a busy machine can make every provider miss the fan-out deadline
        response = httpx.post(
            f"{api_url}/v1/credit-requests",
            json=LOAN_REQUEST | {"preferred_chains": [chain]},
            headers={"X-API-Key": key},
            timeout=120,
        )
        if response.status_code != 201:
            raise RuntimeError(f"credit request refused: {response.text}")
        pool = [q for q in response.json()["quotes"] if q["kind"] == "pool" and q["chain"] == chain]
        if pool:
            return Borrower(account, key, pool[0])
    raise RuntimeError(f"no pool quote on {chain} in {QUOTE_ATTEMPTS} requests: {response.text}")


def prepare(
    api_urls: list[str], admin_key: str, rpc_url: str, record: DeploymentRecord, chain: str, count: int
) -> list[Borrower]:
    """``count`` borrowers, each holding one pool quote on ``chain`` (set up through the API processes in turn)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(
            pool.map(
                lambda n: _quoted(api_urls[n % len(api_urls)], admin_key, rpc_url, record, chain),
                range(count),
            )
        )
