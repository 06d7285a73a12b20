"""Compliance: KYC, sanctions screening, jurisdiction and usury rules, Truth in Lending disclosures, PII protection
and decision records. Pure domain code; the adapters are the list and rules loaders, the KYC and MLA providers, and
the repositories in ``store.compliance``.

The aggregator's entry points::

    from compliance import ComplianceService, BorrowerFacts, LoanTerms, disclose, load_newest, load_rules
"""

from compliance.decisions import DecisionKind, DecisionRecord, Outcome
from compliance.errors import (
    ComplianceError,
    ComplianceInputError,
    ErasureRefused,
    SanctionsListInvalid,
    SanctionsListStale,
    WebhookRejected,
)
from compliance.jurisdiction import OfferCheck, Product, Reason, load_rules
from compliance.sanctions.lists import load_newest
from compliance.sanctions.screening import SanctionsPolicy, SanctionsScreen
from compliance.service import BorrowerFacts, ComplianceService, OfferDecision
from compliance.tila.disclosure import (
    Disclosure,
    Frequency,
    InstallmentPlan,
    LoanTerms,
    SecurityInterest,
    disclose,
    installment_term_days,
)
from compliance.tila.schedule import DayCount

__all__ = [
    "BorrowerFacts",
    "ComplianceError",
    "ComplianceInputError",
    "ComplianceService",
    "DayCount",
    "DecisionKind",
    "DecisionRecord",
    "Disclosure",
    "ErasureRefused",
    "Frequency",
    "InstallmentPlan",
    "LoanTerms",
    "OfferCheck",
    "OfferDecision",
    "Outcome",
    "Product",
    "Reason",
    "SanctionsListInvalid",
    "SanctionsListStale",
    "SanctionsPolicy",
    "SanctionsScreen",
    "SecurityInterest",
    "WebhookRejected",
    "disclose",
    "installment_term_days",
    "load_newest",
    "load_rules",
]
