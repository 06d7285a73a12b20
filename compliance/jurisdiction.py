"""Jurisdiction rules as versioned data: where each product is offered, usury caps as each law states them, the
Military Lending Act cap for covered borrowers, amount limits, and the age of majority.

``parse_rules`` validates a rules file (bytes in, value out); ``load_rules`` picks the newest
``jurisdictions-YYYY-MM-DD.json`` in a folder. ``check_request`` and ``check_offer`` are pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from compliance.errors import ComplianceInputError, JurisdictionRulesError
from compliance.tila.disclosure import Disclosure, LoanTerms, mapr_percent

RULES_DIR = Path(__file__).resolve().parent / "data" / "jurisdictions"
_RULES_FILE = re.compile(r"^jurisdictions-(\d{4}-\d{2}-\d{2})\.json$")


class Product(StrEnum):
    TRADITIONAL = "traditional"
    DEFI = "defi"


class RateBasis(StrEnum):
    NOMINAL_RATE = "nominal-rate"
    APR = "apr"
    MAPR = "mapr"


@dataclass(frozen=True)
class Reason:
    """Why a decision went the way it did: a stable code, a sentence, and the rule's citation when there is one."""

    code: str
    message: str
    citation: str | None = None


@dataclass(frozen=True)
class UsuryCap:
    max_percent: Decimal
    counts: RateBasis
    citation: str
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None  # the largest amount the cap applies to ("up to $500,000")
    below_amount: Decimal | None = None  # the cap applies below it only ("a loan of $250,000 or more is exempt")

    def applies_to(self, amount: Decimal) -> bool:
        return (
            (self.min_amount is None or amount >= self.min_amount)
            and (self.max_amount is None or amount <= self.max_amount)
            and (self.below_amount is None or amount < self.below_amount)
        )


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name: str
    products: frozenset[Product]
    caps: tuple[UsuryCap, ...]
    age_of_majority: int


@dataclass(frozen=True)
class JurisdictionRules:
    version: str
    jurisdictions: dict[str, Jurisdiction]
    prohibited: dict[str, str]
    amount_limits: dict[Product, tuple[Decimal, Decimal]]
    mla_cap_percent: Decimal
    mla_citation: str
    default_age_of_majority: int = 18
    label: str = field(default="")

    def age_of_majority(self, code: str) -> int:
        """The age of majority of ``code`` (any case, blanks around it ignored); the default for a code not listed."""
        found = self.jurisdictions.get(code.strip().upper())
        return found.age_of_majority if found else self.default_age_of_majority

    def knows(self, code: str) -> bool:
        """Whether ``code`` (any case, blanks around it ignored) is a jurisdiction the rules serve or the country of
        one ("US" for "US-FL"): a code that can name where a borrower the platform serves lives."""
        return any(covers(code, served) for served in self.jurisdictions)


def covers(code: str, jurisdiction: str) -> bool:
    """Whether the ISO 3166 ``code`` covers ``jurisdiction`` (either in any case, blanks around them ignored): the
    same code, or ``code`` a whole country and ``jurisdiction`` that country or one of its subdivisions ("US" covers
    "US-FL"; "US-FL" covers neither "US" nor "US-NY"). What a lender's jurisdictions serve
    (``providers.models.Capabilities.accepts``) and where an identity may reside for an account
    (``compliance.eligibility.residence_agrees``) both read it so."""
    wide, narrow = code.strip().upper(), jurisdiction.strip().upper()
    return narrow == wide or ("-" not in wide and narrow.split("-", 1)[0] == wide)


def _decimal(value: Any, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as err:
        raise JurisdictionRulesError(f"{where}: {value!r} is not a number") from err
    if not result.is_finite() or result < 0:
        raise JurisdictionRulesError(f"{where}: {value!r} must be a non-negative number")
    return result


def parse_rules(raw: bytes) -> JurisdictionRules:
    """Validate a rules document. Raises JurisdictionRulesError saying which entry is wrong."""
    try:
        doc = json.loads(raw)
        version = str(doc["version"])
        default_age = int(doc.get("default_age_of_majority", 18))
        jurisdictions: dict[str, Jurisdiction] = {}
        for code, entry in doc["jurisdictions"].items():
            caps = []
            for n, cap in enumerate(entry["caps"]):
                if not cap.get("citation"):
                    raise JurisdictionRulesError(f"{code} cap {n}: every cap cites its statute")
                caps.append(
                    UsuryCap(
                        _decimal(cap["max_percent"], f"{code} cap {n}"),
                        RateBasis(cap["counts"]),
                        cap["citation"],
                        _decimal(cap["min_amount"], code) if "min_amount" in cap else None,
                        _decimal(cap["max_amount"], code) if "max_amount" in cap else None,
                        _decimal(cap["below_amount"], code) if "below_amount" in cap else None,
                    )
                )
            jurisdictions[code.upper()] = Jurisdiction(
                code.upper(),
                entry["name"],
                frozenset(Product(p) for p in entry["products"]),
                tuple(caps),
                int(entry.get("age_of_majority", default_age)),
            )
        limits = {
            Product(name): (_decimal(v["min"], name), _decimal(v["max"], name))
            for name, v in doc["amount_limits"].items()
        }
        mla = doc["mla"]
        if RateBasis(mla["counts"]) is not RateBasis.MAPR:
            raise JurisdictionRulesError("the MLA cap counts the MAPR")
        return JurisdictionRules(
            version,
            jurisdictions,
            {k.upper(): str(v) for k, v in doc["prohibited"].items()},
            limits,
            _decimal(mla["cap_percent"], "mla"),
            mla["citation"],
            default_age,
            f"jurisdictions@{version}",
        )
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, JurisdictionRulesError):
            raise
        raise JurisdictionRulesError(f"invalid jurisdiction rules: {err!r}") from err


def load_rules(directory: Path = RULES_DIR) -> JurisdictionRules:
    """The newest rules file in ``directory`` (adapter: reads the file system)."""
    files = sorted(p for p in directory.iterdir() if _RULES_FILE.match(p.name))
    if not files:
        raise JurisdictionRulesError(f"no jurisdictions-YYYY-MM-DD.json in {directory}")
    return parse_rules(files[-1].read_bytes())


def check_request(rules: JurisdictionRules, jurisdiction: str, product: Product, amount: Decimal) -> list[Reason]:
    """Why a credit request may not proceed in ``jurisdiction`` (empty when it may)."""
    code = jurisdiction.upper()
    if amount <= 0:
        raise ComplianceInputError("the requested amount must be positive")
    country = code.split("-", 1)[0]
    for blocked in (code, country):
        if blocked in rules.prohibited:
            return [
                Reason("jurisdiction.prohibited", f"{blocked} is comprehensively sanctioned", rules.prohibited[blocked])
            ]
    entry = rules.jurisdictions.get(code)
    if entry is None:
        return [Reason("jurisdiction.not-served", f"creditmesh does not lend in {code}")]
    reasons = []
    if product not in entry.products:
        reasons.append(Reason("jurisdiction.product-not-offered", f"{product} credit is not offered in {entry.name}"))
    low, high = rules.amount_limits[product]
    if not low <= amount <= high:
        reasons.append(Reason("amount.out-of-limits", f"{product} amounts must be between {low} and {high}"))
    return reasons


@dataclass(frozen=True)
class OfferCheck:
    kept: bool
    reasons: tuple[Reason, ...]
    apr_percent: Decimal
    mapr_percent: Decimal


def check_offer(
    rules: JurisdictionRules,
    terms: LoanTerms,
    disclosure: Disclosure,
    jurisdiction: str,
    covered_borrower: bool,
) -> OfferCheck:
    """Keep or drop one offer: every usury cap of the borrower's jurisdiction that applies to its amount, measured
    as that law counts it, and the MLA's 36% MAPR when the borrower is a covered member or dependent."""
    mapr = mapr_percent(terms, disclosure)
    measured = {
        RateBasis.NOMINAL_RATE: Decimal(terms.rate_bps) / 100,
        # the APR itself, not as disclosed (two decimals, half up): 36.000048% is over a 36% cap, though shown 36.00
        RateBasis.APR: disclosure.apr_percent if disclosure.apr_unrounded is None else disclosure.apr_unrounded,
        RateBasis.MAPR: mapr,
    }
    reasons: list[Reason] = []
    entry = rules.jurisdictions.get(jurisdiction.upper())
    place = entry.name if entry else jurisdiction
    for cap in entry.caps if entry else ():
        if cap.applies_to(terms.principal) and measured[cap.counts] > cap.max_percent:
            reasons.append(
                Reason(
                    "usury.cap-exceeded",
                    f"{cap.counts} {measured[cap.counts]:.2f}% exceeds the {cap.max_percent}% cap of {place}",
                    cap.citation,
                )
            )
    if covered_borrower and mapr > rules.mla_cap_percent:
        reasons.append(
            Reason(
                "mla.mapr-exceeded",
                f"MAPR {mapr:.2f}% exceeds the Military Lending Act cap of {rules.mla_cap_percent}%",
                rules.mla_citation,
            )
        )
    return OfferCheck(not reasons, tuple(reasons), disclosure.apr_percent, mapr)
