"""On-chain behaviour features of a borrower's wallet, and the documented rule that combines them with the score.

Features come through ``OnchainFeatureSource`` (in memory for tests, ``risk.onchain_web3`` over web3.py until
``chain/``'s event reader exists). The combination rule is pure:

* a prior **default** in our CreditAggregator on any chain is a decline rule (reason R30), not a score change;
* an open loan whose **health factor** is below 1.0 is a decline rule (R31); below ``WATCH_HEALTH_BPS`` (1.2) it
  costs ``WATCH_HEALTH_POINTS`` and gives reason R33 (collateral close to the required level, not below it);
* each loan **repaid** in full adds ``POINTS_PER_REPAID_LOAN``, capped at ``MAX_REPAID_BONUS``: a loan whose
  principal was worth at least ``MIN_REPAID_PRINCIPAL_USD`` and that was outstanding at least ``MIN_REPAID_SECONDS``
  (``risk.onchain_source`` counts only those: a few loans of a dollar repaid at once say nothing of a borrower);
* a **thin wallet** (younger than ``THIN_WALLET_DAYS`` or with fewer than ``THIN_WALLET_TXS`` transactions on
  every chain together) costs ``THIN_WALLET_POINTS`` and gives reason R32. Only what was read says so: a wallet
  whose age no chain could tell (a pruned node) is judged by its transactions alone, a contract wallet (whose nonce
  counts the contracts it created, not its transactions) by its age alone, and a history not read in full (a chain
  skipped: an outage) is never called thin, since what was not read is missing, not absent.

The adjustment is bounded to [``MIN_ADJUSTMENT``, ``MAX_ADJUSTMENT``] points (a PDO is 40 points), so on-chain
behaviour refines the scorecard but cannot outweigh it. No features (``None``) means no adjustment, and so does a
history no chain could be read for (``complete`` False, ``chain_ids`` empty): only a default the ledger knows of
(``loans_defaulted``) still declines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from eth_typing import ChecksumAddress

from risk.reasons import COLLATERAL_HEALTH, COLLATERAL_NEAR_LIMIT, LIMITED_WALLET_HISTORY, PRIOR_DEFAULT, Reason

HEALTHY_BPS = 10_000  # a health factor of 1.0
WATCH_HEALTH_BPS = 12_000
WATCH_HEALTH_POINTS = -30
POINTS_PER_REPAID_LOAN = 10
MAX_REPAID_BONUS = 30
MIN_REPAID_PRINCIPAL_USD = Decimal(250)  # a repaid loan counts from this principal, valued in USD ...
MIN_REPAID_SECONDS = 7 * 86_400  # ... held at least this long from its opening block to its closing one
THIN_WALLET_DAYS = 90
THIN_WALLET_TXS = 10
THIN_WALLET_POINTS = -20
MIN_ADJUSTMENT = -50
MAX_ADJUSTMENT = 30


@dataclass(frozen=True, slots=True)
class OnchainFeatures:
    """A wallet's behaviour across every chain we read, as of one block per chain."""

    wallet_age_days: int | None  # None when no chain could date the wallet's first transaction
    tx_count: int
    loans_opened: int
    loans_repaid: int  # closed in full by the borrower, of a principal and a time outstanding that count
    loans_defaulted: int
    min_health_factor_bps: int | None  # lowest over open loans; None with no open loan
    chain_ids: tuple[int, ...] = field(default=())
    #: every chain's history was read; False when a chain was skipped (an outage): its history is missing, not clean
    complete: bool = True
    #: the wallet holds code on a chain read (an ERC-1271 contract wallet): its nonce is not its transaction count
    contract_wallet: bool = False


class OnchainFeatureSource(Protocol):
    """Reads a wallet's features; may do I/O, so it is awaited at the edge, never inside the pure rules."""

    async def features(self, wallet: ChecksumAddress) -> OnchainFeatures: ...


class InMemoryOnchainSource:
    """Fixed features per wallet (tests, local runs); an unknown wallet is a fresh one."""

    def __init__(self, known: dict[ChecksumAddress, OnchainFeatures] | None = None) -> None:
        self.known = dict(known or {})

    async def features(self, wallet: ChecksumAddress) -> OnchainFeatures:
        return self.known.get(wallet, FRESH_WALLET)


FRESH_WALLET = OnchainFeatures(
    wallet_age_days=0, tx_count=0, loans_opened=0, loans_repaid=0, loans_defaulted=0, min_health_factor_bps=None
)


@dataclass(frozen=True, slots=True)
class OnchainAssessment:
    points: int
    declines: tuple[Reason, ...]
    #: non-declining reasons that held the score back, each with the points it cost (for the adverse-action ranking)
    reasons: tuple[tuple[Reason, int], ...]


def combine(features: OnchainFeatures | None) -> OnchainAssessment:
    """The score adjustment and decline reasons that on-chain behaviour implies (see the module docstring)."""
    if features is None:
        return OnchainAssessment(0, (), ())
    declines: list[Reason] = []
    reasons: list[tuple[Reason, int]] = []
    points = min(features.loans_repaid * POINTS_PER_REPAID_LOAN, MAX_REPAID_BONUS)
    if features.loans_defaulted > 0:
        declines.append(PRIOR_DEFAULT)
    health = features.min_health_factor_bps
    if health is not None and health < HEALTHY_BPS:
        declines.append(COLLATERAL_HEALTH)
    elif health is not None and health < WATCH_HEALTH_BPS:
        points += WATCH_HEALTH_POINTS
        reasons.append((COLLATERAL_NEAR_LIMIT, -WATCH_HEALTH_POINTS))
    if thin_wallet(features):
        points += THIN_WALLET_POINTS
        reasons.append((LIMITED_WALLET_HISTORY, -THIN_WALLET_POINTS))
    return OnchainAssessment(min(max(points, MIN_ADJUSTMENT), MAX_ADJUSTMENT), tuple(declines), tuple(reasons))


def thin_wallet(features: OnchainFeatures) -> bool:
    """Whether what was read shows a limited history (reason R32): a known age under ``THIN_WALLET_DAYS``, or fewer
    than ``THIN_WALLET_TXS`` transactions from a wallet whose nonce counts them (not a contract wallet's). Never for a
    history not read in full: a skipped chain may hold the rest of it, and R32 would then be untrue."""
    if not features.complete:
        return False
    age = features.wallet_age_days
    if age is not None and age < THIN_WALLET_DAYS:
        return True
    return not features.contract_wallet and features.tx_count < THIN_WALLET_TXS
