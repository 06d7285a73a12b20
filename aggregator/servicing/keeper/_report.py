"""What one keeper round did: the block it read, what it sent, and why it left each loan alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregator.servicing.health import Liquidation


@dataclass(frozen=True, slots=True)
class Sent:
    loan_ref: int
    action: str  # "liquidate" | "impair"
    tx_hash: str
    outcome: Liquidation | None = None  # predicted by the contract's rules at the block read


@dataclass
class RoundReport:
    """One round: the block read, what was sent, and why each unhealthy loan was left alone."""

    block: int
    timestamp: int
    paused: bool
    health: dict[int, int] = field(default_factory=dict)  # loan ref → health factor (18 decimals)
    sent: list[Sent] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    claimed: dict[int, str] = field(default_factory=dict)  # loan ref → claimCollateral tx hash
    unclaimed: dict[int, str] = field(default_factory=dict)  # loan ref → why its collateral was not claimed now
    #: loan id → why the round could not read or price the loan (``unserviceable``: said once, counted, skipped)
    unserviceable: dict[str, str] = field(default_factory=dict)
