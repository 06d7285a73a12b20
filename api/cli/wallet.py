"""``creditmesh wallet …``: devnet wallet helpers for the borrower flow (address, sign an acceptance, accept, repay)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from web3.exceptions import Web3Exception

from api.cli._common import API_PORT, devnet_index, local_rpc
from chain.errors import ChainError
from chain.signers import DEVNET_BORROWER_INDEXES, devnet_account


def cmd_wallet(args: argparse.Namespace) -> None:
    """The wallet command; what fails outside it (the API not answering or refusing, an unreadable file, a chain
    not in the chains file) ends it with one line and exit status 1, not a traceback."""
    try:
        _wallet(args)
    except httpx.HTTPStatusError as err:
        raise SystemExit(f"{err.request.method} {err.request.url}: {_problem(err.response)}") from err
    except httpx.ReadTimeout as err:  # the request reached the API, which is still at it (a chain slow to confirm)
        raise SystemExit(
            f"the API at {args.api_url} did not answer in time: what was asked may still be under way; look at the "
            "quote or loan before asking again"
        ) from err
    except httpx.TransportError as err:
        raise SystemExit(f"cannot reach the API at {args.api_url}: {err or type(err).__name__}") from err
    except (ChainError, Web3Exception, OSError, ValueError, KeyError) as err:
        raise SystemExit(f"wallet {args.wallet_command}: {err}") from err


def _problem(response: httpx.Response) -> str:
    """A refusal's status and its problem's detail (or title), as the API sent them."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    said = body.get("detail") or body.get("title") if isinstance(body, dict) else None
    return f"{response.status_code} {response.reason_phrase}" + (f": {said}" if said else "")


def _document(source: str) -> object:
    """The JSON document in file ``source`` (``-``: standard input); ValueError naming it when it is not JSON."""
    text = Path(source).read_text() if source != "-" else sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{'standard input' if source == '-' else source} is not JSON: {err}") from None


def _tell(args: argparse.Namespace, said: str) -> None:
    """What is about to be signed, on standard error: standard output carries the signature or the loan."""
    print(f"wallet {args.wallet_command}: {said}", file=sys.stderr)


def _wallet(args: argparse.Namespace) -> None:
    from api import wallet
    from chain.config import ChainRegistry

    account = devnet_account(args.account)
    if args.wallet_command == "address":
        print(account.address)
    elif args.wallet_command == "sign":
        document, acceptance = wallet.acceptance_in(_document(args.typed_data))
        _tell(args, f"signing {acceptance}")
        print(wallet.sign_acceptance(account, document))
    elif args.wallet_command == "accept":
        headers = {"X-API-Key": args.api_key}
        quote = (
            httpx.get(f"{args.api_url}/v1/quotes/{args.quote_id}", headers=headers, timeout=30)
            .raise_for_status()
            .json()
        )
        registry = ChainRegistry.from_file(args.chains_file) if args.chains_file else None
        rpc = registry.by_name(quote["chain"]).rpc_urls[0] if registry else local_rpc(quote["chain"])
        accepted = wallet.accept_quote(
            account, args.api_url, args.api_key, args.quote_id, rpc, show=lambda said: _tell(args, said)
        )
        print(json.dumps(accepted, indent=2))
    elif args.wallet_command == "repay":
        loan = (
            httpx.get(f"{args.api_url}/v1/loans/{args.loan_id}", headers={"X-API-Key": args.api_key}, timeout=30)
            .raise_for_status()
            .json()
        )
        registry = ChainRegistry.from_file(args.chains_file) if args.chains_file else None
        rpc = registry.by_name(loan["chain"]).rpc_urls[0] if registry else local_rpc(loan["chain"])
        result = wallet.repay_loan(account, args.api_url, args.api_key, args.loan_id, args.amount, rpc)
        print(json.dumps(result, indent=2))


def register(commands: argparse._SubParsersAction[Any]) -> None:
    wallet = commands.add_parser("wallet", help="devnet wallet helpers for the borrower flow")
    wallet.add_argument("--account", type=devnet_index, default=DEVNET_BORROWER_INDEXES[0], help="devnet account index")
    wallet_commands = wallet.add_subparsers(dest="wallet_command", required=True)
    wallet_commands.add_parser("address", help="print the account's address")
    sign = wallet_commands.add_parser("sign", help="sign a quote's acceptance_typed_data (file or - for stdin)")
    sign.add_argument("typed_data")
    accept = wallet_commands.add_parser("accept", help="permit (or approve) collateral, sign, post")
    accept.add_argument("--quote-id", required=True)
    accept.add_argument("--api-key", required=True)
    accept.add_argument("--api-url", default=f"http://127.0.0.1:{API_PORT}")
    accept.add_argument("--chains-file", type=Path, default=None)
    repay = wallet_commands.add_parser(
        "repay", help="sign a repayment and a permit of the debt asset, post them (the platform relays; no gas)"
    )
    repay.add_argument("--loan-id", required=True)
    repay.add_argument("--amount", required=True, help='decimal in the loan asset\'s units, or "max" to close')
    repay.add_argument("--api-key", required=True)
    repay.add_argument("--api-url", default=f"http://127.0.0.1:{API_PORT}")
    repay.add_argument("--chains-file", type=Path, default=None)
    wallet.set_defaults(func=cmd_wallet)
    # `--account` also accepted after the wallet sub-command, as the README writes it
    for sub in wallet_commands.choices.values():
        sub.add_argument("--account", type=devnet_index, default=argparse.SUPPRESS)
