"""Adverse-action reason codes (ECOA / Regulation B, 12 CFR 1002.9): the principal reasons behind a decision.

Score reasons come from the factors on which the applicant lost the most points — a characteristic against its
best bin, an on-chain reason by what it cost — ranked together; rule reasons come from the policy's decline rules.
A notice carries at most ``MAX_REASONS`` (Regulation B's commentary treats more than four as unhelpful to the
applicant).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REASONS = 4


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


# One reason per scorecard characteristic, worded as the factor that held the score back.
CHARACTERISTIC_REASONS: dict[str, Reason] = {
    "checking_account": Reason("R01", "Balance or status of checking account"),
    "duration_months": Reason("R02", "Length of the term requested"),
    "credit_history": Reason("R03", "Payment record on past or existing credit"),
    "purpose": Reason("R04", "Purpose of the credit requested"),
    "credit_amount": Reason("R05", "Size of the amount requested"),
    "savings": Reason("R06", "Level of savings"),
    "employment": Reason("R07", "Length of employment"),
    "installment_rate": Reason("R08", "Installment too high relative to income"),
    "property": Reason("R09", "Limited assets"),
    "other_installment_plans": Reason("R10", "Other installment credit obligations"),
    "housing": Reason("R11", "Residence status"),
}

INCOMPLETE_APPLICATION = Reason("R20", "Incomplete application: information needed to assess credit was not provided")
#: not a principal reason (Regulation B, comment 9(b)(2)-1): listed only when no factor cost the score a point
SCORE_TOO_LOW = Reason("R21", "Credit score below the minimum for this credit")
PRIOR_DEFAULT = Reason("R30", "Default on a previous loan with us")
COLLATERAL_HEALTH = Reason("R31", "Collateral on an existing loan with us is below the required level")
#: an open loan's health factor at or above 1.0 but under the watch level (1.2): its collateral is not below the
#: required level, only close to it (R31's wording would be untrue)
COLLATERAL_NEAR_LIMIT = Reason("R33", "Collateral on an existing loan with us is close to the required level")
LIMITED_WALLET_HISTORY = Reason("R32", "Limited history of the wallet used")
AMOUNT_OVER_LIMIT = Reason("R40", "Amount requested exceeds the limit for the credit grade")
INSUFFICIENT_COLLATERAL = Reason("R41", "Collateral insufficient for the amount requested")
TOO_MANY_REQUESTS = Reason("R50", "Too many credit applications in a short period")
WALLET_CLAIMED = Reason("R51", "Unable to verify ownership of the wallet")
#: a request refused for the borrower's exposure (``aggregator.quote_exposure``): what it already owes with the amount
#: asked for passes a limit — risk's ``max_amount`` or the KYC tier's ceiling — whatever the score
EXCESSIVE_OBLIGATIONS = Reason("R42", "Existing credit obligations too high for the amount requested")
#: an open loan in an asset the platform does not list: what the borrower owes cannot be counted
UNVALUED_OBLIGATIONS = Reason("R43", "Unable to value existing credit obligations")
# A request risk approved that ends with no offer (``aggregator.quote_adverse``): what held back each lender's offer,
# each reason's text followed by the first case's specifics.
#: every offer of a lender above a usury cap of the borrower's jurisdiction, or the MLA's 36% MAPR
RATE_OVER_LEGAL_LIMIT = Reason("R44", "Rates offered exceed the legal limit on rates for this credit")
#: the collateral's terms on the chains asked (its LTV, supply cap, price) do not carry the amount
COLLATERAL_NOT_ACCEPTED = Reason("R45", "Collateral not accepted for the amount requested on the networks requested")
#: a lender declined, did not answer in time, failed, or made no offer the platform could quote
NO_LENDER_OFFER = Reason("R46", "No lender offered credit on the terms requested")
#: a product the screening denied (its KYC tier, the jurisdiction): its lenders were not asked
PRODUCT_NOT_AVAILABLE = Reason("R47", "Not eligible for this type of credit")


def unknown_reason(names: tuple[str, ...]) -> Reason:
    """The incomplete-application reason naming what was missing, in the profile's own words."""
    return Reason(INCOMPLETE_APPLICATION.code, f"{INCOMPLETE_APPLICATION.text} ({', '.join(names)})")
