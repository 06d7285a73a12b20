"""Signature compares are byte-wise: a non-ASCII signature header is a refusal, never a TypeError (a 500)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from compliance.errors import WebhookRejected as KycWebhookRejected
from compliance.kyc import InMemoryReplayGuard, verify_webhook
from providers.signing import ReplayGuard, SignatureRejected

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("given", ["\u00e9" * 64, "\u2603", "abc\udcff"])
def test_a_non_ascii_provider_signature_is_refused(given: str) -> None:
    with pytest.raises(SignatureRejected, match="does not match"):
        ReplayGuard("a-secret-of-length").verify(str(int(time.time())), given, b"{}", int(time.time()))


@pytest.mark.parametrize("timestamp", ["\u0661\u0662\u0663", "1e9", "9" * 40])
def test_a_timestamp_that_is_not_plain_ascii_digits_is_refused(timestamp: str) -> None:
    with pytest.raises(SignatureRejected, match="not an integer"):
        ReplayGuard("a-secret-of-length").verify(timestamp, "00", b"{}", int(time.time()))


def test_a_non_ascii_kyc_webhook_signature_is_refused() -> None:
    now = datetime.now(UTC)
    header = {"X-Creditmesh-Signature": f"t={int(now.timestamp())},v1=\u00e9\u00e9"}
    with pytest.raises(KycWebhookRejected, match="does not verify"):
        verify_webhook(b'{"eventId": "e1"}', header, b"kyc-secret", now, InMemoryReplayGuard())
