"""The borrower's credit profile (owned by ``risk/``) and its documented mapping to the scorecard's characteristics.

The profile holds what a lender asks; the credit request holds what the borrower wants (amount, term, purpose).
``characteristics(profile, request)`` turns both into the model's inputs. Every profile field is optional: a field
left out is *unknown*, and the scorecard gives an unknown characteristic the points of its worst bin and the policy
declines an application with too many unknowns (see ``risk.scorecard`` and ``risk.policy``). "I have no savings
account" is an answer, not an unknown: it is ``"no_account"``.

Mapping (docs/risk.md has the table):

| profile / request field | characteristic | rule |
| --- | --- | --- |
| ``checking`` | ``checking_account`` | ``"no_account"`` → none; balance < 0 → negative; < 200 → low; ≥ 200 → high |
| request ``term_days`` | ``duration_months`` | ⌈days / 30⌉ |
| ``credit_history`` | ``credit_history`` | same codes |
| request ``purpose`` | ``purpose`` | ``purpose_code``; ``"general"`` (the default) → ``other``; else unknown |
| request ``amount`` | ``credit_amount`` | amount × ``ProfileMapping.amount_to_model_units`` |
| ``savings`` | ``savings`` | ``"no_account"`` → −1 (its own bin); < 100 → 0; < 500 → 1; < 1000 → 2; ≥ 1000 → 3 |
| ``employment_years`` | ``employment`` | ``"unemployed"`` → 0; < 1 → 1; < 4 → 2; < 7 → 3; ≥ 7 → 4 |
| ``installment_burden_pct`` (or derived) | ``installment_rate`` | < 20 % → 1; < 25 % → 2; < 35 % → 3; ≥ 35 % → 4 |
| ``property`` / ``other_installment_plans`` / ``housing`` | same names | same codes |

Balances and amounts are in the profile's reporting currency, read against the 1994 data's DM band edges scaled by
``ProfileMapping`` (face value by default): a lender recalibrating on its own applicants changes them there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from risk.errors import ProfileError
from risk.scorecard import Value

# an enum of one rather than pydantic's ``const``, which generated clients mishandle inside a union
NoAccount = Annotated[Literal["no_account"], WithJsonSchema({"type": "string", "enum": ["no_account"]})]
Unemployed = Annotated[Literal["unemployed"], WithJsonSchema({"type": "string", "enum": ["unemployed"]})]

_EXPONENT = r"([eE][+-]?[0-9]{1,4})?"  # a JSON number read as a Decimal keeps its exponent (5E-324)
_DECIMAL_STRING = rf"^-?[0-9]{{1,80}}(\.[0-9]{{1,80}})?{_EXPONENT}$"
#: a decimal string with at least one non-zero digit (no sign): above zero
_POSITIVE_STRING = (
    rf"^([0-9]{{0,79}}[1-9][0-9]{{0,79}}(\.[0-9]{{1,80}})?|[0-9]{{1,80}}\.[0-9]{{0,79}}[1-9][0-9]{{0,79}}){_EXPONENT}$"
)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic's lax mode would read true as 1
        raise ValueError("a number, not a boolean")
    return value


def _decimal(number: dict[str, Any], pattern: str) -> tuple[BeforeValidator, WithJsonSchema]:
    """A Decimal read from a JSON number or a decimal string of ASCII digits, and documented as exactly that (the
    default schema let any string through, although "NaN" or "abc" was refused, and read true as 1)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a number or a decimal string, not a boolean")
        if isinstance(value, str) and not re.fullmatch(pattern, value):
            raise ValueError("not a decimal string of ASCII digits")
        return value

    return (
        BeforeValidator(check),
        WithJsonSchema({"anyOf": [{"type": "number"} | number, {"type": "string", "pattern": pattern}]}),
    )


_ANY = _decimal({}, _DECIMAL_STRING)
_NON_NEGATIVE = _decimal({"minimum": 0}, _DECIMAL_STRING.replace("-?", ""))
_POSITIVE = _decimal({"exclusiveMinimum": 0}, _POSITIVE_STRING)
AnyDecimal = Annotated[Decimal, _ANY[0], _ANY[1]]
NonNegativeDecimal = Annotated[Decimal, _NON_NEGATIVE[0], Field(ge=0), _NON_NEGATIVE[1]]
PositiveDecimal = Annotated[Decimal, _POSITIVE[0], Field(gt=0), _POSITIVE[1]]


#: the most credits a profile may say the borrower has running: far past any applicant's, and a bound the canonical
#: JSON of the decision's inputs (RFC 8785, numbers as doubles) holds exactly. Unbounded, 2^53 + 1 was stored and
#: every credit request of the borrower then failed when its inputs were hashed.
MAX_EXISTING_CREDITS = 1_000


class CreditHistory(StrEnum):
    NO_CREDITS_OR_ALL_PAID = "no_credits_or_all_paid"
    ALL_PAID_AT_THIS_LENDER = "all_paid_at_this_lender"
    PAID_DULY_SO_FAR = "paid_duly_so_far"
    DELAYED_IN_PAST = "delayed_in_past"
    CRITICAL_OR_CREDITS_ELSEWHERE = "critical_or_credits_elsewhere"


class Purpose(StrEnum):
    NEW_CAR = "new_car"
    USED_CAR = "used_car"
    FURNITURE = "furniture"
    ELECTRONICS = "electronics"
    APPLIANCES = "appliances"
    REPAIRS = "repairs"
    EDUCATION = "education"
    RETRAINING = "retraining"
    BUSINESS = "business"
    OTHER = "other"


#: the purpose of a request that states none (the API's default): the model's ``other`` category
GENERAL_PURPOSE = "general"
#: every purpose a credit request may state: the model's codes, and ``GENERAL_PURPOSE``
PURPOSES: tuple[str, ...] = (*(purpose.value for purpose in Purpose), GENERAL_PURPOSE)


def purpose_code(value: str) -> str | None:
    """The purpose code ``value`` names, read without regard to case, surrounding blanks, or spaces and hyphens in
    place of underscores ("Used car" is ``used_car``); None when it names none of ``PURPOSES``. The model scores
    each code differently (education −47 points, used car +29), so a purpose it cannot read is refused at the API,
    never scored as another one."""
    code = re.sub(r"[\s-]+", "_", value.strip()).lower()
    return code if code in PURPOSES else None


def _known_purpose(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str schema refuses it
    code = purpose_code(value)
    if code is None:
        raise ValueError(f"unknown purpose {value[:64]!r}; one of: {', '.join(PURPOSES)}")
    return code


#: a credit request's purpose at the API: one of ``PURPOSES`` (any case), read as its code
RequestPurpose = Annotated[
    str,
    BeforeValidator(_known_purpose),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(PURPOSES),
            "description": "what the credit is for, one of the scorecard's purposes (read without regard to case; "
            '"general", the default, is scored as "other")',
        }
    ),
]


class Property(StrEnum):
    REAL_ESTATE = "real_estate"
    SAVINGS_OR_INSURANCE = "savings_or_insurance"
    CAR_OR_OTHER = "car_or_other"
    NONE = "none"


class InstallmentPlans(StrEnum):
    NONE = "none"
    BANK = "bank"
    STORES = "stores"


class Housing(StrEnum):
    OWN = "own"
    RENT = "rent"
    FREE = "free"


class CreditProfile(BaseModel):
    """What the borrower tells us about their finances; every field may be left unknown (``None``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checking: NoAccount | AnyDecimal | None = Field(None, description='checking balance, or "no_account"')
    savings: NoAccount | AnyDecimal | None = Field(None, description='savings and bonds, or "no_account"')
    credit_history: CreditHistory | None = None
    employment_years: Unemployed | NonNegativeDecimal | None = Field(None, description="years in current job")
    monthly_disposable_income: PositiveDecimal | None = None
    installment_burden_pct: NonNegativeDecimal | None = Field(
        None, description="the new loan's installment as % of disposable income; derived if left out"
    )
    property: Property | None = None
    other_installment_plans: InstallmentPlans | None = None
    housing: Housing | None = None
    existing_credits: (
        Annotated[
            int,
            BeforeValidator(_no_bool),
            Ge(0),
            Le(MAX_EXISTING_CREDITS),
            WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_EXISTING_CREDITS}),
        ]
        | None
    ) = Field(
        None, description=f"credits running now, 0 to {MAX_EXISTING_CREDITS}; collected, not used by scorecard-v1"
    )

    @classmethod
    def stored(cls, document: dict[str, Any]) -> CreditProfile:
        """A profile as stored: one saved before ``existing_credits`` was bounded may hold a count past
        ``MAX_EXISTING_CREDITS``, read as unknown (scorecard-v1 does not use it) rather than refusing the borrower's
        every read and credit request."""
        credits = document.get("existing_credits")
        if isinstance(credits, int) and not 0 <= credits <= MAX_EXISTING_CREDITS:
            document = document | {"existing_credits": None}
        return cls.model_validate(document)


class CreditRequestFacts(BaseModel):
    """The parts of a credit request that risk needs. Amounts in the asset's units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal = Field(gt=0)
    asset: str
    term_days: int = Field(gt=0)
    purpose: str
    collateral_value: Decimal | None = Field(
        None, ge=0, description="the collateral offered, valued in the requested asset's units"
    )


@dataclass(frozen=True, slots=True)
class ProfileMapping:
    """Band edges and unit conversions from our currencies to the model's (DM of the 1994 data)."""

    checking_edges: tuple[Decimal, Decimal] = (Decimal(0), Decimal(200))
    savings_edges: tuple[Decimal, Decimal, Decimal] = (Decimal(100), Decimal(500), Decimal(1000))
    employment_edges: tuple[Decimal, Decimal, Decimal] = (Decimal(1), Decimal(4), Decimal(7))
    burden_edges_pct: tuple[Decimal, Decimal, Decimal] = (Decimal(20), Decimal(25), Decimal(35))
    amount_to_model_units: Decimal = Decimal(1)
    days_per_month: int = 30


DEFAULT_MAPPING = ProfileMapping()


def _band(value: Decimal, edges: tuple[Decimal, ...]) -> int:
    """The number of edges at or below ``value``: 0 below the first edge, len(edges) at or above the last."""
    return sum(1 for edge in edges if value >= edge)


def duration_months(term_days: int, mapping: ProfileMapping = DEFAULT_MAPPING) -> int:
    return -(-term_days // mapping.days_per_month)


def installment_burden_pct(
    profile: CreditProfile, request: CreditRequestFacts, mapping: ProfileMapping = DEFAULT_MAPPING
) -> Decimal | None:
    """The stated burden, or (principal ÷ months) ÷ monthly disposable income, or unknown."""
    if profile.installment_burden_pct is not None:
        return profile.installment_burden_pct
    if profile.monthly_disposable_income is None:
        return None
    installment = request.amount * mapping.amount_to_model_units / duration_months(request.term_days, mapping)
    burden = installment * 100 / profile.monthly_disposable_income
    # an income of 5E-324 makes the burden too large to quantize (InvalidOperation); past 10^9 % it is all the same bin
    return min(burden, Decimal(10**9)).quantize(Decimal("0.01"), ROUND_CEILING)


def characteristics(
    profile: CreditProfile, request: CreditRequestFacts, mapping: ProfileMapping = DEFAULT_MAPPING
) -> dict[str, Value]:
    """The scorecard's inputs; ``None`` marks an unknown characteristic."""
    if request.term_days <= 0 or request.amount <= 0:
        raise ProfileError("a credit request needs a positive amount and term")
    burden = installment_burden_pct(profile, request, mapping)
    code = purpose_code(request.purpose)
    purpose = Purpose.OTHER.value if code == GENERAL_PURPOSE else code  # an unknown purpose: its worst bin, named
    return {
        "checking_account": _checking(profile.checking, mapping),
        "duration_months": duration_months(request.term_days, mapping),
        "credit_history": None if profile.credit_history is None else profile.credit_history.value,
        "purpose": purpose,
        "credit_amount": request.amount * mapping.amount_to_model_units,
        "savings": _savings(profile.savings, mapping),
        "employment": _employment(profile.employment_years, mapping),
        "installment_rate": None if burden is None else 1 + _band(burden, mapping.burden_edges_pct),
        "property": None if profile.property is None else profile.property.value,
        "other_installment_plans": (
            None if profile.other_installment_plans is None else profile.other_installment_plans.value
        ),
        "housing": None if profile.housing is None else profile.housing.value,
    }


def _checking(value: NoAccount | Decimal | None, mapping: ProfileMapping) -> str | None:
    if value is None:
        return None
    if value == "no_account":
        return "none"
    return ("negative", "low", "high")[_band(Decimal(value), mapping.checking_edges)]


def _savings(value: NoAccount | Decimal | None, mapping: ProfileMapping) -> int | None:
    if value is None:
        return None
    if value == "no_account":
        return -1
    if value < 0:
        raise ProfileError("a savings balance cannot be negative")
    return _band(Decimal(value), mapping.savings_edges)


def _employment(value: Unemployed | Decimal | None, mapping: ProfileMapping) -> int | None:
    if value is None:
        return None
    if value == "unemployed":
        return 0
    if value < 0:
        raise ProfileError("years in employment cannot be negative")
    return 1 + _band(Decimal(value), mapping.employment_edges)
