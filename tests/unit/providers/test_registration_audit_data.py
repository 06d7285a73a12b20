"""What a provider's audit entry keeps of its configuration: no field whose name says it holds a secret (named in
``withheld`` instead), and no URL's user information or query."""

from __future__ import annotations

from store.providers import audit_config, audit_url


def test_secrets_are_withheld_and_urls_lose_their_credentials() -> None:
    config = {
        "base_url": "https://bank:pa55@lender.example:8443/pqp?apikey=abc",
        "secret_sealed": "c2VhbGVk",
        "API_Key": "k",
        "oauth_token": "t",
        "assets": ["USDC"],
        "timeout": 1.5,
    }
    assert audit_config(config) == {
        "base_url": "https://lender.example:8443/pqp?…",
        "assets": ["USDC"],
        "timeout": 1.5,
        "withheld": ["API_Key", "oauth_token", "secret_sealed"],
    }
    assert audit_url("http://[::1]:8600/events") == "http://[::1]:8600/events"
    assert audit_url(None) is None
