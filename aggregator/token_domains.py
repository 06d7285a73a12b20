"""The EIP-712 domains of the assets' tokens, under which a borrower signs an EIP-2612 permit of the collateral (or
of the debt asset, to repay): what ``GET /v1/platform`` lists per asset and chain, so that a wallet needs nothing
but the API to sign one.

A token is asked once per chain. EIP-5267's ``eip712Domain()`` names the domain; a token older than it (USDC's
FiatToken, wstETH) has only EIP-2612's ``DOMAIN_SEPARATOR()``, which is matched against its ``name()`` with its
``version()`` (or the versions such tokens use, "1" and "2"): a domain is listed only when it hashes to the separator
the token checks permits under. That holds for an EIP-5267 token too: its ``fields`` bitmap must name exactly the four
fields a permit's domain here carries (0x0f: name, version, chain id, verifying contract) and the domain must hash to
its ``DOMAIN_SEPARATOR()`` — a token whose domain leaves out the version or adds a salt was listed with a four-field
domain it does not check permits under, and the borrower's permit was then refused or silently ignored. A token that
answers neither is listed without a domain (it has no permit: approve it instead); a chain that cannot be reached is
asked again at the next read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_account.messages import encode_typed_data
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3, Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from aggregator.platform import ChainRuntime
from chain.artifacts import load_artifact
from contracts.typed_data import Permit, TokenDomain, permit_typed_data

log = logging.getLogger(__name__)

#: how long a discovery read waits for a token's answers before it lists the token without a domain this time
READ_TIMEOUT_SECONDS = 5.0
#: the versions pre-EIP-5267 permit tokens sign under, tried when the token has no ``version()``
_LEGACY_VERSIONS = ("1", "2")
_VERSION_ABI = [
    {
        "type": "function",
        "name": "version",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    }
]
#: EIP-5267's ``fields`` of a domain of name, version, chain id and verifying contract: the only one a permit here uses
FOUR_FIELDS = b"\x0f"
#: what a token without the function answers: a revert, or no output to decode
_ABSENT = (ContractLogicError, BadFunctionCallOutput, DecodingError)


def domain_separator(domain: TokenDomain) -> bytes:
    """The EIP-712 domain separator of ``domain`` (a permit's hash header: it does not depend on the permit)."""
    placeholder = Permit(domain.verifying_contract, domain.verifying_contract, 0, 0, 0)
    return bytes(encode_typed_data(full_message=permit_typed_data(domain, placeholder)).header)


async def read_token_domain(w3: AsyncWeb3[Any], chain_id: int, token: ChecksumAddress) -> TokenDomain | None:
    """``token``'s permit domain on the chain ``w3`` reaches, or None when it has no EIP-2612 permit.

    Raises whatever the chain's client raises when the node cannot be reached (not an answer: ask again later)."""
    erc20: Any = w3.eth.contract(address=token, abi=load_artifact("MockERC20").abi)
    reported: tuple[Any, ...] | None = None
    with contextlib.suppress(*_ABSENT):
        reported = tuple(await erc20.functions.eip712Domain().call())
    try:
        separator = bytes(await erc20.functions.DOMAIN_SEPARATOR().call())
        name = None if reported is not None else str(await erc20.functions.name().call())
    except _ABSENT:
        return None
    version = None
    if reported is None:
        with contextlib.suppress(*_ABSENT):
            version = str(await w3.eth.contract(address=token, abi=_VERSION_ABI).functions.version().call())
    return answered_domain(chain_id, token, separator, reported, name, version)


def read_token_domain_now(w3: Web3, token: ChecksumAddress) -> TokenDomain | None:
    """``read_token_domain`` over a synchronous client (the devnet wallet's, ``api.wallet``): the same questions, so
    a wallet signs a permit under the domain ``GET /v1/platform`` lists for the token."""
    erc20: Any = w3.eth.contract(address=token, abi=load_artifact("MockERC20").abi)
    reported: tuple[Any, ...] | None = None
    with contextlib.suppress(*_ABSENT):
        reported = tuple(erc20.functions.eip712Domain().call())
    try:
        separator = bytes(erc20.functions.DOMAIN_SEPARATOR().call())
        name = None if reported is not None else str(erc20.functions.name().call())
    except _ABSENT:
        return None
    version = None
    if reported is None:
        with contextlib.suppress(*_ABSENT):
            version = str(w3.eth.contract(address=token, abi=_VERSION_ABI).functions.version().call())
    return answered_domain(int(w3.eth.chain_id), token, separator, reported, name, version)


def answered_domain(
    chain_id: int,
    token: ChecksumAddress,
    separator: bytes,
    reported: tuple[Any, ...] | None,
    name: str | None,
    version: str | None,
) -> TokenDomain | None:
    """The permit domain of ``token`` from its answers — its ``DOMAIN_SEPARATOR()``, its EIP-5267 ``eip712Domain()``
    (``reported``, None when it has none) or else its ``name()`` and ``version()`` (None when it has none: the
    versions older tokens use are tried) — or None when none of them hashes to the separator."""
    if reported is not None:  # EIP-5267 names the domain: listed only if the token checks permits under it
        fields, reported_name, reported_version, domain_chain_id, verifying, _salt, _extensions = reported
        return eip5267_domain(
            bytes(fields), str(reported_name), str(reported_version), int(domain_chain_id), verifying, separator
        )
    assert name is not None  # asked whenever the token reports no domain
    for candidate in _LEGACY_VERSIONS if version is None else (version,):
        domain = TokenDomain(name, candidate, chain_id, token)
        if domain_separator(domain) == separator:
            return domain
    return None


def eip5267_domain(
    fields: bytes, name: str, version: str, chain_id: int, verifying_contract: str, separator: bytes
) -> TokenDomain | None:
    """The permit domain an EIP-5267 ``eip712Domain()`` reports, or None when a permit signed under it would not be
    the token's: ``fields`` other than name, version, chain id and verifying contract (``FOUR_FIELDS``: a domain
    without a version or with a salt has another separator), or a domain that does not hash to the token's
    ``DOMAIN_SEPARATOR()`` (``separator``)."""
    if fields != FOUR_FIELDS:
        return None
    domain = TokenDomain(name, version, chain_id, to_checksum_address(verifying_contract))
    return domain if domain_separator(domain) == separator else None


class TokenDomains:
    """Each token's permit domain per chain, read once (``read_token_domain``)."""

    def __init__(self, timeout_seconds: float = READ_TIMEOUT_SECONDS) -> None:
        self._known: dict[tuple[str, str], TokenDomain | None] = {}
        self._timeout = timeout_seconds

    async def domain(self, chain: ChainRuntime, token: ChecksumAddress) -> TokenDomain | None:
        """``token``'s permit domain on ``chain``; None when it has none, or (not remembered) when the chain cannot
        be reached now."""
        key = (chain.name, token.lower())
        if key not in self._known:
            try:
                self._known[key] = await asyncio.wait_for(
                    read_token_domain(chain.w3, chain.chain_id, token), self._timeout
                )
            except Exception as err:  # the node is down or failing: no answer, not a token without a permit
                log.warning(
                    "permit domain of %s on %s not read (asked again at the next read): %r", token, chain.name, err
                )
                return None
        return self._known[key]
