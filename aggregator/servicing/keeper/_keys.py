"""The keeper's intent keys: its claims, one per attempt, and its numbered liquidations of a loan, each naming the
CollateralManager it calls."""

from __future__ import annotations

from eth_utils.address import to_checksum_address


def claim_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, attempt: int = 1) -> str:
    """A keeper ``claimCollateral`` of a loan, one per attempt: the key a second keeper (or a restart) finds taken.
    The first attempt's key has no number (as before attempts were counted). A loan is named by its
    CollateralManager (the intent's ``to``, checksummed) and its id: a later deployment's loan of the same id is
    another loan."""
    manager = to_checksum_address(collateral_manager)
    return f"claimCollateral:{chain_id}:{manager}:{loan_ref}" + ("" if attempt == 1 else f":{attempt}")


def liquidation_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, number: int) -> str:
    """The keeper's ``number``-th liquidation of a loan (1, 2, …): the next number is taken only once the last one
    settled, so a loan has at most one liquidation in flight across keepers, however late one of them sends."""
    return f"{liquidation_intent_prefix(chain_id, collateral_manager)}{loan_ref}:n{number}"


def liquidation_intent_prefix(chain_id: int, collateral_manager: str) -> str:
    """What every liquidation key of the CollateralManager's loans starts with."""
    return f"liquidate:{chain_id}:{to_checksum_address(collateral_manager)}:"
