"""The tokens a production deployment lists (the record's ``tokens``: the platform's name for each → its symbol,
decimals and address, the shape the devnet profile writes for its mocks): each configured token's ``decimals()`` and
``symbol()`` read from the chain, refused when its decimals differ from those the configuration expects or it does
not answer as an ERC-20. The platform converts amounts with these decimals (``aggregator.assets``)."""

from __future__ import annotations

from collections.abc import Mapping

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import Web3Exception

from chain.deployment import TokenListing
from contracts.deploy_config import DeployConfigError

#: an ERC-20's ``decimals()`` is a uint8
MAX_DECIMALS = 255


def list_tokens(
    w3: Web3, addresses: Mapping[str, ChecksumAddress], expected_decimals: Mapping[str, int]
) -> dict[str, TokenListing]:
    """Each token of ``addresses`` (the platform's name → its address) as read from the chain; ``expected_decimals``:
    the decimals the configuration states for a token, checked. Raises ``DeployConfigError`` naming the token."""
    listings = {}
    for name, address in addresses.items():
        decimals = _decimals(w3, name, address)
        expected = expected_decimals.get(name)
        if expected is not None and decimals != expected:
            raise DeployConfigError(
                f"{name} at {address} has {decimals} decimals on chain {w3.eth.chain_id}, not the {expected} its "
                f"configuration expects: check the address (another token, or this chain's {name} differs), or "
                "correct the configured decimals"
            )
        listings[name] = TokenListing(symbol=_symbol(w3, name, address), decimals=decimals, address=address)
    return listings


def _call(w3: Web3, name: str, address: ChecksumAddress, signature: str) -> bytes:
    try:
        return bytes(w3.eth.call({"to": address, "data": keccak(text=signature)[:4]}))
    except Web3Exception as err:
        raise DeployConfigError(f"{name} at {address} does not answer {signature}: is it an ERC-20? ({err})") from err


def _decimals(w3: Web3, name: str, address: ChecksumAddress) -> int:
    answer = _call(w3, name, address, "decimals()")
    decimals = int.from_bytes(answer, "big") if len(answer) == 32 else None
    if decimals is None or decimals > MAX_DECIMALS:
        raise DeployConfigError(
            f"{name} at {address} does not answer decimals() as an ERC-20 ({answer.hex() or 'no code or no data'}): "
            "check the address"
        )
    return decimals


def _symbol(w3: Web3, name: str, address: ChecksumAddress) -> str:
    """The token's ``symbol()``: a string, or a bytes32 as some older tokens return it."""
    answer = _call(w3, name, address, "symbol()")
    try:
        if len(answer) == 32:
            return answer.rstrip(b"\0").decode()
        (symbol,) = decode(["string"], answer)
    except (DecodingError, UnicodeDecodeError) as err:
        raise DeployConfigError(f"{name} at {address} answers symbol() unreadably: {err}") from err
    return str(symbol)
