"""HMAC request signing for the Provider Quote Protocol: SHA-256 over ``"{timestamp}.{body}"`` with the shared
secret; the receiver refuses a stale timestamp and a signature it has already seen (replay)."""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

TIMESTAMP_HEADER = "X-Creditmesh-Timestamp"
SIGNATURE_HEADER = "X-Creditmesh-Signature"
MAX_SKEW_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


class SignatureRejected(Exception):
    """A request's HMAC signature is missing, wrong, stale or replayed."""


class ReplayGuard:
    """Verifies signed requests and remembers recent signatures (bounded) to refuse replays."""

    def __init__(self, secret: str, capacity: int = 100_000) -> None:
        self._secret = secret
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def verify(self, timestamp_header: str | None, signature_header: str | None, body: bytes, now: int) -> None:
        if not timestamp_header or not signature_header:
            raise SignatureRejected("missing signature headers")
        if not (timestamp_header.isascii() and timestamp_header.isdigit()) or len(timestamp_header) > 12:
            raise SignatureRejected("timestamp is not an integer")
        timestamp = int(timestamp_header)
        if abs(now - timestamp) > MAX_SKEW_SECONDS:
            raise SignatureRejected("timestamp outside the allowed window")
        # bytes, not str: compare_digest refuses a non-ASCII str with TypeError (a 500 for anyone's header)
        given = signature_header.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(signature(self._secret, timestamp, body).encode(), given):
            raise SignatureRejected("signature does not match")
        if signature_header in self._seen:
            raise SignatureRejected("replayed request")
        self._seen[signature_header] = timestamp
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
