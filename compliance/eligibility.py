"""The borrower's verified identity against the account it borrows on, checked by the platform at quote and at
accept whatever the KYC provider checked: the age of majority of the account's jurisdiction (the one whose rules the
loan is made under), and the identity's country of residence — not a prohibited jurisdiction, and the account's.

Residence and account agree when the codes are the same, or when the account's is a whole country and the residence
one of its subdivisions (a "GB" account, a resident of "GB-LND"): the account's rules then cover where the borrower
lives. A residence less precise than the account (a "US" resident on a "US-FL" account) or another subdivision
("US-NY" on "US-FL") disagrees: the state whose usury caps and age of majority the loan is made under would not be
the one the provider verified. Pure."""

from __future__ import annotations

from datetime import date

from compliance.jurisdiction import JurisdictionRules, Reason, covers

UNDER_AGE = "kyc.under-age"
PROHIBITED = "jurisdiction.prohibited"
RESIDENCE_MISMATCH = "jurisdiction.residence-mismatch"


def normalize_code(code: str) -> str:
    """An ISO 3166 code as the rules write it: no surrounding blanks, upper case ("us-ms " → "US-MS")."""
    return code.strip().upper()


def age_on(born: date, day: date) -> int:
    """Whole years from ``born`` to ``day`` (a birthday on 29 February is reached on 1 March in other years)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def check_age(rules: JurisdictionRules, jurisdiction: str, date_of_birth: date | None, today: date) -> list[Reason]:
    """``kyc.under-age`` when the borrower born on ``date_of_birth`` is under the age of majority of the account's
    ``jurisdiction`` on ``today`` (nothing to check without a date of birth: no identity, so no approved KYC)."""
    if date_of_birth is None:
        return []
    code = normalize_code(jurisdiction)
    majority = rules.age_of_majority(code)
    if age_on(date_of_birth, today) >= majority:
        return []
    return [Reason(UNDER_AGE, f"the borrower is under the age of majority in {code} ({majority})")]


def residence_agrees(jurisdiction: str, residence: str) -> bool:
    """Whether an identity resident in ``residence`` may borrow on an account of ``jurisdiction`` (the module's
    docstring says when): the account's code covers the residence (``compliance.jurisdiction.covers``)."""
    return covers(jurisdiction, residence)


def check_residence(rules: JurisdictionRules, jurisdiction: str, residence: str | None) -> list[Reason]:
    """Why the identity's country of ``residence`` may not borrow on an account of ``jurisdiction``: a prohibited
    jurisdiction (its code or its country's listed), or not the account's (nothing to check without an identity)."""
    if residence is None:
        return []
    lives, account = normalize_code(residence), normalize_code(jurisdiction)
    reasons = [
        Reason(PROHIBITED, f"the identity's country of residence {blocked} is comprehensively sanctioned", citation)
        for blocked in dict.fromkeys((lives, lives.split("-", 1)[0]))
        if (citation := rules.prohibited.get(blocked)) is not None
    ][:1]
    if not residence_agrees(account, lives):
        reasons.append(
            Reason(
                RESIDENCE_MISMATCH,
                f"the identity's country of residence {lives or '(none)'} is not the account's jurisdiction {account}: "
                "verify an identity resident there, or ask for an account in your jurisdiction",
            )
        )
    return reasons
