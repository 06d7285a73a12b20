"""Relayed repayment of a pool loan: the borrower signs a ``Repayment`` (EIP-712, the CreditAggregator's domain) and,
for the allowance, an EIP-2612 permit of the debt asset; the platform's relayer sends ``repayWithPermit``, so the
borrower needs no ETH. The record follows from the receipt's ``LoanRepaid`` (and ``LoanClosed``) through the
ledger's idempotent ``record_events``, which the indexer repeats later.

Checked before anything is sent, each refusal naming its field: the loan is the caller's, a pool loan of the
CreditAggregator the chain's deployment record names (not an earlier deployment's: ``platform.earlier_deployment``),
active or in default; the amount is positive and at most what is owed now (``"max"`` pays everything owed when
mined and closes the loan); the repayment's signature recovers the borrower (a contract wallet's is left to the
chain's ERC-1271 check); the repayment's deadline has not passed by the chain's time (its latest block's, which
a devnet moved on runs ahead of ours); the permit recovers the borrower under the token's own domain with its current
nonce, covers the amount and has not expired by the chain's time, or, without a permit, the allowance already covers
the amount. The transaction's intent key is the hash of
its calldata: the same signed repayment posted twice is one transaction; one refused before it was sent, or whose
transaction was dropped, stays so (``repayment-rejected``: sign a new repayment).

Repayments of one loan are taken one at a time, each from its checks to its recorded outcome, in a process and across
the platform's processes (the loan's claim, ``aggregator.loan_locks.LoanClaims``, a lease in the database): one
racing another is checked after it, so a loan the first closed is refused here (``loan-not-repayable``), never sent;
one that waited longer than the repayment's wait for another process's is ``repayment-in-progress`` (409 with
``Retry-After``: nothing of it sent, the same repayment posted again later is taken; it was ``loan-not-repayable``,
which the idempotency middleware kept and replayed for the key's day and clients read as final); a refusal of the
chain's that says the loan is closed (``LoanNotActive``, ``NothingOwed``: the borrower's own repayment, a liquidation
mined first) is ``loan-not-repayable`` too. Until 2026-11-29 the claim was the process's lock alone: two API
processes each checked a ``"max"`` repayment before either was sent, and the relayer sent both, the second to revert
at its cost (its borrower told ``repayment-rejected`` when both were mined in one block). A repayment answered
``submitted`` (not confirmed within the wait) gives the claim up with its transaction on its way: until that
transaction is confirmed or ends, a new repayment of the loan is ``repayment-in-progress`` too, nothing of it sent
(``repayment_under_way``, read under the claim); the same signed repayment posted again follows its transaction.
Until 2026-11-29 the new one was checked against the loan as it was before the first was mined, and a second
``"max"`` was sent to revert at the relayer's cost.

After ``LoanClosed`` the collateral is back: the contract pushes it; when the token refused the push
(``CollateralClaimable``) the relayer sends ``claimCollateral``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import Web3Exception

from aggregator.assets import Asset, AssetRegistry, parse_amount
from aggregator.errors import (
    AmountOverOwed,
    InvalidCreditRequest,
    InvalidRepayment,
    LoanNotFound,
    LoanNotRepayable,
    RepaymentInProgress,
    RepaymentRejected,
)
from aggregator.ledger import ACTIVE, DEFAULTED
from aggregator.loan_locks import LoanBusy, LoanClaims, LoanLocks
from aggregator.loans import LoanRecord, LoanScope, LoanStore, in_scope
from aggregator.permit import CollateralPermit, chain_time, deadline_passed, permit_signer
from aggregator.platform import ChainRuntime, earlier_deployment
from aggregator.receipts import ReceiptRecorder
from chain.artifacts import load_artifact
from chain.errors import (
    ChainError,
    ConfirmationTimeout,
    GasEstimationFailed,
    TransactionDropped,
    TransactionReverted,
)
from chain.events import ChainEvent
from chain.relay import revert_of
from chain.transactions import Call
from compliance.tila.disclosure import single_payment_interest
from contracts.typed_data import (
    REPAY_ALL,
    UNRECOVERABLE,
    Permit,
    Repayment,
    recover,
    repayment_typed_data,
)
from store.chain import DROPPED, FAILED, REVERTED
from store.leases import LeaseStore

log = logging.getLogger(__name__)

MAX = "max"


class ChainReadFailed(ChainError):
    """A read the repayment's checks needed failed (a node down or answering nonsense)."""


#: a repayment whose transaction was dropped (another transaction of the relayer took its nonce): nothing of it was
#: mined, and the same signed repayment is the same transaction, dropped for good
DROPPED_REPAYMENT = (
    "its transaction was dropped before it was mined (nothing was paid): sign a new repayment (another nonce) and "
    "post it"
)
NO_PERMIT = (0, 0, 0, b"\x00" * 32, b"\x00" * 32)  # fails at the token: the allowance already in place pays
#: LoanStatus.Active of contracts/interfaces/Types.sol (getLoan's status): only an active loan accrues interest
ONCHAIN_ACTIVE = 1


@dataclass(frozen=True, slots=True)
class SignedRepayment:
    """What the borrower sends: the amount (decimal string in the asset's units, or ``"max"``), the signed
    ``Repayment``'s nonce and deadline and its signature, and an optional permit ``(value, deadline, v, r, s)``."""

    amount: str
    nonce: int
    deadline: int
    signature: bytes
    permit: CollateralPermit | None


@dataclass(frozen=True, slots=True)
class RepaymentOutcome:
    """The relayed repayment: ``confirmed`` with what the contract applied (interest first), or ``submitted`` when
    it was not mined within the wait (the ledger records it from the chain when it is)."""

    loan_id: str
    status: str
    tx_hash: str | None
    block_number: int | None = None
    interest_paid: int = 0
    principal_paid: int = 0
    outstanding_principal: int | None = None
    closed: bool = False
    collateral_claim_tx: str | None = None


class RepaymentService:
    def __init__(
        self,
        loans: LoanStore,
        chains: dict[str, ChainRuntime],
        assets: AssetRegistry,
        receipts: ReceiptRecorder,
        *,
        wait_seconds: float = 120.0,
        leases: LeaseStore | None = None,
    ) -> None:
        """``leases``: where a loan's claim is taken across processes (the database's; None: in this process only,
        for in-memory stores). Another process's claim is waited for up to ``wait_seconds``."""
        self._loans, self._chains, self._assets, self._wait = loans, chains, assets, wait_seconds
        self._receipts = receipts
        self._claims = LoanClaims("repayment", _repaying, leases, patience=wait_seconds)
        self._separators: dict[tuple[int, str], bytes] = {}

    def _load(self, loan_id: str, borrower_id: str) -> LoanRecord:
        scope = LoanScope(borrower_id=borrower_id)
        with self._loans.reading() as loans, in_scope(scope):
            loan = loans.get(loan_id)
        if loan is None or not scope.allows(loan):
            raise LoanNotFound(loan_id)
        return loan

    async def repay(self, borrower_id: str, loan_id: str, signed: SignedRepayment) -> RepaymentOutcome:
        """Check, relay ``repayWithPermit`` and record what its receipt shows (see the module docstring).

        Raises:
            LoanNotFound (also for another borrower's loan whose row cannot be read), LoanNotRepayable,
            RepaymentInProgress, InvalidRepayment, AmountOverOwed, RepaymentRejected; LoanRecordUnreadable when the
            borrower's loan's row cannot be read, ChainError when the chain does not answer (the API's 503s)."""
        # One at a time per loan, from the checks to the recorded outcome, across processes: a second repayment
        # racing the first is checked against what the first left (a closed loan refused here), not sent to revert
        # at the relayer's cost.
        await asyncio.to_thread(self._load, loan_id, borrower_id)  # another's loan: 404, its claim never touched
        try:
            async with self._claims.hold(loan_id):
                loan = await asyncio.to_thread(self._load, loan_id, borrower_id)
                return await self._repay(loan, signed)
        except LoanBusy as err:  # nothing of this one checked or sent: the same repayment posted later is
            raise RepaymentInProgress(
                loan_id,
                "another of the platform's processes is still sending one; nothing of this one was sent: post it "
                "again shortly",
            ) from err

    async def _repay(self, loan: LoanRecord, signed: SignedRepayment) -> RepaymentOutcome:
        chain = self._chains.get(loan.chain_name)
        if chain is None or loan.onchain_loan_id is None:
            raise LoanNotRepayable(loan.id, f"it is not on a chain configured here ({loan.chain_name})")
        earlier = earlier_deployment(chain, loan.contract)
        if earlier is not None:  # relayed to the newest deployment, it would repay that one's loan of the same id
            raise LoanNotRepayable(loan.id, earlier)
        if not loan.pool:
            raise LoanNotRepayable(loan.id, "it was funded by a lender off-chain: pay the lender, who reports it")
        asset = self._assets.by_address(loan.chain_name, loan.asset_address or "")
        onchain_id = int(loan.onchain_loan_id)
        amount = REPAY_ALL if signed.amount == MAX else _base_units(signed.amount, asset)
        repayment = Repayment(onchain_id, amount, signed.nonce, signed.deadline)
        call = repayment_call(chain.aggregator(), repayment, signed)
        intent = repayment_intent_key(chain.chain_id, call)
        # The same signed repayment again (a retry): its transaction's outcome, not the checks of a new one (its
        # permit's token nonce is used up by now).
        existing = await chain.transactions.store.get_intent(intent)
        if existing is not None and existing.status == FAILED:  # refused by simulation: nothing was sent
            raise _refused(loan.id, intent, existing.error or "refused before it was sent; sign a new repayment")
        if existing is not None and existing.status == DROPPED:  # its calldata is that transaction's for good
            raise RepaymentRejected(DROPPED_REPAYMENT)
        if existing is None:
            if loan.status not in (ACTIVE, DEFAULTED):
                raise LoanNotRepayable(loan.id, f"it is {loan.status}")
            if await repayment_under_way(chain, onchain_id):  # checked now, it would be against the loan before it
                raise RepaymentInProgress(
                    loan.id,
                    "its transaction is sent and not yet confirmed; nothing of this one was sent: post it again once "
                    "that one is (GET the loan to follow it)",
                )
            owed = await amount_owed(chain, onchain_id)
            if owed == 0:
                raise LoanNotRepayable(loan.id, "nothing is owed")
            if amount != REPAY_ALL and amount > owed:
                assert asset is not None  # _base_units refuses an asset we do not list
                raise AmountOverOwed(signed.amount, asset.format(owed))
            borrower = to_checksum_address(loan.borrower_address or "")
            needed = max(owed, await owed_at(chain, onchain_id, signed.deadline)) if amount == REPAY_ALL else amount
            await self._check_consent(chain, loan, borrower, repayment, signed, needed)
        try:
            submission = await chain.transactions.submit(intent, call)
            receipt = await chain.transactions.wait(intent, within=self._wait)
        except ConfirmationTimeout:
            return RepaymentOutcome(loan.id, "submitted", submission.tx_hash)
        except GasEstimationFailed as err:
            raise _refused(loan.id, intent, err.decoded or str(err)) from err
        except TransactionReverted as err:
            raise _refused(loan.id, intent, await _why_reverted(chain, call, err)) from err
        except TransactionDropped as err:
            raise RepaymentRejected(DROPPED_REPAYMENT) from err
        events = await self._record(chain, receipt.tx_hash)
        return await self._outcome(chain, loan.id, onchain_id, receipt.tx_hash, receipt.block_number, events)

    async def _check_consent(
        self,
        chain: ChainRuntime,
        loan: LoanRecord,
        borrower: str,
        repayment: Repayment,
        signed: SignedRepayment,
        needed: int,
    ) -> None:
        try:
            now = await chain_time(chain.w3)
        except (Web3Exception, ValueError, OSError, TimeoutError) as err:
            raise ChainReadFailed(f"{chain.name}: reading the latest block failed: {err}") from err
        passed = deadline_passed(signed.deadline, now)  # the contract's RepaymentExpired once it is sent
        if passed is not None:
            raise InvalidRepayment("deadline", f"{passed}: sign a new repayment")
        if len(signed.signature) == 65:
            signer: str
            try:
                signer = recover(repayment_typed_data(chain.aggregator_domain, repayment), signed.signature)
            except UNRECOVERABLE as err:  # no key's signature: an ERC-1271 wallet's is the contract's to judge
                if not await _is_contract(chain, borrower):
                    raise InvalidRepayment("signature", f"recovers no signer: {err}") from err
                signer = borrower
            if signer != borrower and not await _is_contract(chain, borrower):
                raise InvalidRepayment("signature", f"recovers {signer}, not the loan's borrower {borrower}")
        token: Any = chain.w3.eth.contract(
            address=to_checksum_address(loan.asset_address or ""), abi=load_artifact("MockERC20").abi
        )
        try:
            if signed.permit is None:
                allowance = int(await token.functions.allowance(borrower, chain.aggregator().address).call())
                if allowance < needed:
                    raise InvalidRepayment(
                        "permit",
                        f"required: the borrower's allowance to the CreditAggregator ({allowance} base units) does not "
                        f"cover {_what(repayment, needed)}",
                    )
                return
            value, deadline, v, r, s = signed.permit.as_abi_tuple()
            if value < needed:
                raise InvalidRepayment("permit.value", f"{value} base units do not cover {_what(repayment, needed)}")
            passed = deadline_passed(deadline, now)  # the token refuses it: the contract goes on without it
            if passed is not None:
                raise InvalidRepayment("permit.deadline", f"{passed}: sign a new permit")
            separator = await self._domain_separator(chain, token)
            nonce = int(await token.functions.nonces(borrower).call())
        except (Web3Exception, ValueError, OSError, TimeoutError) as err:
            raise ChainReadFailed(f"{chain.name}: reading the debt asset failed: {err}") from err
        permit = Permit(to_checksum_address(borrower), chain.aggregator().address, value, nonce, deadline)
        permit_by = permit_signer(separator, permit, v, r, s)
        if permit_by is None:
            raise InvalidRepayment("permit", "does not verify: the signature recovers no signer")
        if permit_by != borrower:
            raise InvalidRepayment(
                "permit",
                f"recovers {permit_by}, not the borrower, under the token's DOMAIN_SEPARATOR() with its nonce {nonce}: "
                "sign it under the domain GET /v1/platform lists for the token (assets[].permit_domains; for a token "
                "listed without one, approve the amount instead of a permit) with that nonce (a permit used already "
                "has an older one)",
            )

    async def _domain_separator(self, chain: ChainRuntime, token: Any) -> bytes:
        """The debt asset's EIP-712 ``DOMAIN_SEPARATOR()`` (EIP-2612's, which older tokens without EIP-5267's
        ``eip712Domain()`` have too), read once per chain and token."""
        key = (chain.chain_id, token.address)
        if key not in self._separators:
            self._separators[key] = bytes(await token.functions.DOMAIN_SEPARATOR().call())
        return self._separators[key]

    async def _record(self, chain: ChainRuntime, tx_hash: str) -> list[ChainEvent]:
        """The receipt's events into the ledger now (the indexer applies the same facts again, idempotently)."""
        return await self._receipts.record(chain, tx_hash)

    async def _outcome(
        self, chain: ChainRuntime, loan_id: str, onchain_id: int, tx_hash: str, block: int, events: list[ChainEvent]
    ) -> RepaymentOutcome:
        ours = [e for e in events if e.args.get("loanId") == onchain_id]
        repaid = next((e for e in ours if e.event == "LoanRepaid"), None)
        if repaid is None:
            raise ChainError(f"repayWithPermit receipt {tx_hash} has no LoanRepaid for loan {onchain_id}")
        closed = any(e.event == "LoanClosed" for e in ours)
        claim = None
        if any(e.event == "CollateralClaimable" for e in ours):
            claim = await claim_collateral(chain, onchain_id, self._wait)
        return RepaymentOutcome(
            loan_id,
            "confirmed",
            tx_hash,
            block,
            int(repaid.args["interestPaid"]),
            int(repaid.args["principalPaid"]),
            int(repaid.args["outstandingPrincipal"]),
            closed,
            claim,
        )


#: one repayment at a time per loan in this process, the fast path of its claim (``RepaymentService.repay``)
_repaying = LoanLocks()
#: the CreditAggregator's refusals of a repayment of a loan that takes none any more (a repayment, a close or a
#: liquidation mined first): the API's 409 ``loan-not-repayable``, not a repayment to sign again
NOT_REPAYABLE_ERRORS = ("LoanNotActive(", "NothingOwed(")


def _refused(loan_id: str, intent: str, reason: str) -> LoanNotRepayable | RepaymentRejected:
    """What the borrower is told of the chain's refusal ``reason`` (a simulation's, a mined revert's): the loan takes
    no repayment for the errors of ``NOT_REPAYABLE_ERRORS``, else the repayment was rejected. The platform's intent
    key, which a mined revert's message starts with, is no business of the borrower's."""
    told = reason.replace(intent, "its transaction")
    if any(error in told for error in NOT_REPAYABLE_ERRORS):
        return LoanNotRepayable(
            loan_id, f"the chain takes no repayment of it now ({told}): a repayment, close or liquidation came first"
        )
    return RepaymentRejected(told)


async def _why_reverted(chain: ChainRuntime, call: Call, reverted: TransactionReverted) -> str:
    """Why a mined repayment reverted, as the chain says now: a mined revert carries no reason, so the same call is
    simulated at the head — a loan that a transaction mined before it closed (the borrower's own repayment, a
    liquidation) says ``LoanNotActive``, the 409 ``loan-not-repayable``, not a repayment to sign again. The revert's
    own message when the simulation passes now or cannot be run."""
    assert call.to is not None
    request = {"from": chain.relayer, "to": call.to, "data": "0x" + call.data.hex()}
    try:
        now = await revert_of(chain.client.provider, request)
    except (ChainError, KeyError):  # no answer, or an answer without a result: the revert's own message
        now = None
    return f"{reverted} ({now})" if now else str(reverted)


def repayment_call(aggregator: Any, repayment: Repayment, signed: SignedRepayment) -> Call:
    """The relayer's ``repayWithPermit`` of ``repayment`` with the borrower's signature and permit (``NO_PERMIT``
    without one)."""
    permit = signed.permit.as_abi_tuple() if signed.permit else NO_PERMIT
    return Call.function(aggregator, "repayWithPermit", repayment.as_abi_tuple(), signed.signature, permit)


def repayment_intent_key(chain_id: int, call: Call) -> str:
    """A repayment's intent: the hash of its calldata, so that the same signed repayment posted twice is one
    transaction (and one the relayer dropped stays dropped: a new repayment is another calldata)."""
    return f"repay:{chain_id}:0x{keccak(call.data).hex()}"


#: the attempts at one loan's collateral claim, each its own intent (a failed one is never sent again)
MAX_CLAIM_ATTEMPTS = 5
CLAIM_FAILED = (REVERTED, FAILED, DROPPED)


def claim_intent_key(chain_id: int, collateral_manager: str, onchain_id: int, attempt: int = 1) -> str:
    """The relayer's ``claimCollateral`` of a loan, one intent per attempt (the first's key has no number); the keeper
    reads them to leave a loan the relayer is claiming to it. A loan is named by its CollateralManager (the intent's
    ``to``, checksummed) and its id: a later deployment's loan of the same id is another loan."""
    manager = to_checksum_address(collateral_manager)
    return f"claim-collateral:{chain_id}:{manager}:{onchain_id}" + ("" if attempt == 1 else f":{attempt}")


async def claim_collateral(chain: ChainRuntime, onchain_id: int, within: float) -> str | None:
    """Relay ``claimCollateral`` for a closed loan whose collateral the token refused to push to the borrower (it
    pays the borrower, whoever sends it); its transaction hash, or None when the claim would fail now (the token
    still refuses the borrower: nothing is sent, and a later call may claim). Never raises for the claim itself:
    the repayment that closed the loan stands either way."""
    manager: Any = chain.w3.eth.contract(
        address=chain.record.address("CollateralManager"), abi=load_artifact("CollateralManager").abi
    )
    try:  # simulated first, so that an intent exists only for a claim that passes (a refused one is final)
        await manager.functions.claimCollateral(onchain_id).call({"from": chain.relayer})
    except (Web3Exception, ValueError) as err:
        log.warning("claimCollateral of loan %s on %s would fail now: %s", onchain_id, chain.name, err)
        return None
    call = Call.function(manager, "claimCollateral", onchain_id)
    for attempt in range(await _claim_from(chain, manager.address, onchain_id), MAX_CLAIM_ATTEMPTS + 1):
        # one intent per attempt: a claim that passed its simulation and then reverted (the token refused again
        # before it was mined) or was refused by the node stays so under its key, and a later call, once the claim
        # would pass, sends the next attempt (under one fixed key it answered the first attempt's failure for good)
        intent = claim_intent_key(chain.chain_id, manager.address, onchain_id, attempt)
        try:
            submission = await chain.transactions.submit(intent, call)
            if submission.status in CLAIM_FAILED:
                continue
            return (await chain.transactions.wait(intent, within=within)).tx_hash
        except ConfirmationTimeout:
            return submission.tx_hash
        except ChainError as err:
            log.warning("claimCollateral of loan %s on %s failed: %s", onchain_id, chain.name, err)
            return None
    log.error("claimCollateral of loan %s on %s: its attempts up to %s failed, none sent again", onchain_id,
              chain.name, MAX_CLAIM_ATTEMPTS)  # fmt: skip
    return None


async def _claim_from(chain: ChainRuntime, manager: str, onchain_id: int) -> int:
    """The number of the relayer's claim attempt to resume or send first: the first stored that did not fail, else
    the one after the last stored. Every attempt stored is read: a missing number is no end (0037 rekeyed each
    attempt by the CollateralManager it was sent to, whose attempts of a loan can then start past 1)."""
    stored = await chain.transactions.store.attempts(claim_intent_key(chain.chain_id, manager, onchain_id))
    taken = [number for number, intent in stored if intent.status not in CLAIM_FAILED]
    return taken[0] if taken else (stored[-1][0] + 1 if stored else 1)


async def repayment_under_way(chain: ChainRuntime, onchain_id: int) -> bool:
    """Whether the relayer has a repayment of loan ``onchain_id`` of the chain's CreditAggregator still on its way: an
    open ``repay:<chain id>:`` intent (not yet confirmed, reverted, failed or dropped) to that contract whose calldata
    repays that loan. Read under the loan's claim, before a new repayment is checked and sent: one answered
    ``submitted`` gave the claim up with its transaction in flight, and the next, checked against the loan as it was
    before that one is mined (a second ``"max"``), was sent to revert at the relayer's cost. Only the relayer's own
    intents count: one an earlier relayer key left open (the key rotated) is followed by no transaction manager, and
    would hold the loan's repayments up for good."""
    aggregator, relayer = chain.aggregator().address.lower(), chain.relayer.lower()
    for intent in await chain.transactions.store.open_keyed(f"repay:{chain.chain_id}:"):
        ours = intent.sender.lower() == relayer and (intent.to_address or "").lower() == aggregator
        if ours and repaid_loan(intent.data) == onchain_id:
            return True
    return False


@cache
def _aggregator_abi() -> Any:
    return Web3().eth.contract(abi=load_artifact("CreditAggregator").abi)


def repaid_loan(data: str) -> int | None:
    """The loan id a ``repayWithPermit`` calldata (hex) repays (its ``Repayment``'s ``loanId``); None for calldata
    of anything else."""
    try:
        function, arguments = _aggregator_abi().decode_function_input(data)
    except (ValueError, DecodingError):
        return None
    return int(arguments["repayment"]["loanId"]) if function.fn_name == "repayWithPermit" else None


async def amount_owed(chain: ChainRuntime, onchain_id: int) -> int:
    """What loan ``onchain_id`` owes now on ``chain``, principal and interest (``amountOwed`` at the latest block)."""
    try:
        principal, interest = await chain.aggregator().functions.amountOwed(onchain_id).call()
    except (Web3Exception, ValueError, OSError, TimeoutError) as err:
        raise ChainReadFailed(f"{chain.name}: reading loan {onchain_id} failed: {err}") from err
    return int(principal) + int(interest)


async def owed_at(chain: ChainRuntime, onchain_id: int, moment: int) -> int:
    """What loan ``onchain_id`` will owe at unix time ``moment`` if nothing is paid before: ``getLoan``'s principal and
    interest accrued as the contract accrues it (simple, per second, rounded up), so that a ``"max"`` repayment's
    permit or allowance is known to cover whatever the contract pulls until the repayment's deadline."""
    try:
        loan = await chain.aggregator().functions.getLoan(onchain_id).call()
    except (Web3Exception, ValueError, OSError, TimeoutError) as err:
        raise ChainReadFailed(f"{chain.name}: reading loan {onchain_id} failed: {err}") from err
    rate_bps, last_accrual, status, outstanding, accrued = (int(loan[i]) for i in (3, 5, 6, 7, 8))
    running = single_payment_interest(outstanding, rate_bps, max(0, moment - last_accrual))
    return outstanding + accrued + (running if status == ONCHAIN_ACTIVE else 0)


def _what(repayment: Repayment, needed: int) -> str:
    if repayment.amount == REPAY_ALL:
        return f"what the loan will owe by the repayment's deadline ({needed}): cover it, or sign a nearer deadline"
    return f"the amount ({needed})"


async def _is_contract(chain: ChainRuntime, address: str) -> bool:
    return len(await chain.w3.eth.get_code(to_checksum_address(address))) > 0


def _base_units(raw: str, asset: Asset | None) -> int:
    """A decimal amount in the asset's units to base units."""
    if asset is None:
        raise InvalidRepayment("amount", 'the loan\'s asset is not one the platform lists: repay "max"')
    try:
        return asset.to_base_units(parse_amount(raw, "amount"), "amount")
    except InvalidCreditRequest as err:
        raise InvalidRepayment(err.field, err.message) from None
