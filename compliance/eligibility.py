"""The borrower's verified identity against the account it borrows on, checked by the platform at quote and at
accept whatever the KYC provider checked: the age of majority of the account's jurisdiction (the one whose rules the
loan is made under). Pure."""

from __future__ import annotations

from datetime import date

from compliance.jurisdiction import JurisdictionRules, Reason

UNDER_AGE = "kyc.under-age"


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
