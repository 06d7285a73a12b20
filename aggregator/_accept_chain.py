"""The accept's chain side (``aggregator.accepting``): the borrower's acceptance checked, the ``openLoan`` call built
and simulated, whether the offer's nonce is spent, and the loan read from its receipt."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from aggregator.accept_saga import LoanFacts, QuoteView
from aggregator.errors import ChainRejected, InvalidAcceptance
from aggregator.ledger import LedgerChain, loan_id_for, receipt_decoder
from aggregator.offers import acceptance_document, acceptance_for, attestation_from_row, offer_document
from aggregator.permit import CollateralPermit
from aggregator.platform import ChainRuntime
from chain.errors import ChainError, TransactionDropped, TransactionRejected, TransactionReverted
from chain.relay import simulate

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


async def verify_acceptance(chain: ChainRuntime, quote: QuoteView, signature: bytes) -> None:
    """The EIP-712 acceptance is the borrower's (an ERC-1271 wallet's signature is left to the contract)."""
    borrower = quote.offer["borrower"]
    if await chain.w3.eth.get_code(borrower):
        return
    try:
        document = encode_typed_data(full_message=acceptance_document(quote))
        signer = Account.recover_message(document, signature=signature)
    except ValueError as err:
        raise InvalidAcceptance(f"acceptance signature is malformed: {err}") from err
    if signer != borrower:
        raise InvalidAcceptance(f"acceptance is signed by {signer}, not by the borrower {borrower}")


def open_loan_call(chain: ChainRuntime, quote: QuoteView, signature: bytes, permit: CollateralPermit | None) -> Any:
    """``openLoan``, or ``openLoanWithPermit`` when the borrower signed a permit for the collateral."""
    args = (
        acceptance_for(quote).as_abi_tuple(),
        bytes.fromhex(quote.offer_signature.removeprefix("0x")),
        signature,
        attestation_from_row(quote).as_abi_tuple(),
        bytes.fromhex(quote.attestation_signature.removeprefix("0x")),
    )
    functions = chain.aggregator().functions
    if permit is None:
        return functions.openLoan(*args)
    return functions.openLoanWithPermit(*args, permit.as_abi_tuple())


async def simulate_open(chain: ChainRuntime, call: Any) -> None:
    """The relayer's ``eth_call`` of the open: ChainRejected when the chain would refuse it now."""
    try:
        await simulate(call, chain.relayer)
    except TransactionReverted as err:
        raise ChainRejected(str(err)) from err


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


async def loan_from_receipt(chain: ChainRuntime, quote: QuoteView, tx_hash: str, block: int) -> LoanFacts:
    """The receipt's events for the ledger (the same idempotent apply the indexer uses) and the loan's id."""
    receipt = await chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    events = receipt_decoder(chain.record, chain.w3.codec).decode_receipt(chain.chain_id, receipt)
    opened = [event for event in events if event.event == "LoanOpened"]
    if len(opened) != 1:
        raise ChainError(f"openLoan receipt {tx_hash} (block {block}) has {len(opened)} LoanOpened events")
    ledger_chain = LedgerChain.from_record(chain.record)
    return LoanFacts(
        id=loan_id_for(chain.chain_id, ledger_chain.aggregator, quote.offer_digest),
        quote_id=quote.id,
        borrower_id=quote.borrower_id,
        asset=quote.asset,
        principal=int(opened[0].args["principal"]),
        tx_hash=tx_hash,
        events=tuple(events),
        ledger_chain=ledger_chain,
    )
