"""The production profile refuses every devnet secret: anvil's first 20 keys and addresses for every role and role
holder, devnet chain ids, running without a chains file, weak admin keys and the local admin key left in the
database — and only in production."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from api.auth import Role as ApiRole
from api.auth import ensure_key
from api.bootstrap import refuse_stored_local_admin_key, role_signers
from api.settings import LOCAL_ADMIN_KEY, Settings
from chain.signers import (
    DEVNET_ACCOUNT_COUNT,
    LocalSigner,
    ProductionProfileRefused,
    Role,
    admin_key_weakness,
    devnet_account,
    devnet_signer,
    production_guard,
)
from contracts.governance.service import Governance
from store.db import Database

pytestmark = pytest.mark.unit

ROLES = sorted({role.value for role in Role} | {"keeper", "audit_anchor"})
STRONG_ADMIN = "cm_admin_" + secrets.token_urlsafe(32)


def _fresh_key() -> str:
    return "0x" + secrets.token_hex(32)


def _chains_file(tmp_path: Path, chain_id: int = 1) -> Path:
    path = tmp_path / f"chains-{chain_id}.json"
    path.write_text(json.dumps([{"name": "mainnet", "chain_id": chain_id, "rpc_urls": ["https://rpc.example.org"]}]))
    return path


def test_every_devnet_key_and_address_is_refused_for_every_role() -> None:
    for index in range(DEVNET_ACCOUNT_COUNT):
        account = devnet_account(index)
        for role in ROLES:
            for spelled in (account.key.hex(), "0x" + account.key.hex().removeprefix("0x").upper()):
                with pytest.raises(ProductionProfileRefused, match=f"the {role} key is one of anvil"):
                    production_guard(environment="production", role_keys={role: spelled}, chains_file="c.json")
            with pytest.raises(ProductionProfileRefused, match="public devnet accounts"):
                production_guard(
                    environment="production", role_holders={f"{role} holder": account.address}, chains_file="c.json"
                )


def test_fresh_keys_and_a_real_chain_pass() -> None:
    production_guard(
        environment="production",
        role_keys={role: _fresh_key() for role in ROLES},
        role_holders={"safe owner 1": "0x" + secrets.token_hex(20)},
        chains_file="chains.json",
        chains=[("mainnet", 1, ["https://rpc.example.org"])],
        admin_api_key=STRONG_ADMIN,
    )


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"chains_file": None}, "no CREDITMESH_CHAINS_FILE"),
        ({"chains_file": None, "chains": [("local", 8453, ["http://127.0.0.1:8545"])]}, "loopback RPC"),
        ({"chains_file": "c.json", "chains": [("x", 31337, ["https://rpc.example.org"])]}, "devnet chain id 31337"),
        ({"chains_file": "c.json", "chains": [("x", 1337, ["https://rpc.example.org"])]}, "devnet chain id 1337"),
        ({"chains_file": "c.json", "admin_api_key": LOCAL_ADMIN_KEY}, "admin API key is weak"),
        ({"chains_file": "c.json", "admin_api_key": "x" * 64}, "too little entropy"),
        ({"chains_file": "c.json", "admin_api_key": "admin-admin-admin-admin-admin-admin"}, "too little entropy"),
        ({"chains_file": "c.json", "local_admin_key_stored": True}, "still accepts the local admin key"),
    ],
)
def test_devnet_chains_weak_admin_keys_and_a_stored_local_key_are_refused(
    arguments: dict[str, object], problem: str
) -> None:
    with pytest.raises(ProductionProfileRefused, match=problem):
        production_guard(environment="production", **arguments)  # type: ignore[arg-type]


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ProductionProfileRefused) as refused:
        production_guard(
            environment="production",
            role_keys={"relayer": devnet_account(1).key.hex(), "quote_signer": devnet_account(19).key.hex()},
            chains_file=None,
            admin_api_key="short",
        )
    assert len(refused.value.problems) == 4


def test_strong_admin_keys_pass() -> None:
    for _ in range(50):
        assert admin_key_weakness("cm_admin_" + secrets.token_urlsafe(24)) is None
        assert admin_key_weakness(secrets.token_hex(32)) is None


def test_nothing_is_refused_outside_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDITMESH_ENVIRONMENT", raising=False)
    production_guard(role_keys={"relayer": devnet_account(1).key.hex()}, admin_api_key="x")
    production_guard(environment="local", role_keys={"relayer": devnet_account(1).key.hex()}, admin_api_key="x")
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    with pytest.raises(ProductionProfileRefused):
        production_guard(role_keys={"relayer": devnet_account(1).key.hex()}, chains_file="c.json")


def _production(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "environment": "production",
        "chains_file": _chains_file(tmp_path),
        "admin_api_key": STRONG_ADMIN,
        "relayer_key": _fresh_key(),
        "quote_signer_key": _fresh_key(),
        "risk_signer_key": _fresh_key(),
        "pii_master_key": secrets.token_hex(32),
        "kyc_webhook_secret": secrets.token_urlsafe(32),
        "http_lenders": [],
        "sanctions_name_list_max_age_days": 7,
        "sanctions_address_list_max_age_days": 7,
        # the identity providers and keys production needs (issue 20 part B's checks)
        "kyc_provider_url": "https://kyc.example/api",
        "mla_provider_url": "https://mla.example/api",
        "mla_provider_secret": secrets.token_urlsafe(32),
        "inputs_hash_key": secrets.token_hex(32),
        "key_store_url": "kms://eu-west-1",
        "creditor_name": "Prairie State Credit Platform, Inc.",  # named by every adverse-action notice
        "creditor_address": "1 Main Street, Springfield, IL 62701",
        "creditor_telephone": "+1 217 555 0142",
    }
    return Settings(**(values | changes))  # type: ignore[arg-type]


def test_settings_use_the_guard(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    assert settings.resolved_outbound_allowed_networks == [], "production allows no internal lender address"
    for index in (0, 1, 2, 3, 19):
        with pytest.raises(ValidationError, match="the relayer key is one of anvil"):
            _production(tmp_path, relayer_key=devnet_account(index).key.hex())
    with pytest.raises(ValidationError, match="devnet chain id 31338"):
        _production(tmp_path, chains_file=_chains_file(tmp_path, 31338))
    with pytest.raises(ValidationError, match="no CREDITMESH_CHAINS_FILE"):
        _production(tmp_path, chains_file=None)
    with pytest.raises(ValidationError, match="admin API key is weak"):
        _production(tmp_path, admin_api_key="cm_admin_changeme")
    assert _production(tmp_path, outbound_allowed_networks=["10.20.0.0/16"]).resolved_outbound_allowed_networks
    for network in ("127.0.0.1/32", "169.254.169.254/32", "0.0.0.0/0", "::/0"):
        with pytest.raises(ValidationError, match="reaches loopback or link-local"):
            _production(tmp_path, outbound_allowed_networks=[network])


def test_a_database_that_still_accepts_the_local_admin_key_is_refused(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'once-local.db'}")
    database.migrate()
    settings = _production(tmp_path)
    refuse_stored_local_admin_key(settings, database)
    ensure_key(database, LOCAL_ADMIN_KEY, ApiRole.ADMIN, None, "bootstrap admin (a local run)")
    with pytest.raises(ProductionProfileRefused, match="still accepts the local admin key"):
        refuse_stored_local_admin_key(settings, database)
    database.dispose()


def test_the_sending_roles_keys_are_guarded_and_optional_in_production(tmp_path: Path) -> None:
    for role, index in (("operator", 4), ("guardian", 5), ("keeper", 10), ("audit_anchor", 11)):
        with pytest.raises(ValidationError, match=f"the {role} key is one of anvil"):
            _production(tmp_path, **{f"{role}_key": devnet_account(index).key.hex()})
    operator_key = _fresh_key()
    signers = role_signers(_production(tmp_path, operator_key=operator_key))
    assert {role: s.address for role, s in signers.items()} == {Role.OPERATOR: Account.from_key(operator_key).address}
    local = role_signers(Settings(environment="local"))
    assert {role: s.address for role, s in local.items()} == {
        Role.OPERATOR: devnet_account(4).address,
        Role.GUARDIAN: devnet_account(5).address,
        Role.KEEPER: devnet_account(10).address,
        Role.AUDIT_ANCHOR: devnet_account(11).address,
    }


def test_every_governance_transaction_refuses_a_devnet_sender_in_production_and_takes_a_key_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Executing a ready operation and submitting a Safe transaction (anyone may send either) are refused with a
    devnet key before anything is read or sent, as proposing, cancelling and pausing are; a key of its own passes.
    The accounts alone are checked: the chains were checked once by the command (``production_guard_chains``), and
    a check of the accounts used to refuse every key in production for "no CREDITMESH_CHAINS_FILE", a file it was
    never given."""
    monkeypatch.setenv("CREDITMESH_ENVIRONMENT", "production")
    monkeypatch.delenv("CREDITMESH_CHAINS_FILE", raising=False)
    devnet = devnet_signer(Role.DEPLOYER)
    governance = Governance([])
    with pytest.raises(ProductionProfileRefused, match=devnet.address) as refused:
        governance.execute("ethereum-local", "0x" + "00" * 32, devnet)
    assert len(refused.value.problems) == 1, refused.value.problems
    with pytest.raises(ProductionProfileRefused, match=devnet.address):
        governance.submit([], [], devnet)
    with pytest.raises(ProductionProfileRefused, match=devnet.address):
        governance.cancel("ethereum-local", "0x" + "00" * 32, devnet)
    governance.submit([], [], LocalSigner(Account.create()))  # nothing to send, nothing refused
    production_guard(environment="production", role_holders={"deployer": Account.create().address})
