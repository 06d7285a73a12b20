"""The operator's intents of one loan (``aggregator.servicing.defaults``): ``markDefault`` and ``cancelUnfunded`` on
the CreditAggregator, ``holdLiquidation`` and ``releaseLiquidationHold`` on the CollateralManager, each keyed by its
kind, the chain, the contract it calls (its ``to``, checksummed: a later deployment on the chain numbers its loans
from 1 again, and its loan 1 is not the earlier deployment's) and the loan's id there.

A hold and a release are sent under one intent per attempt: the first's key has no number (the key of every one sent
before attempts were numbered, so none is rekeyed), a later one ``:<n>`` after the loan's id — as
``repaying.claim_collateral`` and the keeper's claims do. An attempt the node did not take (refused — the operator's
account out of gas — or dropped) or that reverted did nothing and is never sent again under its key (the transaction
manager answers its terminal state for ever): ``current_attempt`` finds the one to resume or send."""

from __future__ import annotations

from collections.abc import Callable

from eth_utils.address import to_checksum_address

from chain.transactions import BARRED_PAYLOAD
from store.chain import DROPPED, FAILED, REVERTED, IntentRecord, SqlChainStore
from store.chain_repository import ChainRepository

#: an attempt that did nothing: the node refused it, it was dropped, or it reverted. It is never sent again under its
#: key: the next attempt is
NOT_TAKEN = (FAILED, DROPPED, REVERTED)
ATTEMPTS_READ = 16  # the attempts' intents read in one query


def _key(function: str, chain_id: int, contract: str, loan_ref: int, attempt: int) -> str:
    """The one spelling of an operator's intent of a loan: ``<function>:<chain id>:<contract>:<loan id>[:<n>]``."""
    key = f"{function}:{chain_id}:{to_checksum_address(contract)}:{loan_ref}"
    return key + ("" if attempt == 1 else f":{attempt}")


def default_intent_key(chain_id: int, aggregator: str, loan_ref: int) -> str:
    """One ``markDefault`` per loan, ever (named by its CreditAggregator): the key a second sender finds already
    taken."""
    return _key("markDefault", chain_id, aggregator, loan_ref, 1)


def cancel_intent_key(chain_id: int, aggregator: str, loan_ref: int) -> str:
    """One ``cancelUnfunded`` per loan, ever: the key a second sender finds already taken."""
    return _key("cancelUnfunded", chain_id, aggregator, loan_ref, 1)


def hold_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, attempt: int = 1) -> str:
    """A loan's ``holdLiquidation`` (named by the CollateralManager it is sent to), one intent per attempt."""
    return _key("holdLiquidation", chain_id, collateral_manager, loan_ref, attempt)


def release_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, attempt: int = 1) -> str:
    """A loan's ``releaseLiquidationHold``, one intent per attempt."""
    return _key("releaseLiquidationHold", chain_id, collateral_manager, loan_ref, attempt)


async def current_attempt(store: SqlChainStore, key_of: Callable[[int], str]) -> tuple[str, IntentRecord | None]:
    """The attempt a loan's hold or release (``key_of(n)``: its n-th attempt's key) is sent or resumed under now,
    with its intent: the first one not refused, dropped nor reverted (``NOT_TAKEN``) — none yet (None: the next to
    send), in flight or confirmed — or barred (an admin settled the loan funded: nothing is sent under it)."""
    first = 1
    while True:
        keys = [key_of(n) for n in range(first, first + ATTEMPTS_READ)]

        def read(repo: ChainRepository, keys: list[str] = keys) -> list[IntentRecord]:
            return repo.intents(keys)

        stored = {intent.key: intent for intent in await store.run(read)}
        for key in keys:
            intent = stored.get(key)
            if intent is None or intent.status not in NOT_TAKEN or intent.payload_hash == BARRED_PAYLOAD:
                return key, intent
        first += ATTEMPTS_READ
