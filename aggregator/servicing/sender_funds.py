"""A servicing job's sending account out of gas: the operator's, as the default job (``aggregator.servicing.
defaults``) meets it, and the keeper's, as the liquidation keeper (``aggregator.servicing.keeper``) does. The node
refuses their sends outright ("insufficient funds": ``TransactionRejected``, or ``GasEstimationFailed`` at the gas
estimate; the intent ``failed``) — the operator's ``markDefault``, ``cancelUnfunded``, ``holdLiquidation`` and
``releaseLiquidationHold``, the keeper's liquidations, impairments and collateral claims. Each is sent under one
intent per attempt (``intent_keys``; the keeper's numbered liquidations and claims), so an account left empty would
leave one more failed attempt per loan and action every round, without end, and say nothing more than a warning per
send.

So a round backs off. The next attempt of a loan's action whose attempts before it were refused for the account's
funds (``refused_for_funds``; the latest ``n`` of them in a row) is deferred while the latest is younger than
``pause(n)`` — ``first`` seconds, doubling per refusal, at most ``most`` — unless the account can pay for that refused
transaction now (its balance at least its gas times its fee cap, plus its value: ``cost``): funds put back are used by
the next round. Within a round, once the node refused one send for the account's funds, every later new attempt is
deferred (``SenderFunds.refused_now``), and so is a loan's first attempt in the rounds after, while the account
stays starved, its balance has not grown and its last refusal is younger than ``first``: a round leaves at most one
failed attempt, a first attempt goes out as the account's probe at most once per ``first`` (so a keeper that can pay
again — fees fell, a retry went through — holds a new liquidation back for ``first`` at most, not ``most``), and a
loan's attempts grow as the logarithm of the outage, then one per ``most``. An attempt resumed (in flight) is never
deferred.

The alert: a round that deferred an attempt or had one refused for the account's funds finds the account starved.
The first such round logs one error naming the account, its role and the chain; the gauge
``creditmesh_operator_unfunded`` (by chain id and role: ``operator``, ``keeper``) is 1 while it lasts, and
``creditmesh_servicing_deferred_attempts`` counts the attempts deferred (by chain id, role and function). The first
round with neither logs that the account pays again and sets the gauge to 0. The admins' ``GET /health`` asks the
store and the node itself (``sender_state``), so that every process answers alike. Before (fixed 2026-11-29, the
keeper's the same day) each round sent one more attempt per loan, each refused, for as long as the account stayed
empty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge

from chain.client import ChainClient
from chain.errors import ChainError, GasEstimationFailed, TransactionRejected
from chain.signers import Role
from chain.transactions import TransactionManager
from store.chain import FAILED, IntentRecord

log = logging.getLogger(__name__)

#: what a node says when the sending account cannot pay for a transaction (geth, anvil, erigon, nethermind). Not its
#: "gas required exceeds allowance" as it stands: a node says that at ``eth_estimateGas`` of a call that needs more gas
#: than the node allows, and our estimates carry no fee, so for us it is never the balance's: the transaction manager
#: stores it followed by ``chain.fees.NOT_THE_SENDERS_FUNDS``. Before (fixed 2026-11-29, later that day) every such
#: refusal counted as the account's funds: the keeper's claims of a loan were sent again past ``MAX_CLAIM_ATTEMPTS``.
FUNDS_REFUSALS = ("insufficient funds", "insufficient balance")

STARVED = Gauge(
    "creditmesh_operator_unfunded",
    "1 while a servicing job finds its sending account unable to pay for gas, by chain id and role (operator: the "
    "default job's; keeper)",
    ["chain", "role"],
)
DEFERRED = Counter(
    "creditmesh_servicing_deferred_attempts",
    "Servicing attempts deferred while their sending account could not pay for gas, by chain id, role and function",
    ["chain", "role", "function"],
)


def funds_message(message: str) -> bool:
    """Whether a node's refusal ``message`` says the account cannot pay."""
    lowered = message.lower()
    return any(token in lowered for token in FUNDS_REFUSALS)


def refused_for_funds(intent: IntentRecord) -> bool:
    """Whether the node refused ``intent`` outright because its sender could not pay for it."""
    return intent.status == FAILED and funds_message(intent.error or "")


def cost(intent: IntentRecord) -> int | None:
    """The most ``intent``'s latest signed transaction could cost its sender (wei): gas times the fee cap, plus the
    value; None when none was signed."""
    if not intent.attempts:
        return None
    latest = intent.attempts[-1]
    return latest.gas * latest.max_fee_per_gas + intent.value


def pause(refusals: int, first: float, most: float) -> float:
    """Seconds to wait after the latest of ``refusals`` in a row (at least 1) before the next attempt."""
    return float(min(most, first * 2 ** min(refusals - 1, 32)))


def refusals_in_a_row(earlier: Sequence[IntentRecord]) -> int:
    """How many of the latest ``earlier`` attempts, in a row, were refused for the account's funds."""
    count = 0
    for intent in reversed(earlier):
        if not refused_for_funds(intent):
            break
        count += 1
    return count


class SenderFunds:
    """A servicing job's view of its sending account, round by round (``new_round``, ``deferral``, ``saw``,
    ``end_round``): ``role`` the account's (``operator``, ``keeper``), ``job`` how the job names itself in its log
    lines (``defaulter``, ``keeper``), ``sends`` what of the job's it defers (said in the alert)."""

    def __init__(
        self, client: ChainClient, sender: TransactionManager, first: float, most: float, *, role: Role, job: str,
        sends: str,
    ) -> None:  # fmt: skip
        self.client, self.sender, self.first, self.most = client, sender, first, most
        self.role, self.job, self.sends = role.value, job, sends
        self.chain = str(sender.account.chain_id)
        self.starved = False
        self.starved_balance = 0  # the balance when the account was last found starved
        self.refused_at = 0.0  # when a send was last refused for its funds (monotonic seconds)
        self.new_round()

    @property
    def address(self) -> str:
        return str(self.sender.account.address)

    def new_round(self) -> None:
        self._balance: int | None = None
        self.refused_now = False
        self.deferred = 0

    async def balance(self) -> int:
        """The account's balance at the latest block, read once per round.

        Raises:
            ChainError: the node did not answer.
        """
        if self._balance is None:
            self._balance = int(await self.client.rpc("eth_getBalance", self.address, "latest"), 16)
        return self._balance

    async def deferral(self, function: str, earlier: Sequence[IntentRecord]) -> str | None:
        """Why the next attempt of ``function`` after ``earlier`` (the attempts not taken before it, in order) is
        deferred this round, or None: it is sent.

        Raises:
            ChainError: the account's balance was needed and the node did not answer.
        """
        if self.refused_now:
            reason = f"the node refused a {self.role} transaction this round for the account's funds"
        else:
            refusals = refusals_in_a_row(earlier)
            if refusals == 0:
                # a first attempt waits out only the first pause after the account's last refusal: then it is sent as
                # the probe of whether the account pays now (fees fall; a retry paid meanwhile), not held for an hour
                lately = time.monotonic() - self.refused_at < self.first
                if not self.starved or not lately or await self.balance() > self.starved_balance:
                    return None
                reason = f"it could not {self.first:.0f} s ago or less, and its balance has not grown"
            else:
                latest = earlier[-1]
                needed = cost(latest)
                if await self.balance() >= (1 if needed is None else needed):
                    return None  # funds put back: sent now
                wait = pause(refusals, self.first, self.most)
                since = latest.updated_at or datetime.now(UTC)
                if datetime.now(UTC) - since >= timedelta(seconds=wait):
                    return None
                reason = f"{refusals} attempt(s) refused for the account's funds; the next after {wait:.0f} s"
        self.deferred += 1
        DEFERRED.labels(self.chain, self.role, function).inc()
        return f"{function} deferred: the {self.role}'s account {self.address} cannot pay for gas ({reason})"

    def saw(self, err: ChainError) -> None:
        """A send of this round raised ``err``: a refusal for the account's funds — by the node at the send, or at
        the gas estimate (``err`` or what it was raised from) unless that said the call reverts — defers the round's
        later ones."""
        estimate = err if isinstance(err, GasEstimationFailed) else err.__cause__
        refused = isinstance(err, TransactionRejected) or (
            isinstance(estimate, GasEstimationFailed) and not estimate.reverts
        )
        if refused and funds_message(str(err)):
            self.refused_now, self.refused_at = True, time.monotonic()

    async def end_round(self) -> None:
        """The alert: the gauge, and one log line each time the account starts or stops failing to pay."""
        starved = self.refused_now or self.deferred > 0
        STARVED.labels(self.chain, self.role).set(1 if starved else 0)
        if starved:
            try:
                self.starved_balance = await self.balance()
            except ChainError as err:  # kept as it was: asked again next round
                log.warning("%s on chain %s: the %s's balance not read: %s", self.job, self.chain, self.role, err)
        if starved and not self.starved:
            log.error(
                "%s on chain %s: the %s's account %s cannot pay for gas (balance %s wei): its %s are deferred until "
                "it is funded",
                self.job, self.chain, self.role, self.address, self.starved_balance, self.sends,
            )  # fmt: skip
        elif self.starved and not starved:
            log.info("%s on chain %s: the %s's account %s pays for gas again", self.job, self.chain, self.role,
                     self.address)  # fmt: skip
        self.starved = starved


#: how far back ``GET /health`` looks for a refusal: twice the servicing jobs' longest pause between attempts
HEALTH_WINDOW = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class SenderState:
    """A sending role's account on one chain as ``GET /health`` shows it: ``degraded`` while its latest transaction
    refused for its funds (within ``since``) costs more than its balance now."""

    address: str
    status: str
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "status": self.status, "detail": self.detail}


async def sender_state(
    client: ChainClient, sender: TransactionManager, since: timedelta = HEALTH_WINDOW
) -> SenderState:
    """The account of ``sender`` (the operator's, the keeper's) as the store and the node show it now, whichever
    process runs its job.

    Raises:
        ChainError: the node did not answer.
    """
    account = sender.account
    after = datetime.now(UTC) - since
    refused = await sender.store.run(lambda repo: repo.latest_failed(account.chain_id, account.address, after))
    refused = [intent for intent in refused if refused_for_funds(intent)]
    if not refused:
        return SenderState(account.address, "ok")
    balance = int(await client.rpc("eth_getBalance", account.address, "latest"), 16)
    needed = cost(refused[0])
    if balance >= (1 if needed is None else needed):
        return SenderState(account.address, "ok")
    detail = f"cannot pay for gas: balance {balance} wei; {refused[0].key} refused: {refused[0].error}"
    return SenderState(account.address, "degraded", detail[:300])
