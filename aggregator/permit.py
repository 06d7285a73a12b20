"""An EIP-2612 permit for the collateral, relayed with ``openLoanWithPermit`` so the borrower needs no gas."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.errors import InvalidAcceptance

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
        """From the API's strings; InvalidAcceptance naming the field that is wrong."""
        try:
            amount = int(value)
        except ValueError:
            raise InvalidAcceptance("permit.value: must be an integer in the token's base units") from None
        if not 0 <= amount <= UINT256_MAX:
            raise InvalidAcceptance("permit.value: out of the uint256 range")
        if not 0 <= deadline < 2**64:
            raise InvalidAcceptance("permit.deadline: must be a unix time in seconds")
        if v not in (27, 28):
            raise InvalidAcceptance("permit.v: must be 27 or 28")
        return cls(amount, deadline, v, _word(r, "permit.r"), _word(s, "permit.s"))

    def as_abi_tuple(self) -> tuple[int, int, int, bytes, bytes]:
        return (self.value, self.deadline, self.v, self.r, self.s)


def _word(text: str, field: str) -> bytes:
    try:
        word = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise InvalidAcceptance(f"{field}: not hex") from None
    if len(word) != 32:
        raise InvalidAcceptance(f"{field}: must be 32 bytes")
    return word
