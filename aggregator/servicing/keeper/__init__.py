"""The liquidation keeper: one per chain across processes (lease kind ``keeper``), run in the API process when
``CREDITMESH_WORKERS`` names it and by ``creditmesh keeper``.

Every round it reads, at one pinned block and in a few JSON-RPC batches (``chain.views``), what the
CollateralManager would read: each open loan's debt and collateral, the assets' risk parameters, the liquidation
thresholds and pause flag, the price feeds with their staleness and sequencer checks (``prices``). It then applies
the contract's rules in Python (``health``) and, for each loan in default or below a health factor of 1:

* liquidates it from the keeper account (``CREDITMESH_KEEPER_KEY``; the account holds the debt asset and has
  approved the CollateralManager), repaying up to the close factor's maximum — only after an ``eth_call``
  simulation from the keeper says the call succeeds, only while it still holds the lease, and never while its last
  liquidation of the loan is in flight: a loan's liquidations are numbered (the intent
  ``liquidate:<chain id>:<CollateralManager>:<loan id>:n<number>``), the next number taken only once the last one
  settled, so two keepers (a stalled one and its successor) send at most one of them, and a loan still unhealthy
  after one liquidation is liquidated again;
* or, when it cannot liquidate now (liquidations paused, a price it may not use, a rule of the contract, the
  keeper's own balance), says why in the log and — for a pool loan — impairs it (``impair``), so that the pool
  counts the expected loss at once; it sends ``impair`` only when the pool's recorded impairment is off by more than
  1% of the debt.

A round sends its liquidations first (within what the keeper holds of each debt asset, counting what the round
spent already) and then waits for their receipts together, each for at most ``receipt_timeout``; a receipt is
applied to the ledger at once (the indexer applies the same confirmed events later, idempotently); bad debt written
off (``BadDebtRecorded``, ``LoanWrittenOff``) is logged with its amount and kept as chain facts, and the loan becomes
``written_off``. A loan funded off-chain is liquidated the same way: the contract
pays its provider's settlement address (``liquidationPayee``); without one the simulation refuses and it is logged.
One whose lender never funded it (unfunded) or has not confirmed funding it yet (its funding pending) is skipped:
its collateral would pay a lender that may never have paid the borrower out (``repository.left_alone``).

Each round also sweeps collateral left claimable: a close the platform did not send (the borrower's own ``close`` or
``repay`` on-chain, a liquidation's remainder) whose push the collateral token refused leaves a ``CollateralClaimable``
fact and nothing else claims it. For each such fact with no ``CollateralRemoved`` of the loan after it, the keeper
simulates ``claimCollateral`` from its own account and, when it passes, sends it under the intent
``claimCollateral:<chain id>:<CollateralManager>:<loan id>`` — once per attempt across keepers and restarts (a resumed
intent is waited on, never sent again); the receipt's ``CollateralRemoved`` is applied to the ledger at once, which
ends the sweep for that loan. A claim the token still refuses is left for a later round; one that reverted when
mined (the token refused again between the simulation and the block) or was refused stays so under its key, and a
later round, once its simulation passes again, sends the next attempt (``…:<loan id>:2`` and on, as the relayer's
claims in ``aggregator.repaying``), at most ``MAX_CLAIM_ATTEMPTS`` (those the node refused for the keeper's funds not
counted). A loan the relayer is claiming already (after a close it relayed, ``aggregator.repaying.claim_collateral``:
any of its attempts in flight) is left to it.

While the keeper's account cannot pay for gas (the node refuses its sends for their funds), a loan's next liquidation,
impairment or claim is deferred as the default job's are (``sender_funds``: the pause doubling per refusal up to
``KeeperSettings.most_pause``, none more in a round once one was refused, funds put back used by the next round), and
it is said once: an error naming the account and chain, a gauge, a counter and the admins' ``/health``. Before (fixed
2026-11-29) every round left one more failed liquidation per loan, and five rounds ended a loan's collateral sweep.
"""

from __future__ import annotations

from aggregator.servicing.keeper._impairments import IMPAIR_TOLERANCE_BPS
from aggregator.servicing.keeper._keeper import LEASE_KIND, Keeper
from aggregator.servicing.keeper._keys import claim_intent_key, liquidation_intent_key, liquidation_intent_prefix
from aggregator.servicing.keeper._reads import DEFAULTED
from aggregator.servicing.keeper._report import RoundReport, Sent
from aggregator.servicing.keeper._settings import KeeperSettings

__all__ = [
    "DEFAULTED",
    "IMPAIR_TOLERANCE_BPS",
    "LEASE_KIND",
    "Keeper",
    "KeeperSettings",
    "RoundReport",
    "Sent",
    "claim_intent_key",
    "liquidation_intent_key",
    "liquidation_intent_prefix",
]
