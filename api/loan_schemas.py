"""The loan schemas of the HTTP API (``api.schemas`` holds the rest): a loan with its entries and live figures, a
repayment and its answer, an admin's settlement of an unfunded loan. Amounts are decimal strings in the asset's
units with their exact base units, timestamps RFC 3339 UTC."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.input_types import JsonInteger, Uint256Text
from api.schemas import SIGNATURE_MAX_LENGTH, SIGNATURE_MIN_LENGTH, SIGNATURE_PATTERN, InstallmentOut, PermitIn


class AmountOut(BaseModel):
    """An amount of a token: whole units as a decimal string when the asset is ours (``amount``), always the exact
    base units (``base_units``)."""

    asset: str = Field(description="symbol, or the token address for a token the platform does not list")
    amount: str | None
    base_units: str


class ChainRefOut(BaseModel):
    """Where a ledger entry's chain fact is: block and transaction."""

    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int


class RepaymentOut(BaseModel):
    payer: str
    interest_paid: str
    principal_paid: str
    outstanding_principal: str
    payment_ref: str | None = Field(description="the operator's reference of an off-chain repayment")
    chain: ChainRefOut


class CollateralMovementOut(BaseModel):
    direction: str = Field(description="added | removed")
    account: str
    amount: AmountOut
    chain: ChainRefOut


class LiquidationOut(BaseModel):
    liquidator: str
    debt_repaid: str
    collateral_seized: AmountOut
    chain: ChainRefOut


class LiveFiguresOut(BaseModel):
    """Read from the chain when asked (not stored): what is owed now and the position's health."""

    block_number: int
    principal_owed: str
    interest_owed: str
    total_owed: str
    health_factor: str | None = Field(
        description="collateral value × liquidation threshold ÷ debt; null: no debt, or the price feeds do not price "
        "the position now (health_factor_error says why)"
    )
    health_factor_error: str | None = Field(
        default=None,
        description="why health_factor is null while something is owed: the CollateralManager's price feeds do not "
        "price the position now (a stale price, the sequencer down); nothing can be liquidated until they do",
    )
    liquidation_threshold_bps: int | None = Field(
        default=None,
        description="the collateral asset's liquidation threshold on the loan's chain (basis points): the health "
        "factor is the collateral's value × this ÷ the debt",
    )
    liquidation_price_usd: str | None = Field(
        default=None,
        description="the collateral's USD price (the CollateralManager's feeds, to the cent, rounded up) at which the "
        "health factor falls to 1 with the debt as it is now — interest accrued later raises it; null without debt or "
        "while the position is not priced",
    )
    liquidatable: bool = Field(
        default=False,
        description="whether anyone may liquidate the position now (CollateralManager.liquidate): in default — in "
        "full, whatever health_factor says — or below a health factor of 1; false while its liquidation is held or "
        "paused, or its price feeds do not price it (health_factor_error)",
    )
    maturity: str | None = Field(default=None, description="when the loan falls due (RFC 3339, the contract's)")
    days_past_due: int = Field(
        default=0,
        description="days begun since maturity while anything is owed, by the chain's clock at block_number; for an "
        "amortizing loan at least the days since its oldest installment not covered in full by all repaid so far",
    )
    delinquency_bucket: str = Field(default="current", description="current | 1-29 | 30-59 | 60-89 | 90+")


class LoanOut(BaseModel):
    id: str
    quote_id: str | None = Field(description="null for a loan opened on-chain from an offer we never made")
    status: str = Field(description="active | repaid | defaulted | liquidated | written_off | cancelled")
    flags: list[str] = Field(
        default_factory=list,
        description="opened_outside_accept: opened on-chain without an accept of ours (never funded by a lender "
        "through us); no_quote: from an offer that is not one of our quotes; unfunded: funded off-chain, and its "
        "lender refused or reported failed the funding, so the borrower was never paid out: not serviced (no days "
        "past due, no default, no live figures) until it is cancelled (its collateral released to the borrower) or an "
        "admin settles it as funded; funding_pending: funded off-chain, and its lender has not answered the funding "
        "instruction yet (not delivered: sent again until it is, within the funding window), so the borrower may not "
        "have been paid out: not serviced either (no days past due, no default, no live figures, its liquidation "
        "held) until the lender funds it, or it becomes unfunded past the window",
    )
    provider_id: str | None
    chain: str
    chain_id: int
    contract: str
    onchain_loan_id: str | None
    offer_digest: str | None = None
    transaction_hash: str | None
    block_number: int | None
    block_hash: str | None = None
    borrower_address: str | None = None
    funder: str | None = Field(default=None, description="the pool's address, or the provider id (bytes32) off-chain")
    asset: str
    principal: str
    rate_bps: int | None = None
    term_seconds: int | None = None
    origination_fee: str | None = None
    outstanding_principal: str | None = None
    interest_paid: str | None = None
    principal_paid: str | None = None
    collateral: AmountOut | None = None
    created_at: str
    schedule: list[InstallmentOut] | None = Field(
        default=None,
        description="in a single loan's view only: the repayment schedule disclosed with its quote (empty for a loan "
        "without one of our quotes); days past due count from the oldest installment whose principal is unpaid",
    )
    repayments: list[RepaymentOut] | None = Field(default=None, description="in a single loan's view only")
    collateral_movements: list[CollateralMovementOut] | None = None
    liquidations: list[LiquidationOut] | None = None
    live: LiveFiguresOut | None = Field(default=None, description="while active or in default, from the chain")
    live_error: str | None = Field(default=None, description="why live figures are missing (a chain not answering)")
    days_past_due: int | None = Field(
        default=None,
        description="while active or in default: days begun since maturity while anything is owed, by the chain's "
        "clock when read (an amortizing loan: at least the days since its oldest installment not covered in full "
        "by all repaid so far); null when closed or the chain did not answer",
    )
    delinquency_bucket: str | None = Field(default=None, description="current | 1-29 | 30-59 | 60-89 | 90+")


class RepaymentIn(BaseModel):
    """A relayed repayment of a pool loan (the borrower pays no gas): the borrower's EIP-712 ``Repayment`` signature
    under the loan's CreditAggregator domain (chain id, ``contract``; name ``creditmesh``, version ``1``) over
    ``Repayment(uint256 loanId,uint256 amount,uint256 nonce,uint64 deadline)`` with ``loanId`` the loan's
    ``onchain_loan_id``, ``amount`` in base units (2^256-1 for ``"max"``), and an EIP-2612 permit of the debt asset
    to that contract for the allowance."""

    model_config = ConfigDict(extra="forbid")
    amount: str = Field(
        examples=["100.00", "max"],
        pattern=r"^(max|[0-9]{1,30}(\.[0-9]{1,30})?)$",
        description='decimal string in the loan asset\'s units (at most its decimals), at most what is owed now; "max" '
        "pays everything owed when the transaction is mined and closes the loan",
    )
    nonce: Uint256Text = Field(
        pattern=r"^[0-9]{1,78}$",
        description="the signed Repayment's nonce: single-use per borrower at the CreditAggregator "
        "(nonceUsed(borrower, nonce)); any unused value",
    )
    # at most 2^53: a bound a JSON number keeps exactly (2^64 read as a double let a larger deadline through the
    # document and into a 422); still a uint64 on-chain
    deadline: JsonInteger = Field(ge=0, le=2**53, description="the signed Repayment's deadline, unix seconds")
    signature: str = Field(
        pattern=SIGNATURE_PATTERN,
        min_length=SIGNATURE_MIN_LENGTH,
        max_length=SIGNATURE_MAX_LENGTH,
        description="0x-hex EIP-712 signature of the Repayment: 65 bytes from a wallet's key, or a contract "
        "wallet's (ERC-1271)",
    )
    permit: PermitIn | None = Field(
        default=None,
        description="EIP-2612 permit of the debt asset to the loan's CreditAggregator, covering the amount (for "
        '"max": what the loan will owe at the deadline, interest accrued per second and rounded up); without one, '
        "the allowance already in place must cover it",
    )


class RepaymentResultOut(BaseModel):
    """The relayed repayment and the loan after it (with every repayment's split and the amount owed now)."""

    loan_id: str
    status: str = Field(description="confirmed (mined and recorded) | submitted (sent, not yet mined)")
    transaction_hash: str | None
    block_number: int | None = None
    interest_paid: str | None = Field(default=None, description="applied first")
    principal_paid: str | None = None
    outstanding_principal: str | None = None
    closed: bool = Field(default=False, description="paid in full: LoanClosed, the collateral released")
    collateral_claim_transaction: str | None = Field(
        default=None, description="claimCollateral relayed when the token refused to push the collateral back"
    )
    loan: LoanOut


# An ISO 3166 code, a country ("GB") or a subdivision ("US-NY"), any case: stored upper case


class FundingSettlementIn(BaseModel):
    """An admin's settlement of an unfunded loan with its lender. ``funded`` decides whether the loan is cancelled
    on-chain: a JSON boolean only (``"false"`` or ``0`` is refused, never read as one), and no field beside the two."""

    model_config = ConfigDict(extra="forbid")

    funded: StrictBool = Field(
        description="true: the lender did pay the borrower out (the loan is serviced from now on); false: it did not "
        "(the loan is cancelled on-chain and its collateral released to the borrower)"
    )
    note: str = Field(
        min_length=1,
        max_length=2000,
        pattern=r"[^\s\x1c-\x1f]",
        description="how it was settled with the lender (who confirmed what, when): kept in the audit log",
    )


class FundingSettlementOut(BaseModel):
    outcome: str = Field(description="funded or not-funded")
    transaction_hash: str | None = Field(
        default=None, description="not-funded: the cancelUnfunded transaction, once mined (null while on its way)"
    )
    confirmed: bool = Field(description="funded: true; not-funded: whether the cancel is mined and recorded")
    loan: LoanOut
