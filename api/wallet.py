"""Borrower-side wallet helpers for devnets: sign an EIP-2612 permit for the collateral (or, for a token without
permit, approve it), and sign an acceptance with a devnet key, so that the README's example is copy-paste; sign a
repayment and a permit of the debt asset (or approve it), each permit under the token's domain as ``GET /v1/platform``
lists it. A real borrower signs the same EIP-712 documents in their own wallet. With
a permit the borrower needs no ETH for gas: the platform relays ``openLoanWithPermit`` and ``repayWithPermit``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from eth_abi.exceptions import EncodingError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError
from web3 import Web3
from web3.exceptions import Web3Exception

from aggregator.assets import Asset, parse_amount
from aggregator.errors import InvalidCreditRequest
from aggregator.token_domains import read_token_domain_now
from chain.artifacts import load_artifact
from contracts import typed_data
from contracts.typed_data import REPAY_ALL, Domain, Repayment

#: a "max" repayment's permit covers what is owed now plus this share (basis points) for the interest until it is
#: mined; what is left of it stays as an allowance only a signed Repayment can spend
MAX_PERMIT_MARGIN_BPS = 100
#: how long a signed repayment and its permit (and an accept's permit, for an offer without an expiry) hold, from the
#: chain's time: its latest block's, which a devnet moved on with ``evm_increaseTime`` runs ahead of this computer's
SIGNATURE_LIFETIME_SECONDS = 3_600
#: how long an accept or a repayment is waited for: the API waits up to ``CREDITMESH_ACCEPT_WAIT_SECONDS`` (at most
#: 600) for the chain to confirm before it answers, so a shorter wait here reported an accept still under way as an
#: API that cannot be reached
API_WAIT_SECONDS = 630.0


def _web3(rpc_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))


class SigningRefused(ValueError):
    """A document the wallet does not sign: not a creditmesh acceptance as the API hands one (malformed, another
    EIP-712 document such as a permit), one whose domain names another chain or contract than its quote, or a quote
    whose chain the RPC given does not serve. Nothing was signed."""


@dataclass(frozen=True, slots=True)
class AcceptanceToSign:
    """What an acceptance binds the borrower to, read from its EIP-712 document before it is signed (base units)."""

    chain_id: int
    contract: ChecksumAddress
    asset: ChecksumAddress
    principal: int
    collateral_asset: ChecksumAddress
    collateral_amount: int

    def __str__(self) -> str:
        return (
            f"an acceptance on chain {self.chain_id} for contract {self.contract}: principal {self.principal} base "
            f"units of {self.asset}, collateral {self.collateral_amount} base units of {self.collateral_asset}"
        )


def acceptance_to_sign(document: object) -> AcceptanceToSign:
    """What the acceptance ``document`` (a quote's ``acceptance_typed_data``) binds its signer to; SigningRefused,
    naming what is wrong, for anything that is not a creditmesh acceptance: a JSON list or string, a document without
    its ``domain``, ``types``, ``primaryType`` or ``message``, another primary type or types, another domain."""
    if not isinstance(document, dict):
        raise SigningRefused(f"the document is a JSON {type(document).__name__}, not an EIP-712 object")
    missing = [key for key in ("domain", "types", "primaryType", "message") if key not in document]
    if missing:
        raise SigningRefused(f"the document has no {', '.join(missing)}: it is not EIP-712 typed data")
    if document["primaryType"] != "Acceptance" or document["types"] != typed_data.ACCEPTANCE_TYPES:
        raise SigningRefused(
            f"the document is {document['primaryType']!r} typed data, not a creditmesh Acceptance: the wallet signs a "
            "quote's acceptance_typed_data only"
        )
    domain, message = document["domain"], document["message"]
    ours = (typed_data.DOMAIN_NAME, typed_data.DOMAIN_VERSION)
    if not isinstance(domain, dict) or (domain.get("name"), domain.get("version")) != ours:
        raise SigningRefused(f"the acceptance's domain is not creditmesh's (name, version {ours}): {domain}")
    if set(domain) - _DOMAIN_FIELDS:  # a salt or another field would sign under another separator
        raise SigningRefused(f"the acceptance's domain has the fields {sorted(domain)}, not {sorted(_DOMAIN_FIELDS)}")
    offer = message.get("offer") if isinstance(message, dict) else None
    if not isinstance(offer, dict):
        raise SigningRefused("the acceptance's message has no offer")
    try:
        read = AcceptanceToSign(
            int(domain["chainId"]),
            to_checksum_address(domain["verifyingContract"]),
            to_checksum_address(offer["asset"]),
            int(offer["principal"]),
            to_checksum_address(offer["collateralAsset"]),
            int(offer["collateralAmount"]),
        )
        offered_on = int(offer["chainId"])
    except KeyError as err:
        raise SigningRefused(f"the acceptance has no {err}") from None
    except (TypeError, ValueError) as err:
        raise SigningRefused(f"the acceptance does not read: {err}") from None
    if offered_on != read.chain_id:
        raise SigningRefused(f"the acceptance's offer is for chain {offered_on}, its domain for chain {read.chain_id}")
    try:  # it encodes as its EIP-712 types now, before any permit, approval or signature is made for it
        typed_data.digest(document)
    except _NOT_ENCODED as err:
        raise SigningRefused(f"the typed data does not encode: {err}") from None
    return read


#: an acceptance domain's fields (``contracts.typed_data.Domain``)
_DOMAIN_FIELDS = frozenset({"name", "version", "chainId", "verifyingContract"})
#: what encoding typed data raises for a value that is not its type (eth-utils' ValidationError for the domain)
_NOT_ENCODED = (ValueError, TypeError, EncodingError, ValidationError)


def acceptance_in(document: object) -> tuple[dict[str, Any], AcceptanceToSign]:
    """The acceptance to sign in ``document`` — a quote's ``acceptance_typed_data``, or the whole quote as
    ``GET /v1/quotes/{id}`` answers it (its acceptance then checked against its chain id and contract) — and what it
    binds its signer to; SigningRefused for anything else."""
    if isinstance(document, dict) and "acceptance_typed_data" in document:
        acceptance = acceptance_to_sign(document["acceptance_typed_data"])
        check_quote_domain(document, acceptance)
        return document["acceptance_typed_data"], acceptance
    acceptance = acceptance_to_sign(document)
    assert isinstance(document, dict)  # acceptance_to_sign refuses anything else
    return document, acceptance


def check_quote_domain(quote: dict[str, Any], acceptance: AcceptanceToSign) -> None:
    """SigningRefused unless the acceptance's EIP-712 domain names the quote's chain id and contract: a signature
    under another domain is one for another chain or contract than the quote the borrower means to accept."""
    if acceptance.chain_id != quote.get("chain_id"):
        raise SigningRefused(
            f"quote {quote.get('id')}'s acceptance is for chain {acceptance.chain_id}, the quote is on "
            f"{quote.get('chain')} (chain {quote.get('chain_id')}): not signed"
        )
    if acceptance.contract.lower() != str(quote.get("contract")).lower():
        raise SigningRefused(
            f"quote {quote.get('id')}'s acceptance is for contract {acceptance.contract}, the quote's contract is "
            f"{quote.get('contract')}: not signed"
        )


def check_rpc_chain(rpc_url: str, quote: dict[str, Any]) -> None:
    """SigningRefused unless ``rpc_url`` serves the quote's chain id: the permit's token nonce and domain, or the
    approval, would be another chain's."""
    served = _web3(rpc_url).eth.chain_id
    if served != quote.get("chain_id"):
        raise SigningRefused(
            f"the RPC {rpc_url} serves chain {served}, not {quote.get('chain')} (chain {quote.get('chain_id')}) of "
            f"quote {quote.get('id')}: nothing signed; give that chain's RPC URL (--chains-file)"
        )


def sign_acceptance(account: LocalAccount, document: dict[str, Any]) -> str:
    """The 0x signature of a quote's ``acceptance_typed_data``; SigningRefused when a value does not encode as its
    EIP-712 type."""
    try:
        return "0x" + typed_data.sign(document, account.key).hex()
    except _NOT_ENCODED as err:
        raise SigningRefused(f"the typed data does not encode: {err}") from None


def approve_collateral(account: LocalAccount, rpc_url: str, token: str, spender: str, amount: int) -> str:
    """ERC-20 approve from the devnet account; returns the transaction hash."""
    w3 = _web3(rpc_url)
    erc20 = w3.eth.contract(address=to_checksum_address(token), abi=load_artifact("MockERC20").abi)
    tx = erc20.functions.approve(to_checksum_address(spender), amount).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(dict(tx)).raw_transaction)  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    return tx_hash.to_0x_hex()


def sign_permit(
    account: LocalAccount, rpc_url: str, token: str, spender: str, amount: int, deadline: int
) -> dict[str, Any] | None:
    """An EIP-2612 permit of ``amount`` to ``spender`` as the API takes it, signed under the token's permit domain as
    ``GET /v1/platform`` lists it (``aggregator.token_domains``: the domain that hashes to the token's
    ``DOMAIN_SEPARATOR()``, an EIP-5267 token's or an older one's such as USDC's FiatToken); None when the token has
    none the platform checks a permit under (no permit, or a domain of other fields, such as a salted one)."""
    w3 = _web3(rpc_url)
    address = to_checksum_address(token)
    domain = read_token_domain_now(w3, address)
    if domain is None:
        return None
    erc20 = w3.eth.contract(address=address, abi=load_artifact("MockERC20").abi)
    try:
        nonce = erc20.functions.nonces(account.address).call()
    except (Web3Exception, ValueError):
        return None
    document = typed_data.permit_typed_data(
        domain, typed_data.Permit(account.address, to_checksum_address(spender), amount, int(nonce), deadline)
    )
    signature = typed_data.sign(document, account.key)
    return {
        "value": str(amount),
        "deadline": deadline,
        "v": signature[64],
        "r": "0x" + signature[:32].hex(),
        "s": "0x" + signature[32:64].hex(),
    }


def permit_or_approve(
    account: LocalAccount, rpc_url: str, token: str, spender: str, amount: int, deadline: int
) -> dict[str, Any] | None:
    """What lets ``spender`` (the CreditAggregator) take ``amount`` of ``token`` for an accept's collateral or a
    repayment: a permit to post with it (``sign_permit``), or, for a token without one the platform checks, None
    once the account has approved ``amount`` itself (a transaction it pays gas for) — the platform then relies on the
    allowance."""
    permit = sign_permit(account, rpc_url, token, spender, amount, deadline)
    if permit is None:
        approve_collateral(account, rpc_url, token, spender, amount)
    return permit


def accept_quote(
    account: LocalAccount,
    api_url: str,
    api_key: str,
    quote_id: str,
    rpc_url: str,
    show: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Fetch the quote, sign a permit of its collateral to the CreditAggregator (or approve it, for a token without
    permit), sign the acceptance and post both. Before anything is signed: SigningRefused unless the acceptance is
    one (``acceptance_to_sign``) for the quote's chain id and contract and ``rpc_url`` serves that chain; what is
    about to be signed told to ``show``."""
    headers = {"X-API-Key": api_key}
    with httpx.Client(base_url=api_url, headers=headers, timeout=API_WAIT_SECONDS) as client:
        quote = client.get(f"/v1/quotes/{quote_id}").raise_for_status().json()
        acceptance = acceptance_to_sign(quote.get("acceptance_typed_data"))
        check_quote_domain(quote, acceptance)
        check_rpc_chain(rpc_url, quote)
        show(f"signing {acceptance} — quote {quote_id}: {_quoted_terms(quote)}")
        offer = quote["offer"]
        token, amount = offer["collateralAsset"], int(offer["collateralAmount"])
        deadline = int(offer["expiry"]) if offer.get("expiry") else _signature_deadline(_web3(rpc_url))
        permit = permit_or_approve(account, rpc_url, token, quote["contract"], amount, deadline)
        signature = sign_acceptance(account, quote["acceptance_typed_data"])
        body_in: dict[str, Any] = {"signature": signature} | ({"permit": permit} if permit else {})
        response = client.post(f"/v1/quotes/{quote_id}/accept", json=body_in)
        body: dict[str, Any] = response.json()
        if response.status_code >= 400:
            raise SystemExit(f"accept failed ({response.status_code}): {body.get('detail')}")
        return body


def _quoted_terms(quote: dict[str, Any]) -> str:
    """The quote's terms as the API states them: ``1500.00 USDC for 30 days on ethereum-local against 1.0 WETH``."""
    collateral = quote.get("collateral") or {}
    return (
        f"{quote.get('principal')} {quote.get('asset')} for {quote.get('term_days')} days on {quote.get('chain')} "
        f"against {collateral.get('amount')} {collateral.get('asset')}"
    )


def _amount(text: str) -> Decimal:
    """A repayment's amount as typed (``100.50``), as the API takes one (``aggregator.assets.parse_amount``: ASCII
    digits with an optional fraction, above 0; no sign, no exponent); ``SystemExit`` with one line for anything else.
    """
    try:
        return parse_amount(text, "amount")
    except InvalidCreditRequest:
        raise SystemExit(f"{text!r} is not an amount: a decimal above 0 like 100.50, or max") from None


def _base_units(text: str, symbol: str, decimals: int) -> int:
    """``text`` in base units of the loan's asset, within what the contracts hold (``Asset.to_base_units``, as the
    API converts it); ``SystemExit`` with one line for more decimals than the asset has, or an amount too large."""
    try:
        return Asset(symbol, decimals, Decimal(0)).to_base_units(_amount(text), "amount")
    except InvalidCreditRequest as err:
        raise SystemExit(f"{text} is refused: {err.message}") from None


def _signature_deadline(w3: Web3) -> int:
    """A deadline ``SIGNATURE_LIFETIME_SECONDS`` after the chain's time (its latest block's): the contract and the
    token judge it by that, and on a devnet moved on a deadline from this computer's clock had passed there already."""
    return int(w3.eth.get_block("latest")["timestamp"]) + SIGNATURE_LIFETIME_SECONDS


def _next_repayment_nonce(aggregator: Any, borrower: str, loan_ref: int) -> int:
    """The first unused nonce of ``loan_ref``'s word (nonce = loan id × 256 + k): a loan's repayments share one
    bitmap word, so only its first costs a fresh storage slot."""
    base = loan_ref << 8
    for k in range(256):
        if not aggregator.functions.nonceUsed(borrower, base + k).call():
            return base + k
    raise SystemExit(f"loan {loan_ref} has used its 256 repayment nonces: pick another with nonceUsed")


def signed_repayment(account: LocalAccount, loan: dict[str, Any], amount: str, rpc_url: str) -> dict[str, Any]:
    """The body of ``POST /v1/loans/{id}/repayments`` for ``loan`` (as ``GET /v1/loans/{id}`` shows it): a signed
    ``Repayment`` of ``amount`` (decimal in the loan asset's units, or ``"max"``) and a permit of the debt asset
    covering it (for ``"max"``: what is owed now plus ``MAX_PERMIT_MARGIN_BPS``) — or, for a debt asset without a
    permit the platform checks, that allowance approved from the account (``permit_or_approve``, as an accept's
    collateral is) and no permit."""
    if amount != "max":
        _amount(amount)  # refused before any chain is asked
    w3 = _web3(rpc_url)
    contract = to_checksum_address(loan["contract"])
    aggregator = w3.eth.contract(address=contract, abi=load_artifact("CreditAggregator").abi)
    loan_ref = int(loan["onchain_loan_id"])
    token = aggregator.functions.getLoan(loan_ref).call()[2]
    erc20 = w3.eth.contract(address=to_checksum_address(token), abi=load_artifact("MockERC20").abi)
    if amount == "max":
        principal, interest = aggregator.functions.amountOwed(loan_ref).call()
        owed = principal + interest
        signed_amount, allowance = REPAY_ALL, owed + owed * MAX_PERMIT_MARGIN_BPS // 10_000 + 1
    else:
        decimals, symbol = int(erc20.functions.decimals().call()), str(erc20.functions.symbol().call())
        signed_amount = allowance = _base_units(amount, symbol, decimals)
    deadline = _signature_deadline(w3)
    nonce = _next_repayment_nonce(aggregator, account.address, loan_ref)
    repayment = Repayment(loan_ref, signed_amount, nonce, deadline)
    signature = typed_data.sign(
        typed_data.repayment_typed_data(Domain(int(loan["chain_id"]), contract), repayment), account.key
    )
    permit = permit_or_approve(account, rpc_url, token, contract, allowance, deadline)
    body: dict[str, Any] = {"amount": amount, "nonce": str(nonce), "deadline": deadline}
    return body | {"signature": "0x" + signature.hex()} | ({"permit": permit} if permit else {})


def repay_loan(
    account: LocalAccount, api_url: str, api_key: str, loan_id: str, amount: str, rpc_url: str
) -> dict[str, Any]:
    """Sign a repayment of ``amount`` and a permit (``signed_repayment``) and post them: the platform relays
    ``repayWithPermit``, the borrower pays no gas."""
    with httpx.Client(base_url=api_url, headers={"X-API-Key": api_key}, timeout=API_WAIT_SECONDS) as client:
        loan = client.get(f"/v1/loans/{loan_id}").raise_for_status().json()
        response = client.post(f"/v1/loans/{loan_id}/repayments", json=signed_repayment(account, loan, amount, rpc_url))
        body: dict[str, Any] = response.json()
        if response.status_code >= 400:
            raise SystemExit(f"repayment failed ({response.status_code}): {body.get('detail')}")
        return body
