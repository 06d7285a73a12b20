"""The operator's intents of one loan (``aggregator.servicing.defaults``): ``markDefault`` and ``cancelUnfunded`` on
the CreditAggregator, ``holdLiquidation`` and ``releaseLiquidationHold`` on the CollateralManager, each keyed by its
kind, the chain, the contract it calls (its ``to``, checksummed: a later deployment on the chain numbers its loans
from 1 again, and its loan 1 is not the earlier deployment's) and the loan's id there.

Each is sent under one intent per attempt: the first's key has no number (the key of every intent sent before
attempts were numbered, so none is rekeyed), a later one ``:<n>`` after the loan's id — as ``repaying.claim_collateral``
and the keeper's claims do. An attempt the node did not take (refused — the operator's account out of gas — or
dropped) or that reverted did nothing and is never sent again under its key (the transaction manager answers its
terminal state for ever): ``current_attempt`` finds the one to resume or send. Until 2026-11-29 ``markDefault`` and
``cancelUnfunded`` had one key per loan, ever: a ``markDefault`` refused once was never sent again — the loan was
never marked in default and its lender could never recover through liquidation — and a ``cancelUnfunded`` refused
once failed for ever, the job's and an admin's settle-not-funded alike."""

from __future__ import annotations

from collections.abc import Callable

from eth_utils.address import to_checksum_address

from chain.transactions import BARRED_PAYLOAD
from store.chain import DROPPED, FAILED, REVERTED, IntentRecord, SqlChainStore

#: an attempt that did nothing: the node refused it, it was dropped, or it reverted. It is never sent again under its
#: key: the next attempt is
NOT_TAKEN = (FAILED, DROPPED, REVERTED)


def _key(function: str, chain_id: int, contract: str, loan_ref: int, attempt: int) -> str:
    """The one spelling of an operator's intent of a loan: ``<function>:<chain id>:<contract>:<loan id>[:<n>]``."""
    key = f"{function}:{chain_id}:{to_checksum_address(contract)}:{loan_ref}"
    return key + ("" if attempt == 1 else f":{attempt}")


def default_intent_key(chain_id: int, aggregator: str, loan_ref: int, attempt: int = 1) -> str:
    """A loan's ``markDefault`` (named by its CreditAggregator), one intent per attempt: the key a second sender of
    the same attempt finds already taken."""
    return _key("markDefault", chain_id, aggregator, loan_ref, attempt)


def cancel_intent_key(chain_id: int, aggregator: str, loan_ref: int, attempt: int = 1) -> str:
    """A loan's ``cancelUnfunded``, one intent per attempt, numbered as ``default_intent_key``'s; an admin's
    settle-as-funded bars the next attempt (``aggregator.funding_settlement``)."""
    return _key("cancelUnfunded", chain_id, aggregator, loan_ref, attempt)


def hold_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, attempt: int = 1) -> str:
    """A loan's ``holdLiquidation`` (named by the CollateralManager it is sent to), one intent per attempt."""
    return _key("holdLiquidation", chain_id, collateral_manager, loan_ref, attempt)


def release_intent_key(chain_id: int, collateral_manager: str, loan_ref: int, attempt: int = 1) -> str:
    """A loan's ``releaseLiquidationHold``, one intent per attempt."""
    return _key("releaseLiquidationHold", chain_id, collateral_manager, loan_ref, attempt)


async def current_attempt(store: SqlChainStore, key_of: Callable[[int], str]) -> tuple[str, IntentRecord | None]:
    """The attempt an operator's intent of a loan (``key_of(n)``: its n-th attempt's key) is sent or resumed under
    now, with its intent: the first one stored not refused, dropped nor reverted (``NOT_TAKEN``) — in flight or
    confirmed — or barred (an admin settled the loan funded: nothing is sent under it); else the one after the last
    stored (None: the next to send). Every attempt stored is read, not each number up to the first missing one: the
    code before 0037 sent a later attempt of an earlier deployment's loan to the later deployment's contract, and
    0037 rekeyed it by that contract, whose attempts of the loan then start past 1. Until 2026-11-29 that gap read as
    nothing sent, and a second ``markDefault``, hold or release of the loan was sent over the one in flight."""
    key, intent, _ = await attempt_history(store, key_of)
    return key, intent


async def attempt_history(
    store: SqlChainStore, key_of: Callable[[int], str]
) -> tuple[str, IntentRecord | None, tuple[IntentRecord, ...]]:
    """``current_attempt``, with the attempts before it, in order: each refused, dropped or reverted (what the
    default job backs off by while the operator's account cannot pay: ``sender_funds``)."""
    stored = await store.attempts(key_of(1))
    earlier = list[IntentRecord]()
    for _, intent in stored:
        if intent.status not in NOT_TAKEN or intent.payload_hash == BARRED_PAYLOAD:
            return intent.key, intent, tuple(earlier)
        earlier.append(intent)
    return key_of(stored[-1][0] + 1 if stored else 1), None, tuple(earlier)
