"""How a keeper runs: its lease, its rounds, its margin over the close factor and its pauses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class KeeperSettings:
    ttl: timedelta = timedelta(seconds=15)
    interval: float = 5.0  # seconds between rounds
    margin_bps: int = 10  # over the close factor's cap, for interest accrued before mining (the contract caps it)
    receipt_timeout: float = 60.0
    #: the pause after an attempt refused for the keeper's account's funds, doubling per refusal up to the most
    first_pause: float = 60.0
    most_pause: float = 3_600.0
