"""Input and output schemas of the HTTP API (separate, per STYLE.md). Amounts are decimal strings in the asset's
units, terms in days, timestamps RFC 3339 UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from aggregator.assets import AMOUNT_PATTERN
from aggregator.quoting import MAX_TERM_DAYS, MIN_TERM_DAYS
from aggregator.sanctions_reviews import ScreeningState
from api.input_types import JsonInteger, Rfc3339Date, Uint256Text
from api.offer_schemas import AcceptanceTypedDataOut, OfferOut
from compliance.mla import normalize_name
from risk.profile import GENERAL_PURPOSE, CreditProfile, RequestPurpose

ZERO_ADDRESS = "0x" + "0" * 40
# An EOA's signature is 65 bytes (r, s, v); a contract wallet's (ERC-1271) may be longer; at most 4 KiB here.
SIGNATURE_PATTERN = r"^0x([0-9a-fA-F]{2})+$"
EOA_SIGNATURE_LENGTH = 2 + 2 * 65  # characters of a 0x-hex 65-byte signature
SIGNATURE_MIN_LENGTH, SIGNATURE_MAX_LENGTH = EOA_SIGNATURE_LENGTH, 2 + 2 * 4096


class CollateralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset: str = Field(examples=["WETH"])
    amount: str = Field(
        examples=["1.0"],
        pattern=AMOUNT_PATTERN,
        description="decimal string of ASCII digits in the collateral asset's units, > 0, at most its decimals (more "
        "places only as trailing zeros) and 2^96-1 base units; the running platform's document holds each asset to "
        "its own pattern (oneOf by asset)",
    )


class CreditRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(
        examples=["1500.00"],
        pattern=AMOUNT_PATTERN,
        description="decimal string of ASCII digits in the asset's units, > 0, at most the asset's decimals (more "
        "places only as trailing zeros) and 2^96-1 base units; the running platform's document carries the pattern "
        "of the asset it lends",
    )
    asset: str = Field(examples=["USDC"])
    term_days: JsonInteger = Field(
        examples=[30], ge=MIN_TERM_DAYS, le=MAX_TERM_DAYS, description=f"{MIN_TERM_DAYS} to {MAX_TERM_DAYS}"
    )
    purpose: RequestPurpose = Field(default=GENERAL_PURPOSE, examples=["used_car"])
    collateral: CollateralIn
    preferred_chains: list[str] = Field(default_factory=list, examples=[["polygon-local"]])
    credit_profile: CreditProfile | None = Field(
        default=None,
        description="scores this request and replaces the borrower's stored credit profile when the request is "
        "written; a refused request (422, 429, 403) leaves the stored profile as it was",
    )


class ProviderOutcomeOut(BaseModel):
    provider_id: str
    outcome: str = Field(
        description="offered, declined, ineligible, failed, timeout, or dropped (none of its offers kept: each "
        "dropped by disclosure or compliance, or not its own offer for the request)"
    )
    detail: str = Field(description="why; for offered, how many offers were kept and each offer dropped with why")
    latency_ms: int


class DisclosureOut(BaseModel):
    """The Truth in Lending disclosure. ``terms_hash`` = keccak256 of the RFC 8785 canonical JSON of ``document``,
    the ``termsHash`` the signed offer and the on-chain loan carry."""

    apr: str = Field(description="annual percentage rate, percent (Regulation Z Appendix J)")
    finance_charge: str
    amount_financed: str
    total_of_payments: str
    origination_fee: str
    payments: list[dict[str, Any]]
    terms_hash: str
    document: dict[str, Any]


class InstallmentOut(BaseModel):
    """One scheduled payment as disclosed (Regulation Z) and covered by the offer's ``termsHash``; amounts in the
    asset's units."""

    number: int
    due: str = Field(description="date, ISO 8601")
    amount: str = Field(description="principal + interest")
    principal: str
    interest: str


class QuoteOut(BaseModel):
    id: str
    rank: int
    provider_id: str
    kind: str
    chain: str
    chain_id: int
    contract: str
    asset: str
    principal: str
    rate_bps: int
    term_days: int
    collateral: CollateralIn
    repayment: str = Field(
        default="single-payment",
        description="single-payment, equal-installments/<frequency> or installments-with-balloon/<frequency>",
    )
    schedule: list[InstallmentOut] = Field(
        default_factory=list, description="the payments as disclosed, in due order (one for a single payment)"
    )
    disclosure: DisclosureOut
    expires_at: str
    status: str = Field(
        description="offered, accepting, accepted, superseded (another quote of the request won) or withdrawn (its "
        "lender withdrew the offer: it cannot be accepted)"
    )
    offer: OfferOut = Field(description="the signed EIP-712 offer; each uint256 a decimal string")
    offer_signature: str
    acceptance_typed_data: AcceptanceTypedDataOut = Field(
        description="the EIP-712 document the borrower's wallet signs, as it stands (each uint256 a decimal string)"
    )


class CreditRequestOut(BaseModel):
    id: str
    status: str = Field(description="quoted, accepting, accepted, declined or no_offers")
    loan_id: str | None = Field(default=None, description="the loan this request became, once accepted")
    risk: dict[str, Any] = Field(
        description="the risk decision as the borrower is told it: approved, score, grade, limits, reasons (the "
        "adverse-action reason codes); when approved is false (declined, refused for the exposure, no_offers) also "
        "adverse_action_notice (AdverseActionNoticeOut)"
    )
    quotes: list[QuoteOut]
    provider_outcomes: list[ProviderOutcomeOut]


class PermitIn(BaseModel):
    """An EIP-2612 permit, owner the borrower, spender the CreditAggregator: of the collateral token for an accept
    (the quote's CreditAggregator), of the debt asset for a repayment (the loan's)."""

    model_config = ConfigDict(extra="forbid")
    value: Uint256Text = Field(pattern=r"^[0-9]{1,78}$", description="allowance in the token's base units")
    deadline: JsonInteger = Field(ge=0, le=2**53, description="unix seconds")
    v: JsonInteger = Field(ge=27, le=28, description="27 or 28")
    r: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    s: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature: str = Field(
        pattern=SIGNATURE_PATTERN,
        min_length=SIGNATURE_MIN_LENGTH,
        max_length=SIGNATURE_MAX_LENGTH,
        description="0x-hex EIP-712 signature of the quote's acceptance_typed_data: 65 bytes from a wallet's key, "
        "or a contract wallet's (ERC-1271) signature",
    )
    permit: PermitIn | None = Field(
        default=None, description="optional EIP-2612 permit for the collateral: relayed with openLoanWithPermit"
    )


JURISDICTION_PATTERN = r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$"


class BorrowerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wallet_address: str = Field(
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="not the zero address",
        json_schema_extra={"pattern": r"^0x(?!0{40})[0-9a-fA-F]{40}$"},  # the document says it; _not_zero checks it
    )
    jurisdiction: str = Field(
        default="US-NY",
        max_length=8,
        pattern=JURISDICTION_PATTERN,
        description='ISO 3166 code, "US-NY" style for states',
    )
    credit_profile: CreditProfile | None = None

    @field_validator("wallet_address")
    @classmethod
    def _not_zero(cls, wallet: str) -> str:
        if wallet.lower() == ZERO_ADDRESS:
            raise ValueError("the zero address is no wallet")
        return wallet


class BorrowerOut(BaseModel):
    id: str
    wallet_address: str
    jurisdiction: str
    api_key: str = Field(description="shown once")
    api_key_id: str = Field(description="the key's id (listing, revoking; the OAuth2 client_id)")


class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    date_of_birth: Rfc3339Date
    country: str = Field(
        max_length=8,
        pattern=JURISDICTION_PATTERN,
        description='residence: an ISO 3166 code, "US-NY" style for US states, as the account\'s jurisdiction is '
        "written (any case; stored upper case): the account's jurisdiction, or a subdivision of an account's "
        'country ("GB-LND" on a "GB" account), else 422 before the provider is asked. Screened at every credit '
        "request and accept: a prohibited jurisdiction, or one that is not the account's, is refused (403 "
        "jurisdiction.prohibited, jurisdiction.residence-mismatch)",
    )
    ssn_or_dod_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{9,10}$",
        description="for the Military Lending Act status check; stored encrypted, never returned",
    )

    @field_validator("country")
    @classmethod
    def _upper_case(cls, country: str) -> str:
        return country.upper()

    @field_validator("first_name", "last_name")
    @classmethod
    def _normalized(cls, name: str) -> str:
        """Kept, screened and asked about (the MLA status) as ``compliance.mla.normalize_name`` writes it: NFKC, no
        blanks around it ("Hopper " is "Hopper"); a name of blanks only stays as given (the provider refuses it)."""
        return normalize_name(name) or name


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_type: str = Field(
        examples=["passport"], description="passport, id-card, driving-licence, residence-permit"
    )
    number: str = Field(max_length=64)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    date_of_birth: Rfc3339Date
    issuing_country: str = Field(max_length=8)
    expires_on: Rfc3339Date
    proves_address: StrictBool = Field(
        default=False, deprecated="ignored: the KYC provider verifies the address itself"
    )
    liveness_passed: StrictBool = Field(default=False, deprecated="ignored: the KYC provider runs the liveness check")
    source_of_funds: StrictBool = Field(
        default=False, deprecated="ignored: the KYC provider verifies the source of funds"
    )


# Claims a borrower could once make about their own document; accepted (v1 is additive only) and never used: the tier
# is what the KYC provider's signed verdict says.
IGNORED_DOCUMENT_CLAIMS = {"proves_address", "liveness_passed", "source_of_funds"}


class KycIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    identity: IdentityIn
    document: DocumentIn


class KycOut(BaseModel):
    applicant_id: str
    state: str
    tier: str
    reasons: list[dict[str, str]]


class ReviewRefOut(BaseModel):
    id: str
    state: str
    opened_at: datetime


class SanctionsScreeningOut(BaseModel):
    """The borrower's own view of their sanctions screening: never the listed party's name."""

    status: ScreeningState = Field(
        description="not-yet-screened (no credit request has screened the borrower's identity on file yet: their "
        "first, or the first since they verified another name or date of birth), clear, held-for-review "
        "(a possible name match or a name not screened in Latin script, being reviewed) or blocked (the wallet is on "
        "the current OFAC address list, or the name matches a listed party)"
    )
    reason: str | None
    reviews: list[ReviewRefOut]


class BorrowerMeOut(BaseModel):
    id: str
    wallet_address: str
    jurisdiction: str
    kyc: KycOut | None
    credit_profile: CreditProfile
    sanctions_screening: SanctionsScreeningOut | None = None


class SanctionsReviewOut(BaseModel):
    id: str
    borrower_id: str
    kind: str = Field(
        description="sdn-entry: a name hit on an SDN entry; name-not-screened: a name with letters outside the Latin "
        "alphabet, which could not be screened, held for a person (no entry, listed name, program or score)"
    )
    ent_num: int | None = Field(description="the SDN entry; null for a name-not-screened review")
    primary_name: str | None
    listed_name: str | None
    program: str | None
    score: float | None = Field(description="the name screen's score (0–100) when the review was opened")
    outcome: str = Field(description="possible-match (held), match (blocked) or not-screened (held)")
    state: str = Field(description="pending, cleared or confirmed")
    list_version: str
    entry_fingerprint: str = Field(
        description="the SDN entry's fingerprint (its names, type and program); for a name-not-screened review, the "
        "keyed fingerprint of the identity reviewed (name and date of birth): a verdict holds for it only"
    )
    decision_id: str = Field(description="the screening decision record that opened the review")
    created_at: datetime
    reviewer: str | None = Field(description="who gave the verdict: the role and id of the API key it came with")
    note: str | None
    reviewed_at: datetime | None
    review_decision_id: str | None = Field(description="the decision record of the verdict")


class ListedNameOut(BaseModel):
    name: str
    alias_of: str | None
    sdn_type: str
    program: str


class SanctionsReviewEvidenceOut(BaseModel):
    review: SanctionsReviewOut
    query: str | None = Field(description="the borrower's name as screened now; null once the identity is erased")
    entry: list[ListedNameOut] = Field(description="the SDN entry's names and aliases on the current list")
    current_score: float | None
    why: str | None = Field(description="which parts of the names paired, and how well")
    near_exact: bool | None
    entry_changed: bool = Field(
        description="the entry on the current list, or the borrower's identity (name and date of birth) on file, "
        "differs from (or no longer is) the one reviewed: a verdict would not apply to it"
    )


class SanctionsVerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        min_length=1,
        max_length=2000,
        pattern=r"[^\s\x1c-\x1f]",
        description="what was compared (date of birth, nationality…)",
    )


class ChainOut(BaseModel):
    name: str
    chain_id: int
    contracts: dict[str, str] = Field(description="deployed contract addresses by name (CreditAggregator, …)")
    eip712_domain: dict[str, Any] = Field(description="the domain of offers and acceptances (the CreditAggregator)")
    risk_attestation_domain: dict[str, Any] = Field(description="the domain of risk attestations (the oracle)")
    relayer: str = Field(description="the account that relays openLoan (RELAYER_ROLE)")


class AssetOut(BaseModel):
    symbol: str
    decimals: int
    addresses: dict[str, str] = Field(description="token address by chain name")
    permit_domains: dict[str, dict[str, Any] | None] = Field(
        description="by chain name, the token's EIP-712 domain (name, version, chainId, verifyingContract) under "
        "which an EIP-2612 permit of it is signed, as the token answers eip712Domain() (or, for an older token, the "
        "name and version whose hash is its DOMAIN_SEPARATOR()), always one that hashes to its DOMAIN_SEPARATOR(); "
        "null when the token has no permit, its domain is not those four fields (a salt, no version: approve it "
        "instead) or its chain did not answer"
    )


class PlatformOut(BaseModel):
    """What a client needs to verify a quote by itself."""

    chains: list[ChainOut]
    quote_signer: str = Field(description="signs every offer (EIP-712 Offer on the chain's CreditAggregator)")
    risk_signer: str = Field(description="signs risk attestations (EIP-712 RiskAttestation on the oracle)")
    assets: list[AssetOut]
