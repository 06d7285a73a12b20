"""Output schemas of a quote's signed EIP-712 documents: the ``Offer`` and the ``Acceptance`` the borrower's wallet
signs (``contracts/interfaces/Types.sol``, ``contracts.typed_data``).

Each uint256 (an amount in base units, a nonce, the offer's chain id) is a decimal string: JavaScript's ``JSON.parse``
reads every number as a double, exact to 2^53 only, and 1 WETH is 10^18 base units, so a number reached a browser
wallet rounded, and the acceptance it signed was refused. Every EIP-712 encoder takes the string for a uintN (ethers,
viem, ``eth_signTypedData_v4``, eth-account). A rate in basis points and seconds stay numbers, at most 2^53."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
BYTES32_PATTERN = r"^0x[0-9a-f]{64}$"
#: a uint256 as the API writes it: decimal digits, no leading zero
UINT256_PATTERN = r"^(0|[1-9][0-9]{0,77})$"
#: the largest integer a JSON number carries exactly to every client (a double's 53-bit significand)
MAX_JSON_SAFE_INTEGER = 2**53


def _uint256(description: str) -> Any:
    return Field(pattern=UINT256_PATTERN, max_length=78, description=f"{description} (uint256, a decimal string)")


class OfferOut(BaseModel):
    """The EIP-712 ``Offer`` the quote signer signed under the quote's CreditAggregator domain; amounts in the
    token's base units."""

    providerId: str = Field(pattern=BYTES32_PATTERN, description="keccak256 of the provider's id")
    pool: str = Field(pattern=ADDRESS_PATTERN, description="the lending pool; the zero address for an off-chain lender")
    borrower: str = Field(pattern=ADDRESS_PATTERN)
    asset: str = Field(pattern=ADDRESS_PATTERN, description="the debt asset's token")
    principal: str = _uint256("base units of the debt asset")
    rateBps: int = Field(ge=0, le=2**32 - 1, description="annual rate, basis points (uint32)")
    term: int = Field(ge=0, le=MAX_JSON_SAFE_INTEGER, description="seconds (uint64)")
    originationFee: str = _uint256("base units of the debt asset, kept from the principal paid out")
    collateralAsset: str = Field(pattern=ADDRESS_PATTERN, description="the collateral's token")
    collateralAmount: str = _uint256("base units of the collateral")
    chainId: str = _uint256("the chain the offer is for")
    termsHash: str = Field(pattern=BYTES32_PATTERN, description="the disclosure's terms_hash")
    expiry: int = Field(ge=0, le=MAX_JSON_SAFE_INTEGER, description="unix seconds (uint64)")
    nonce: str = _uint256("single-use at the CreditAggregator")


class Eip712FieldOut(BaseModel):
    name: str
    type: str


class Eip712DomainOut(BaseModel):
    name: str
    version: str
    chainId: int = Field(ge=1, description="the chain's id, a number (as a wallet compares it with its own chain)")
    verifyingContract: str = Field(pattern=ADDRESS_PATTERN)


class AcceptanceOut(BaseModel):
    offer: OfferOut
    deadline: int = Field(ge=0, le=MAX_JSON_SAFE_INTEGER, description="unix seconds (uint64): the offer's expiry")


class AcceptanceTypedDataOut(BaseModel):
    """The EIP-712 ``Acceptance`` document as ``eth_signTypedData_v4`` takes it: sign it as it stands."""

    types: dict[str, list[Eip712FieldOut]]
    primaryType: str = Field(examples=["Acceptance"])
    domain: Eip712DomainOut
    message: AcceptanceOut
