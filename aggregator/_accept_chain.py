"""The accept's chain side (``aggregator.accepting``): the borrower's acceptance checked, the ``openLoan`` call built
and simulated, whether the offer's nonce is spent, and the loan read from its receipt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_typing import ABIFunction
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from hexbytes import HexBytes
from web3.types import LogReceipt, RPCEndpoint

from aggregator.accept_saga import LoanFacts, QuoteView
from aggregator.errors import ChainRejected, InvalidAcceptance
from aggregator.ledger import loan_id_for
from aggregator.offers import acceptance_document, acceptance_for, attestation_from_row, offer_document
from aggregator.permit import CollateralPermit
from aggregator.platform import ChainRuntime
from aggregator.projection import QuoteLink
from chain.artifacts import load_artifact
from chain.errors import ChainError, TransactionDropped, TransactionRejected, TransactionReverted
from chain.events import EventDecoder
from chain.relay import estimate_gas
from chain.transactions import Call, Receipt
from contracts.typed_data import UNRECOVERABLE

#: an intent that ended so can no longer be mined
TERMINAL_CHAIN_ERRORS = (TransactionReverted, TransactionRejected, TransactionDropped)


def signature_bytes(signature_hex: str) -> bytes:
    try:
        signature = bytes.fromhex(signature_hex.removeprefix("0x"))
    except ValueError:
        raise InvalidAcceptance("signature is not hex") from None
    if len(signature) < 65:
        raise InvalidAcceptance(f"signature has {len(signature)} bytes; an EOA signature has 65")
    return signature


def signed_by_borrower(quote: QuoteView, signature: bytes) -> bool:
    """Whether the EIP-712 acceptance is signed by the borrower's key (no I/O: the common case, decided without the
    chain); False sends the accept to ``verify_acceptance``, which asks for the borrower's code."""
    try:
        return bool(_acceptance_signer(quote, signature) == quote.offer["borrower"])
    except UNRECOVERABLE:
        return False


def _acceptance_signer(quote: QuoteView, signature: bytes) -> str:
    """The address whose key signed the EIP-712 acceptance of ``quote`` (``UNRECOVERABLE``: no key's signature)."""
    if len(signature) != 65:
        raise ValueError(f"{len(signature)} bytes: a key's signature has 65")
    document = encode_typed_data(full_message=acceptance_document(quote))
    return str(Account.recover_message(document, signature=signature))


async def verify_acceptance(chain: ChainRuntime, quote: QuoteView, signature: bytes) -> None:
    """The EIP-712 acceptance is the borrower's (an ERC-1271 wallet's signature is left to the contract). The
    signature is recovered first: the borrower's code is asked for only when it is not the borrower's key's (one
    RPC fewer per accept of a wallet key, the common case)."""
    borrower = quote.offer["borrower"]
    try:
        signer = _acceptance_signer(quote, signature)
    except UNRECOVERABLE as err:
        if await chain.w3.eth.get_code(borrower):
            return
        raise InvalidAcceptance(f"acceptance signature recovers no signer: {err}") from err
    if signer != borrower and not await chain.w3.eth.get_code(borrower):
        raise InvalidAcceptance(f"acceptance is signed by {signer}, not by the borrower {borrower}")


def open_loan_call(chain: ChainRuntime, quote: QuoteView, signature: bytes, permit: CollateralPermit | None) -> Call:
    """``openLoan``, or ``openLoanWithPermit`` when the borrower signed a permit for the collateral, encoded once:
    the same call is simulated and then sent."""
    args = (
        acceptance_for(quote).as_abi_tuple(),
        bytes.fromhex(quote.offer_signature.removeprefix("0x")),
        signature,
        attestation_from_row(quote).as_abi_tuple(),
        bytes.fromhex(quote.attestation_signature.removeprefix("0x")),
    )
    address = chain.aggregator().address
    if permit is None:
        return Call(to=address, data=_OPEN_LOAN.encode(args))
    return Call(to=address, data=_OPEN_LOAN_WITH_PERMIT.encode((*args, permit.as_abi_tuple())))


@dataclass(frozen=True, slots=True)
class _Function:
    """A CreditAggregator function's calldata encoder: its selector and input types, taken from the ABI once (web3's
    contract function machinery finds the ABI entry, checks and normalizes the arguments on every call)."""

    selector: bytes
    types: tuple[str, ...]

    @classmethod
    def of(cls, name: str) -> _Function:
        (found,) = [item for item in load_artifact("CreditAggregator").abi if item.get("name") == name]
        abi = cast(ABIFunction, found)
        return cls(function_abi_to_4byte_selector(abi), tuple(get_abi_input_types(abi)))

    def encode(self, args: Sequence[Any]) -> bytes:
        return self.selector + abi_encode(self.types, args)


_OPEN_LOAN, _OPEN_LOAN_WITH_PERMIT = _Function.of("openLoan"), _Function.of("openLoanWithPermit")


async def simulate_open(chain: ChainRuntime, call: Call, kind: str) -> Call:
    """Whether the chain would open the loan now, and the gas to send it with (carried in the returned ``call``, so
    that the relay does not estimate it again): ChainRejected naming the revert when the chain would refuse it.

    Once an open of this function and quote ``kind`` has been estimated on the chain, the simulation is one
    ``eth_call`` as the relayer with that gas limit (one EVM run: anvil's ``eth_estimateGas`` runs the call many
    times in its binary search for the limit). A call that fails so — a revert, or the limit too low for this open —
    is decided as the first is: the relayer's ``eth_estimateGas`` (``chain.relay.estimate_gas``, a failure confirmed
    by a simulation pinned at the head before it is a revert), whose estimate with the relay's margin is then sent and
    remembered when it is higher."""
    request = {"from": chain.relayer, "to": str(call.to), "data": "0x" + call.data.hex()}
    provider = chain.client.provider
    key = (str(call.to).lower(), call.data[:4], kind)
    known = chain.open_gas.get(key)
    if known is not None:
        answer = await provider.make_request(RPCEndpoint("eth_call"), [request | {"gas": hex(known)}, "latest"])
        if answer.get("error") is None:
            return replace(call, gas=known)
    try:
        gas = await estimate_gas(provider, request)
    except TransactionReverted as reverted:
        raise ChainRejected(str(reverted)) from None
    if gas is None:  # the estimate failed but the call passes: the relay estimates when it sends
        return call
    limit = chain.transactions.settings.gas_limit(gas)
    chain.open_gas[key] = max(limit, chain.open_gas.get(key, 0))
    return replace(call, gas=limit)


async def bar_unsent(chain: ChainRuntime, intent_key: str) -> bool:
    """Bar the accept's ``openLoan`` intent unless it exists (``TransactionManager.bar``): True when barred — nothing
    of it was sent, and a process that lost the accept but is still alive can no longer send it — False when the
    intent exists (it may be mined)."""
    return await chain.transactions.bar(
        intent_key, chain.aggregator().address, "the accept was taken over before its transaction was sent"
    )


async def nonce_used(chain: ChainRuntime, quote: QuoteView) -> bool:
    """Whether the offer's nonce is spent on-chain (by any transaction, ours or not)."""
    signer = Account.recover_message(
        encode_typed_data(full_message=offer_document(quote)),
        signature=bytes.fromhex(quote.offer_signature.removeprefix("0x")),
    )
    return bool(await chain.aggregator().functions.nonceUsed(signer, quote.nonce).call())


async def loan_from_receipt(chain: ChainRuntime, quote: QuoteView, receipt: Receipt) -> LoanFacts:
    """The receipt's events for the ledger (the same idempotent apply the indexer uses) and the loan's id: from the
    logs the relay's watcher read with the block (``Receipt.logs``), or, for a receipt from the chain store (an
    accept resumed, an intent another process followed), from the node."""
    logs: Sequence[Mapping[str, Any]] = receipt.logs
    if not logs:
        found = await chain.client.provider.make_request(RPCEndpoint("eth_getTransactionReceipt"), [receipt.tx_hash])
        logs = (found.get("result") or {}).get("logs") or []
    decoder, ledger_chain = chain.receipt_decoding()
    ours = (_log_entry(log) for log in logs if _watched(decoder, log))  # not the tokens' Transfers and Approvals
    events = [event for event in (decoder.decode(chain.chain_id, entry) for entry in ours) if event is not None]
    opened = [event for event in events if event.event == "LoanOpened"]
    if len(opened) != 1:
        raise ChainError(
            f"openLoan receipt {receipt.tx_hash} (block {receipt.block_number}) has {len(opened)} LoanOpened events"
        )
    return LoanFacts(
        id=loan_id_for(chain.chain_id, ledger_chain.aggregator, quote.offer_digest),
        quote_id=quote.id,
        borrower_id=quote.borrower_id,
        asset=quote.asset,
        principal=int(opened[0].args["principal"]),
        tx_hash=receipt.tx_hash,
        events=tuple(events),
        ledger_chain=ledger_chain,
        offer_digest=quote.offer_digest,
        quote_link=quote_link(quote),
        offer=quote.offer,
    )


def quote_link(quote: QuoteView) -> QuoteLink:
    """The quote as the ledger would read it by its offer digest, while the accept holds it (``accepting``)."""
    return QuoteLink(quote.id, quote.chain_id, quote.contract, quote.borrower_id, quote.provider_id, "accepting")


def _watched(decoder: EventDecoder, log: Mapping[str, Any]) -> bool:
    """Whether ``log`` (as the node sent it, or formatted by web3) is an event of a contract ``decoder`` watches."""
    topics = log.get("topics") or ()
    if not topics:
        return False
    topic = topics[0]
    first = bytes(topic) if isinstance(topic, bytes) else bytes.fromhex(str(topic).removeprefix("0x"))
    return (str(log["address"]).lower(), first) in decoder.by_topic


def _log_entry(log: Mapping[str, Any]) -> LogReceipt:
    """A log as the node sent it (hex strings) in the shape web3's event decoding takes: bytes and integers."""
    if isinstance(log.get("data"), bytes):  # already formatted by web3
        return cast(LogReceipt, log)
    entry = {
        "address": log["address"],
        "topics": [HexBytes(topic) for topic in log["topics"]],
        "data": HexBytes(log["data"]),
        "blockNumber": int(log["blockNumber"], 16),
        "blockHash": log["blockHash"],
        "transactionHash": log["transactionHash"],
        "transactionIndex": int(log["transactionIndex"], 16),
        "logIndex": int(log["logIndex"], 16),
    }
    return cast(LogReceipt, entry)
