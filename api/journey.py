"""A borrower's whole journey through the API, as ``creditmesh run`` shows it at start-up: ask for credit once, accept
the best pool quote with a collateral permit, repay part with a signed repayment and a permit of the debt asset,
repay the rest (``"max"``), the loan closed and the collateral back in the wallet — the borrower paying no gas at
any step (the platform relays every transaction)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from api.wallet import accept_quote, repay_loan
from chain.artifacts import load_artifact
from chain.signers import DEVNET_ROLE_INDEX, Role, devnet_account

#: what ``fund_on_devnets`` mints a new wallet on every devnet, in whole units: the collateral, and the fee and
#: interest the proceeds do not cover
DEVNET_FUNDING = {"WETH": 1, "USDC": 50}

REQUEST: dict[str, Any] = {
    "amount": "1500.00",
    "asset": "USDC",
    "term_days": 30,
    "collateral": {"asset": "WETH", "amount": "1.0"},
}


def _collateral_balance(rpc_url: str, loan: dict[str, Any]) -> Callable[[str], str]:
    """Reads a wallet's balance of ``loan``'s collateral token, in whole units."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    aggregator = w3.eth.contract(
        address=to_checksum_address(loan["contract"]), abi=load_artifact("CreditAggregator").abi
    )
    collateral = aggregator.functions.getLoan(int(loan["onchain_loan_id"])).call()[9]  # Loan.collateralAsset
    token = w3.eth.contract(address=collateral, abi=load_artifact("MockERC20").abi)
    scale = Decimal(10) ** int(token.functions.decimals().call())
    return lambda wallet: format((Decimal(token.functions.balanceOf(wallet).call()) / scale).normalize(), "f")


def journey(
    api_url: str, api_key: str, account: LocalAccount, rpc_for: Callable[[str], str], say: Callable[[str], None]
) -> dict[str, Any]:
    """Run the journey with ``account``'s key (a devnet borrower already onboarded), telling each step to ``say``;
    the closed loan as ``GET /v1/loans/{id}`` shows it. ``rpc_for`` maps a chain name to its RPC URL (the wallet
    reads token nonces for its permits)."""
    with httpx.Client(base_url=api_url, headers={"X-API-Key": api_key}, timeout=120) as client:
        response = client.post("/v1/credit-requests", json=REQUEST)
        if response.status_code != 201:
            raise RuntimeError(f"the credit request failed: {response.text}")
        quotes = response.json()["quotes"]
        say(f"1. request  1,500 USDC for 30 days against 1 WETH: {len(quotes)} quotes")
        pool = [q for q in quotes if q["kind"] == "pool"]
        if not pool:
            raise RuntimeError("no pool quote to show the journey with")
        quote = pool[0]
        rpc = rpc_for(quote["chain"])
        say(f"   best pool quote on {quote['chain']}: APR {quote['disclosure']['apr']}%")
    loan = accept_quote(account, api_url, api_key, quote["id"], rpc)
    balance = _collateral_balance(rpc, loan)
    held = balance(account.address)
    say(f"2. accept   loan {loan['id']} opened (tx {loan['transaction_hash']}); wallet holds {held} WETH")
    partial = repay_loan(account, api_url, api_key, loan["id"], "100.00", rpc)
    say(
        f"3. repay    100.00 USDC: interest {partial['interest_paid']}, principal {partial['principal_paid']}; "
        f"owed now {partial['loan']['live']['total_owed']}"
    )
    closed = repay_loan(account, api_url, api_key, loan["id"], "max", rpc)
    record: dict[str, Any] = closed["loan"]
    say(
        f"4. repay    max: interest {closed['interest_paid']}, principal {closed['principal_paid']}; "
        f"closed {closed['closed']}, status {record['status']}"
    )
    say(f"5. collateral back: wallet holds {balance(account.address)} WETH")
    return record


def fund_on_devnets(
    api_url: str, api_key: str, rpc_for: Callable[[str], str], wallet: str, amounts: dict[str, int] | None = None
) -> None:
    """Mint ``wallet`` the devnets' mock tokens (``DEVNET_FUNDING``) on every chain, sent by the deployer (devnet
    only: the mocks' open mint; the wallet itself gets no ETH)."""
    document = httpx.get(f"{api_url}/v1/platform", headers={"X-API-Key": api_key}, timeout=30).raise_for_status()
    deployer = devnet_account(DEVNET_ROLE_INDEX[Role.DEPLOYER])
    for asset in document.json()["assets"]:
        whole = (amounts or DEVNET_FUNDING).get(asset["symbol"])
        for chain_name, token_address in asset["addresses"].items():
            if not whole:
                continue
            w3 = Web3(Web3.HTTPProvider(rpc_for(chain_name), request_kwargs={"timeout": 30}))
            token = w3.eth.contract(address=to_checksum_address(token_address), abi=load_artifact("MockERC20").abi)
            mint = token.functions.mint(to_checksum_address(wallet), whole * 10 ** int(asset["decimals"]))
            tx = mint.build_transaction(
                {"from": deployer.address, "nonce": w3.eth.get_transaction_count(deployer.address, "pending")}
            )
            tx_hash = w3.eth.send_raw_transaction(deployer.sign_transaction(dict(tx)).raw_transaction)  # type: ignore[arg-type]
            w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
