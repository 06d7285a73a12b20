"""The compliance exception tree. Every error raised on purpose by ``compliance`` derives from ``ComplianceError``;
the API maps the tree to problem+json in one place.

ComplianceError
├── ComplianceInputError          bad input (4xx): malformed address, inconsistent loan terms, unknown jurisdiction
├── SanctionsListError            a list cannot be used, so screening fails closed
│   ├── SanctionsListStale        the list is older than its configured maximum age
│   └── SanctionsListInvalid      no list file, or a file that does not parse
├── JurisdictionRulesError        the rules file is missing or does not validate
├── KycError
│   ├── KycProviderError          the provider failed or answered something unusable
│   └── WebhookRejected           bad signature, stale timestamp or a replayed delivery
│       └── UnusableKycEvent      verifies, but cannot be applied (an unknown applicant, not a review)
├── PiiError
│   ├── SubjectKeyMissing         the subject's key is gone (erased) or never existed
│   └── ErasureRefused            a retention period still applies
└── DecisionIntegrityError        a decision record's hash does not verify
"""

from __future__ import annotations

from datetime import datetime


class ComplianceError(Exception):
    """Root of every error ``compliance`` raises on purpose."""


class ComplianceInputError(ComplianceError, ValueError):
    """The caller passed something that cannot be screened or disclosed; the message says what."""


class SanctionsListError(ComplianceError):
    """A sanctions list cannot be used: screening fails closed."""


class SanctionsListStale(SanctionsListError):
    def __init__(self, list_name: str, version: str, published: datetime, max_age_days: int, now: datetime) -> None:
        self.list_name = list_name
        self.version = version
        self.published = published
        self.max_age_days = max_age_days
        self.now = now
        super().__init__(
            f"sanctions list {list_name!r} version {version} published {published.date().isoformat()} is older than "
            f"its maximum age of {max_age_days} days at {now.isoformat()}; load a newer list file to screen again"
        )


class SanctionsListInvalid(SanctionsListError):
    """No list file was found, or the file does not parse."""


class JurisdictionRulesError(ComplianceError):
    """The jurisdiction rules file is missing or invalid."""


class KycError(ComplianceError):
    """KYC failed in a way the caller must handle."""


class KycProviderError(KycError):
    """The KYC provider failed or answered something unusable."""


class WebhookRejected(KycError):
    """A KYC webhook was refused: bad signature, stale timestamp, or a delivery already seen."""


class UnusableKycEvent(WebhookRejected):
    """A KYC webhook that verifies (signed with the provider's secret, fresh, not seen before) but cannot be applied:
    not an applicant review of the expected shape, a ``reviewedAt`` that is no moment or lies ahead, or an applicant
    we do not know. The provider sent it: not an unauthenticated refusal."""


class PiiError(ComplianceError):
    """PII could not be protected or read."""


class SubjectKeyMissing(PiiError):
    """The subject's data key does not exist (never created, or destroyed by erasure)."""


class ErasureRefused(PiiError):
    """``retain_until`` None: the record is still open (a loan not closed), and its period only starts when it
    closes."""

    def __init__(self, subject_id: str, retain_until: datetime | None, reason: str) -> None:
        self.subject_id = subject_id
        self.retain_until = retain_until
        self.reason = reason
        if retain_until is None:
            super().__init__(f"erasure of subject {subject_id} refused while a record is open: {reason}")
        else:
            super().__init__(f"erasure of subject {subject_id} refused until {retain_until.isoformat()}: {reason}")


class DecisionIntegrityError(ComplianceError):
    """A decision record does not match its recorded hash."""
