"""What a provider's audit entry keeps of its configuration: only the fields its adapter kind names safe, each other
field named in ``withheld`` without its value, and of a URL only its origin and a hash. Before (fixed 2026-11-29) a
short list of secret-sounding top-level names was left out and everything else written, a URL with its path: a
``key``, an ``auth`` object, headers, a passphrase and a key in an RPC URL's path all reached the append-only log."""

from __future__ import annotations

import hashlib
import json

from providers.http_lender import HttpLenderAdapter
from providers.pool import PoolAdapter
from store.providers import audit_config, audit_url

RPC = "https://rpc.example/v3/0123abcdKEY"


def _sha(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def test_only_the_fields_a_kind_names_safe_are_written_and_urls_keep_their_origin() -> None:
    config = {
        "base_url": RPC,
        "key": "sk_live_abc",
        "auth": {"client_secret": "s3"},
        "headers": {"Authorization": "Bearer tok"},
        "passphrase": "pw",
        "timeout_seconds": 1.5,
        "secret_sealed": "c2VhbGVk",
    }
    audited = audit_config(config, HttpLenderAdapter.audited_config)
    assert audited == {
        "base_url": {"origin": "https://rpc.example", "sha256": _sha(RPC)},
        "timeout_seconds": 1.5,
        "withheld": ["auth", "headers", "key", "passphrase", "secret_sealed"],
    }
    written = json.dumps(audited)
    for secret in ("0123abcdKEY", "sk_live_abc", "s3", "Bearer tok", "pw", "c2VhbGVk"):
        assert secret not in written
    # a plugin that names no field safe: its whole configuration withheld; a field named safe holding an object too
    assert audit_config({"rpc": RPC, "n": 1}, frozenset()) == {"withheld": ["n", "rpc"]}
    assert audit_config({"chain": {"k": "v"}}, PoolAdapter.audited_config) == {"withheld": ["chain"]}


def test_a_url_is_its_origin_and_hash_and_never_raises() -> None:
    with_credentials = "https://bank:pa55@Lender.example:8443/pqp/tok_123?apikey=abc"
    assert audit_url(with_credentials) == {"origin": "https://lender.example:8443", "sha256": _sha(with_credentials)}
    assert audit_url("http://[::1]:8600/events") == {
        "origin": "http://[::1]:8600",
        "sha256": _sha("http://[::1]:8600/events"),
    }
    for unparsable in ("http://host:abc", "http://[::1", "http://host:99999", "://"):
        assert audit_url(unparsable) == {"origin": None, "sha256": _sha(unparsable)}
    assert audit_url(None) is None
