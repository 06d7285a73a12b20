"""An EIP-2612 permit for the collateral, relayed with ``openLoanWithPermit`` so the borrower needs no gas.

A permit the token would refuse is refused before anything is locked or sent (``check_permit``), naming what is
wrong: a value below the collateral, an expired deadline, a signature that does not recover the borrower for the
CreditAggregator as spender (a bad signature, or one for another spender), or a token without EIP-2612. The token's
domain is its ``DOMAIN_SEPARATOR()``, so tokens older than EIP-5267's ``eip712Domain()`` are checked too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception

from aggregator.accept_saga import QuoteView
from aggregator.errors import InvalidPermit, QuoteExpired
from chain.artifacts import load_artifact
from contracts.typed_data import Permit, TokenDomain, permit_typed_data

UINT256_MAX = 2**256 - 1


@dataclass(frozen=True, slots=True)
class CollateralPermit:
    """``permit(owner=borrower, spender=CreditAggregator, value, deadline)`` signed by the borrower (v, r, s)."""

    value: int
    deadline: int
    v: int
    r: bytes
    s: bytes

    @classmethod
    def parse(cls, value: str, deadline: int, v: int, r: str, s: str) -> CollateralPermit:
        """From the API's strings; InvalidPermit naming the field that is wrong."""
        try:
            amount = int(value)
        except ValueError:
            raise InvalidPermit("permit.value", "must be an integer in the token's base units") from None
        if not 0 <= amount <= UINT256_MAX:
            raise InvalidPermit("permit.value", "out of the uint256 range")
        if not 0 <= deadline < 2**64:
            raise InvalidPermit("permit.deadline", "must be a unix time in seconds")
        if v not in (27, 28):
            raise InvalidPermit("permit.v", "must be 27 or 28")
        return cls(amount, deadline, v, _word(r, "permit.r"), _word(s, "permit.s"))

    def as_abi_tuple(self) -> tuple[int, int, int, bytes, bytes]:
        return (self.value, self.deadline, self.v, self.r, self.s)


async def check_permit(w3: AsyncWeb3[Any], quote: QuoteView, permit: CollateralPermit) -> None:
    """InvalidPermit unless ``permit`` lets the CreditAggregator take the quote's collateral from the borrower now;
    QuoteExpired when the chain's latest block is already past the offer's expiry (the chain's clock ahead of ours:
    the quote is expired where it would open, whatever its ``expires_at`` says here).

    An allowance already in place (an approve, or this permit front-run by someone who saw it) is enough: the
    contract ignores a permit that was used and relies on the allowance."""
    owner = to_checksum_address(quote.offer["borrower"])
    spender = to_checksum_address(quote.contract)
    needed = int(quote.offer["collateralAmount"])
    if permit.value < needed:
        raise InvalidPermit("permit.value", f"{permit.value} is less than the collateral amount {needed}")
    now = await chain_time(w3)
    expiry = int(quote.offer.get("expiry") or 0)
    if expiry and expiry <= now:  # the chain judges the offer by its own time, which may run ahead of ours
        raise QuoteExpired(quote.id, f"it expired at {expiry} by {quote.chain_name}'s time, which is {now} now")
    passed = deadline_passed(permit.deadline, now)
    if passed is not None:
        raise InvalidPermit("permit.deadline", passed)
    token: Any = w3.eth.contract(
        address=to_checksum_address(quote.offer["collateralAsset"]), abi=load_artifact("MockERC20").abi
    )
    try:
        if int(await token.functions.allowance(owner, spender).call()) >= needed:
            return
        separator = bytes(await token.functions.DOMAIN_SEPARATOR().call())
        nonce = int(await token.functions.nonces(owner).call())
    except (Web3Exception, ValueError) as err:
        raise InvalidPermit("permit", "the collateral token has no EIP-2612 permit: approve it instead") from err
    signed = Permit(owner, spender, permit.value, nonce, permit.deadline)
    if permit_signer(separator, signed, permit.v, permit.r, permit.s) != owner:
        raise InvalidPermit(
            "permit.signature",
            f"does not recover the borrower {owner} for the spender {spender} (the CreditAggregator), value "
            f"{permit.value}, nonce {nonce} and deadline {permit.deadline}",
        )


async def chain_time(w3: AsyncWeb3[Any]) -> int:
    """The chain's time: its latest block's timestamp, by which the contracts judge a deadline (a devnet moved on
    with ``evm_increaseTime`` runs ahead of this computer's clock)."""
    return int((await w3.eth.get_block("latest"))["timestamp"])


def deadline_passed(deadline: int, now: int) -> str | None:
    """Why a signed document whose ``deadline`` the chain checks (a permit's, a repayment's) would be refused at the
    chain's time ``now``, or None while it holds."""
    return f"expired at {deadline}; the chain's time is {now}" if deadline < now else None


def permit_signer(separator: bytes, permit: Permit, v: int, r: bytes, s: bytes) -> ChecksumAddress | None:
    """Who signed ``permit`` (v, r, s) under the token's own ``DOMAIN_SEPARATOR()``, which EIP-2612 requires of every
    permit token (EIP-5267's ``eip712Domain()`` is newer: USDC's FiatToken and wstETH lack it); None when the
    signature recovers no one. The struct's hash does not depend on the domain, so it is taken from the typed data
    under a placeholder domain."""
    placeholder = TokenDomain("", "", 0, permit.spender)
    body = encode_typed_data(full_message=permit_typed_data(placeholder, permit)).body
    try:
        return to_checksum_address(Account.recover_message(SignableMessage(b"\x01", separator, body), vrs=(v, r, s)))
    except (ValueError, BadSignature):
        return None


def _word(text: str, field: str) -> bytes:
    try:
        word = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise InvalidPermit(field, "not hex") from None
    if len(word) != 32:
        raise InvalidPermit(field, "must be 32 bytes")
    return word
