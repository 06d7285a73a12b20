"""Production never runs on the simulated identity providers, the local inputs-hash key, or subject keys kept in
the platform database."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.settings import LOCAL_ADMIN_KEY, Settings
from compliance.adverse_action import LOCAL_CREDITOR, Party

pytestmark = pytest.mark.unit

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "admin_api_key": "cm_admin_" + secrets.token_urlsafe(32),
    "relayer_key": "0x" + secrets.token_hex(32),
    "quote_signer_key": "0x" + secrets.token_hex(32),
    "risk_signer_key": "0x" + secrets.token_hex(32),
    "pii_master_key": "ab" * 32,
    "kyc_webhook_secret": "a-real-kyc-secret",
    "http_lenders": [],
    "kyc_provider_url": "https://api.kyc.example/v1",
    "mla_provider_url": "https://mla.example/api",
    "mla_provider_secret": "a-real-mla-secret",
    "inputs_hash_key": "cd" * 32,
    "creditor_name": "Prairie State Credit Platform, Inc.",
    "creditor_address": "1 Main Street, Springfield, IL 62701",
    "creditor_telephone": "+1 217 555 0142",
    "database_url": "postgresql://db.internal/creditmesh",
    "key_store_url": "kms://eu-west-1",
    "sanctions_name_list_max_age_days": 7,
    "sanctions_address_list_max_age_days": 7,
}


@pytest.fixture(autouse=True)
def chains_file(tmp_path: Path) -> None:
    """Production needs a chains file naming real networks (chain.signers.production_guard)."""
    path = tmp_path / "chains.json"
    path.write_text(json.dumps([{"name": "base", "chain_id": 8453, "rpc_urls": ["https://rpc.example/base"]}]))
    PRODUCTION["chains_file"] = path


def test_production_with_real_identity_providers_starts() -> None:
    settings = Settings(**PRODUCTION)
    assert settings.kyc_provider_url == "https://api.kyc.example/v1"
    assert settings.admin_api_key != LOCAL_ADMIN_KEY


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kyc_provider_url": "http://127.0.0.1:8610/kyc"}, "KYC provider is the local simulator"),
        ({"kyc_provider_url": "http://localhost:9000/kyc"}, "KYC provider is the local simulator"),
        ({"mla_provider_url": "http://[::1]:8610/mla"}, "MLA provider is the local simulator"),
        # every other spelling of this machine the resolver reads
        ({"kyc_provider_url": "http://kyc.localhost/kyc"}, "KYC provider is the local simulator"),
        ({"kyc_provider_url": "http://LOCALHOST./kyc"}, "KYC provider is the local simulator"),
        ({"kyc_provider_url": "http://127.1:9000/kyc"}, "KYC provider is the local simulator"),
        ({"kyc_provider_url": "http://2130706433/kyc"}, "KYC provider is the local simulator"),
        ({"kyc_provider_url": "http://0.0.0.0:9000/kyc"}, "KYC provider is the local simulator"),
        ({"mla_provider_url": "http://[::ffff:127.0.0.1]/mla"}, "MLA provider is the local simulator"),
        ({"mla_provider_url": "http://[::]:8610/mla"}, "MLA provider is the local simulator"),
        ({"mla_provider_secret": "mla-operator-local-secret"}, "MLA_PROVIDER_SECRET"),
        ({"kyc_webhook_secret": "kyc-webhook-local-secret"}, "KYC_WEBHOOK_SECRET"),
        ({"inputs_hash_key": "00" * 31 + "02"}, "INPUTS_HASH_KEY"),
        ({"creditor_name": "creditmesh (local development)"}, "CREDITOR_NAME, CREDITMESH_CREDITOR_ADDRESS and"),
        ({"creditor_address": LOCAL_CREDITOR.address}, "CREDITOR_NAME, CREDITMESH_CREDITOR_ADDRESS and"),
        # where to ask for the statement of reasons is a telephone number too (12 CFR 1002.9(a)(2)(ii))
        ({"creditor_telephone": LOCAL_CREDITOR.telephone}, "CREDITMESH_CREDITOR_TELEPHONE in production"),
        ({"key_store_url": "postgresql://db.internal/creditmesh"}, "must not be the platform database"),
    ],
)
def test_production_refuses_the_local_identity_providers(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**(PRODUCTION | change))


def test_the_defaults_are_the_simulator_for_local_runs() -> None:
    settings = Settings(_env_file=None)
    assert settings.kyc_provider_url == "http://127.0.0.1:8610/kyc"
    assert settings.mla_provider_url == "http://127.0.0.1:8610/mla"
    assert settings.resolved_key_store_url.endswith("subject-keys.db")
    assert settings.resolved_key_store_url != settings.resolved_database_url


@pytest.mark.parametrize("field", ["kyc_webhook_secret", "mla_provider_secret"])
@pytest.mark.parametrize("secret", ["", "short-secret"])
def test_a_shared_secret_shorter_than_16_characters_is_refused(field: str, secret: str) -> None:
    """An empty KYC webhook secret passed the production checks, and with it anyone could sign a KYC verdict (an
    HMAC under an empty key)."""
    with pytest.raises(ValidationError) as refused:
        Settings(**(PRODUCTION | {field: secret}))
    assert refused.value.errors()[0]["loc"] == (field,)


#: a lender configured in the settings, as production needs it (its creditor named)
BANK = {
    "provider_id": "bank",
    "secret": "a-real-lender-secret-of-32-chars!",
    "base_url": "https://lender.example/quotes",
    "legal_name": "First Example Bank, N.A.",
    "address": "2 Bank Plaza, Springfield, IL 62701",
}


@pytest.mark.parametrize(
    ("lender", "what"),
    [
        ({"base_url": "http://lender.example/quotes"}, "base_url"),
        ({"base_url": "https://lender.example/quotes", "webhook_url": "http://lender.example/events"}, "webhook_url"),
    ],
)
def test_production_refuses_a_configured_lender_over_plain_http(lender: dict[str, str], what: str) -> None:
    lenders = [BANK | lender]
    with pytest.raises(ValidationError, match=f"CREDITMESH_HTTP_LENDERS bank {what} must be an https:// URL"):
        Settings(**PRODUCTION | {"http_lenders": lenders})
    https = [BANK | {"base_url": "https://l.example"}]
    assert Settings(**PRODUCTION | {"http_lenders": https}).http_lenders[0].base_url == "https://l.example"


def test_production_refuses_a_configured_lender_without_its_legal_name_and_address() -> None:
    """Every adverse-action notice given for a lender names the creditor it lends as (12 CFR 1002.9(g)): a lender
    configured in production without its legal name and postal address is refused; locally it is none on file; a
    legal name without an address is refused everywhere."""
    unnamed = {key: value for key, value in BANK.items() if key not in {"legal_name", "address"}}
    with pytest.raises(ValidationError, match="CREDITMESH_HTTP_LENDERS bank: give its legal_name and address"):
        Settings(**PRODUCTION | {"http_lenders": [unnamed]})
    assert Settings(**PRODUCTION | {"http_lenders": [BANK]}).http_lenders[0].creditor == Party(
        "First Example Bank, N.A.", "2 Bank Plaza, Springfield, IL 62701"
    )
    assert Settings(_env_file=None, http_lenders=[unnamed]).http_lenders[0].creditor is None
    with pytest.raises(ValidationError, match="bank: give both legal_name and address, or neither"):
        Settings(_env_file=None, http_lenders=[unnamed | {"legal_name": "First Example Bank, N.A."}])


def test_the_simulated_lenders_register_with_their_made_up_legal_names() -> None:
    """`make run`'s simulated lenders (the settings' default, ``providers.sim.fleet``) name the creditor each lends as,
    made up, as a real lender's registration must in production: the notices name them, not their provider ids."""
    lenders = Settings(_env_file=None).http_lenders
    assert [lender.provider_id for lender in lenders] == ["sim-bank", "sim-credit-union", "sim-fintech"]
    for lender in lenders:
        assert lender.creditor is not None, lender.provider_id
        assert "(a simulated lender)" in lender.creditor.name
        assert "(not a real address)" in lender.creditor.address
