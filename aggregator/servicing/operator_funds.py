"""The operator's account out of gas, as the default job (``aggregator.servicing.defaults``) meets it: the node
refuses its ``markDefault``, ``cancelUnfunded``, ``holdLiquidation`` and ``releaseLiquidationHold`` outright
("insufficient funds": ``TransactionRejected``, the intent ``failed``). Each is sent under one intent per attempt
(``intent_keys``), so an account left empty would leave one more failed attempt per loan and action every round,
without end, and say nothing more than a warning per send.

So a round backs off. The next attempt of a loan's action whose attempts before it were refused for the account's
funds (``refused_for_funds``; the latest ``n`` of them in a row) is deferred while the latest is younger than
``pause(n)`` — ``first`` seconds, doubling per refusal, at most ``most`` — unless the account can pay for that refused
transaction now (its balance at least its gas times its fee cap, plus its value: ``cost``): funds put back are used by
the next round. Within a round, once the node refused one send for the account's funds, every later new attempt is
deferred (``OperatorFunds.refused_now``), and so is a loan's first attempt in the rounds after, while the account
stays starved, its balance has not grown and its last refusal is younger than ``most``: a round leaves at most one
failed attempt, and a loan's attempts grow as the logarithm of the outage, then one per ``most``. An attempt resumed
(in flight) is never deferred.

The alert: a round that deferred an attempt or had one refused for the account's funds finds the account starved.
The first such round logs one error naming the account and the chain; the gauge ``creditmesh_operator_unfunded``
(by chain id) is 1 while it lasts, and ``creditmesh_servicing_deferred_attempts`` counts the attempts deferred (by
chain id and function). The first round with neither logs that the account pays again and sets the gauge to 0. The
admins' ``GET /health`` asks the store and the node itself (``operator_state``), so that every process answers alike.
Before (fixed 2026-11-29) each round sent one more attempt per loan, each refused, for as long as the account stayed
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
from chain.errors import ChainError, TransactionRejected
from chain.transactions import TransactionManager
from store.chain import FAILED, IntentRecord

log = logging.getLogger(__name__)

#: what a node says when the sending account cannot pay for a transaction (geth, anvil, erigon, nethermind)
FUNDS_REFUSALS = ("insufficient funds", "insufficient balance", "gas required exceeds allowance")

STARVED = Gauge(
    "creditmesh_operator_unfunded",
    "1 while the default job finds the operator's account unable to pay for gas, by chain id",
    ["chain"],
)
DEFERRED = Counter(
    "creditmesh_servicing_deferred_attempts",
    "The operator's servicing attempts deferred while its account could not pay for gas, by chain id and function",
    ["chain", "function"],
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


class OperatorFunds:
    """The default job's view of its operator's account, round by round (``new_round``, ``deferral``, ``saw``,
    ``end_round``)."""

    def __init__(self, client: ChainClient, operator: TransactionManager, first: float, most: float) -> None:
        self.client, self.operator, self.first, self.most = client, operator, first, most
        self.chain = str(operator.account.chain_id)
        self.starved = False
        self.starved_balance = 0  # the balance when the account was last found starved
        self.refused_at = 0.0  # when a send was last refused for its funds (monotonic seconds)
        self.new_round()

    @property
    def address(self) -> str:
        return str(self.operator.account.address)

    def new_round(self) -> None:
        self._balance: int | None = None
        self.refused_now = False
        self.deferred = 0

    async def balance(self) -> int:
        """The account's balance at the latest block, read once per round."""
        if self._balance is None:
            self._balance = int(await self.client.rpc("eth_getBalance", self.address, "latest"), 16)
        return self._balance

    async def deferral(self, function: str, earlier: Sequence[IntentRecord]) -> str | None:
        """Why the next attempt of ``function`` after ``earlier`` (the attempts not taken before it, in order) is
        deferred this round, or None: it is sent."""
        if self.refused_now:
            reason = "the node refused an operator transaction this round for the account's funds"
        else:
            refusals = refusals_in_a_row(earlier)
            if refusals == 0:
                lately = time.monotonic() - self.refused_at < self.most
                if not self.starved or not lately or await self.balance() > self.starved_balance:
                    return None
                reason = "it could not last round, and its balance has not grown"
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
        DEFERRED.labels(self.chain, function).inc()
        return f"{function} deferred: the operator's account {self.address} cannot pay for gas ({reason})"

    def saw(self, err: ChainError) -> None:
        """A send of this round raised ``err``: a refusal for the account's funds defers the round's later ones."""
        if isinstance(err, TransactionRejected) and funds_message(str(err)):
            self.refused_now, self.refused_at = True, time.monotonic()

    async def end_round(self) -> None:
        """The alert: the gauge, and one log line each time the account starts or stops failing to pay."""
        starved = self.refused_now or self.deferred > 0
        STARVED.labels(self.chain).set(1 if starved else 0)
        if starved:
            try:
                self.starved_balance = await self.balance()
            except ChainError as err:  # kept as it was: asked again next round
                log.warning("defaulter on chain %s: the operator's balance not read: %s", self.chain, err)
        if starved and not self.starved:
            log.error(
                "defaulter on chain %s: the operator's account %s cannot pay for gas (balance %s wei): its "
                "markDefault, cancelUnfunded, hold and release attempts are deferred until it is funded",
                self.chain, self.address, self.starved_balance,
            )  # fmt: skip
        elif self.starved and not starved:
            log.info("defaulter on chain %s: the operator's account %s pays for gas again", self.chain, self.address)
        self.starved = starved


#: how far back ``GET /health`` looks for a refusal: twice the default job's longest pause between attempts
HEALTH_WINDOW = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class OperatorState:
    """The operator's account on one chain as ``GET /health`` shows it: ``degraded`` while its latest transaction
    refused for its funds (within ``since``) costs more than its balance now."""

    address: str
    status: str
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "status": self.status, "detail": self.detail}


async def operator_state(
    client: ChainClient, operator: TransactionManager, since: timedelta = HEALTH_WINDOW
) -> OperatorState:
    """The operator's account as the store and the node show it now, whichever process runs the default job.

    Raises:
        ChainError: the node did not answer.
    """
    account = operator.account
    after = datetime.now(UTC) - since
    refused = await operator.store.run(lambda repo: repo.latest_failed(account.chain_id, account.address, after))
    refused = [intent for intent in refused if refused_for_funds(intent)]
    if not refused:
        return OperatorState(account.address, "ok")
    balance = int(await client.rpc("eth_getBalance", account.address, "latest"), 16)
    needed = cost(refused[0])
    if balance >= (1 if needed is None else needed):
        return OperatorState(account.address, "ok")
    detail = f"cannot pay for gas: balance {balance} wei; {refused[0].key} refused: {refused[0].error}"
    return OperatorState(account.address, "degraded", detail[:300])
