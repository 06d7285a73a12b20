"""The aggregator's exceptions, one root; the API maps each to a problem+json status in one place."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class AggregatorError(Exception):
    """Root of the aggregator's errors."""


class InvalidCreditRequest(AggregatorError):
    """The request is malformed or impossible; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class AssetListingConflict(AggregatorError):
    """The chains' token listings cannot make one asset (a symbol with different decimals on two chains): the
    platform refuses to start on them."""


class QuoteNotFound(AggregatorError):
    def __init__(self, quote_id: str) -> None:
        super().__init__(f"no quote {quote_id}")


class QuoteExpired(AggregatorError):
    def __init__(self, quote_id: str, why: str = "") -> None:
        super().__init__(f"quote {quote_id} has expired{f' ({why})' if why else ''}: request new quotes")


class QuoteNotAcceptable(AggregatorError):
    """The quote was already accepted, is being accepted, or was withdrawn."""

    def __init__(self, quote_id: str, status: str) -> None:
        super().__init__(f"quote {quote_id} is {status} and cannot be accepted")
        self.status = status


class InvalidAcceptance(AggregatorError):
    """The acceptance signature does not verify for the quote's borrower."""


class InvalidPermit(InvalidAcceptance):
    """The collateral permit would not pass the token; ``field`` names what is wrong (``permit.value``,
    ``permit.deadline``, ``permit.signature``, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ChainRejected(AggregatorError):
    """The chain refused the transaction (simulation reverted); nothing was written on-chain."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the chain refused the loan: {reason}")
        self.reason = reason


class ProviderRefused(AggregatorError):
    """The lender declined to fund an accepted offer."""


class FundingFailed(ProviderRefused):
    """The accept's loan is open on-chain, and its lender did not fund it: it refused the funding instruction, or
    reported that the funding failed (``offer.funding_failed``). The accept is recorded ``fund-refused`` for an
    operator; ``reason`` is what the borrower is told (the lender's own words are kept for the operator)."""

    def __init__(self, quote_id: str, loan_id: str, reason: str) -> None:
        super().__init__(
            f"the accept of quote {quote_id} failed: {reason}. The loan {loan_id} is open on-chain, your collateral "
            "locked under it, and unfunded: it is cancelled, your collateral released, once the lender confirms it did "
            "not fund it, or an admin settles it with the lender"
        )
        self.quote_id, self.loan_id, self.reason = quote_id, loan_id, reason


class LoanNotFound(AggregatorError):
    def __init__(self, loan_id: str) -> None:
        super().__init__(f"no loan {loan_id}")


class LoanRecordUnreadable(AggregatorError):
    """The loan's ledger row holds a value its column cannot read back (written around the application): an
    operator corrects the row. ``borrower_id`` and ``provider_id`` are the row's (they read), so that a reader outside
    the loan's scope is told it is not found, as for any other loan."""

    def __init__(self, loan_id: str, reason: str, borrower_id: str | None, provider_id: str | None) -> None:
        # the reason quotes the stored value: logged for the operators (``store.loans``), never in the answer
        super().__init__(f"the record of loan {loan_id} cannot be read; the operators are told")
        self.loan_id, self.reason = loan_id, reason
        self.borrower_id, self.provider_id = borrower_id, provider_id


class ComplianceDenied(AggregatorError):
    """Compliance refused the request or the acceptance; ``reasons`` are (code, message) pairs, recorded.
    ``notice``: the adverse-action notice its answer carries (a credit request the screening allowed no product of:
    ``aggregator.quote_pipeline``); None otherwise."""

    def __init__(self, stage: str, reasons: list[tuple[str, str]], notice: dict[str, Any] | None = None) -> None:
        super().__init__(f"{stage} refused by compliance: " + "; ".join(message for _, message in reasons))
        self.stage, self.reasons, self.notice = stage, reasons, notice


class ReviewNotFound(AggregatorError):
    def __init__(self, review_id: str) -> None:
        super().__init__(f"no sanctions review {review_id}")


class ReviewAlreadyDecided(AggregatorError):
    """A sanctions review is cleared or confirmed once; a second verdict is refused."""

    def __init__(self, review_id: str, state: str) -> None:
        super().__init__(f"sanctions review {review_id} is already {state}")
        self.state = state


class BorrowerNotFound(AggregatorError):
    def __init__(self, borrower_id: str) -> None:
        super().__init__(f"no borrower {borrower_id}")


class BorrowerAlreadyRegistered(AggregatorError):
    """A wallet is registered to one borrower."""

    def __init__(self, wallet_address: str) -> None:
        super().__init__(f"wallet {wallet_address} is already registered")


class QuoteSuperseded(QuoteNotAcceptable):
    """Another quote of the same credit request is accepted or being accepted: one request, one loan."""

    def __init__(self, quote_id: str) -> None:
        AggregatorError.__init__(
            self, f"quote {quote_id} is superseded: another quote of its credit request is accepted or being accepted"
        )
        self.status = "superseded"


class QuoteWithdrawn(QuoteNotAcceptable):
    """The quote's lender withdrew its offer (the Provider Quote Protocol's ``offer.withdrawn``), or was deregistered:
    it cannot be accepted any more."""

    def __init__(self, quote_id: str, provider_id: str) -> None:
        AggregatorError.__init__(
            self,
            f"quote {quote_id} was withdrawn by its lender {provider_id} (the offer withdrawn, or the lender "
            "deregistered): it cannot be accepted; request new quotes",
        )
        self.status = "withdrawn"


class AcceptInProgress(AggregatorError):
    """The quote is being accepted (maybe by another process, maybe its transaction is still on its way)."""

    def __init__(self, quote_id: str, detail: str) -> None:
        super().__init__(f"the accept of quote {quote_id} is in progress: {detail}; GET the quote to follow it")
        self.quote_id = quote_id


class ExposureLimitExceeded(AggregatorError):
    """The borrower's open principal with this loan would pass ``limit`` (named: risk's or the KYC tier's); ``owed``:
    the open principal without it. ``request_id``: the credit request this refused at quote time, recorded declined
    (``aggregator.quote_exposure``); None at accept."""

    def __init__(self, limit: str, ceiling: Decimal, after: Decimal, owed: Decimal) -> None:
        super().__init__(
            f"open principal would be {after} with this loan ({owed} open now), above the {limit} limit of {ceiling}"
        )
        self.limit, self.ceiling, self.after, self.owed = limit, ceiling, after, owed
        self.request_id: str | None = None


class ExposureUnvalued(AggregatorError):
    """The borrower owes on a loan in an asset the platform does not list (a pool registered later, an asset taken
    out of the settings): its open principal cannot be counted, so no credit request nor accept can be checked against
    the limits."""

    def __init__(self, asset: str) -> None:
        super().__init__(
            f"an open loan in {asset} cannot be valued (the platform does not list that asset): no loan can be "
            "quoted or accepted until an operator lists it"
        )
        self.asset = asset
        self.request_id: str | None = None  # as ``ExposureLimitExceeded``'s


class LoanNotRepayable(AggregatorError):
    """The loan takes no repayment through the platform now (repaid, liquidated, funded off-chain, …)."""

    def __init__(self, loan_id: str, reason: str) -> None:
        super().__init__(f"loan {loan_id} cannot be repaid here: {reason}")


class RepaymentInProgress(AggregatorError):
    """Another repayment of the loan is under way (another process taking it, or its transaction sent and not yet
    confirmed): nothing of this one was checked or sent, and the same signed repayment posted again later is (the
    API's 409 ``repayment-in-progress`` with ``Retry-After``, released by the idempotency middleware: not an
    outcome)."""

    def __init__(self, loan_id: str, detail: str) -> None:
        super().__init__(f"another repayment of loan {loan_id} is under way: {detail}")
        self.loan_id = loan_id


class LoanNotUnfunded(AggregatorError):
    """An admin's funding settlement of a loan that is not open and unfunded (``aggregator.funding_settlement``)."""

    def __init__(self, loan_id: str, reason: str) -> None:
        super().__init__(f"loan {loan_id} has no funding to settle: {reason}")


class LoanNotCancellable(AggregatorError):
    """The CreditAggregator refuses ``cancelUnfunded`` of the loan (its simulation reverted, or it was refused)."""

    def __init__(self, loan_ref: int, reason: str) -> None:
        super().__init__(f"the chain refused to cancel loan {loan_ref}: {reason}")
        self.reason = reason


class HoldNotReleased(AggregatorError):
    """A loan settled funded whose liquidation hold was not released within the wait: the settlement stands; asking
    again releases it."""

    def __init__(self, loan_id: str, reason: str) -> None:
        super().__init__(
            f"loan {loan_id} is settled funded, but its liquidation hold is not released yet ({reason}): post the "
            "settlement again to release it"
        )


class OperatorUnavailable(AggregatorError):
    """The operator's account (``CREDITMESH_OPERATOR_KEY``) is not configured for the chain in this process."""


class PaymentNotSent(AggregatorError):
    """A lender's reported payment is kept, but the operator's transaction recording it was not taken for now (the
    node refused it — the operator's account out of gas — or dropped it, or the fee market is above the chain's cap):
    nothing was mined, and the same report sent again is sent under a new attempt (``aggregator.offchain_payments``).
    """


class InvalidRepayment(AggregatorError):
    """A repayment's input is refused before anything is sent; ``field`` names it (amount, signature, permit)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class AmountOverOwed(InvalidRepayment):
    """More than the loan owes now; ``owed`` is the amount owed now (decimal string in the asset's units)."""

    def __init__(self, amount: str, owed: str) -> None:
        super().__init__("amount", f'{amount} is more than the {owed} owed now (repay "max" to pay it all)')
        self.owed = owed


class RepaymentRejected(AggregatorError):
    """The chain refused the repayment (its simulation reverted: a signature, a nonce, an allowance); nothing was
    sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the chain refused the repayment: {reason}")
        self.reason = reason


class PricesUnavailable(AggregatorError):
    """No chain of the request has a usable feed price for its assets now (stale, down, or not answering)."""


class AmbiguousOfferRef(AggregatorError):
    """A lender gave one offer reference to offers of more than one loan: what it reports about the reference cannot
    be told apart (a payment recorded on one of them would pay down another borrower's loan)."""

    def __init__(self, provider_id: str, offer_ref: str) -> None:
        super().__init__(
            f"{provider_id}'s offer reference {offer_ref!r} names more than one loan: offer references must be unique"
        )
