"""Key management (issue 17): an admin issues keys for every role through ``/v1/api-keys`` (in-process ASGI, a real
SQLite database and the real routers), lists them a page at a time, sets an expiry, revokes; each key is let through
by the one role check (``api.deps.require``) only for its role; rotating ``CREDITMESH_ADMIN_API_KEY`` revokes the
previous bootstrap key; keys issued before key management keep working; ``creditmesh keys …`` does the same."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import APIRouter, FastAPI
from sqlalchemy import select, text

from api import problems
from api.auth import Principal, Role, authenticate, ensure_bootstrap_admin, hash_key, list_keys, lookup
from api.cli import main as cli
from api.deps import AdminPrincipal, AuditorPrincipal, BorrowerPrincipal, require
from api.routers import api_keys
from api.settings import Settings
from chain.config import ChainConfig
from chain.deployment import DeployedContract, DeploymentRecord
from store.api import ApiKeyRepository, BorrowerRow
from store.compliance import AuditEntryRow
from store.db import MIGRATIONS_DIR, Database
from store.providers import ProviderRegistrationRow

pytestmark = pytest.mark.integration
on_loop = pytest.mark.asyncio(loop_scope="session")

ADMIN = "cm_admin_key_management_tests"
BORROWER_ID = str(uuid.uuid4())

probe = APIRouter()


@probe.get("/probe/admin")
async def admin_probe(principal: AdminPrincipal) -> dict[str, Any]:
    return {"role": principal.role, "key_id": principal.key_id}


@probe.get("/probe/auditor")
async def auditor_probe(principal: AuditorPrincipal) -> dict[str, Any]:
    return {"role": principal.role}


@probe.get("/probe/borrower")
async def borrower_probe(principal: BorrowerPrincipal) -> dict[str, Any]:
    return {"role": principal.role, "subject_id": principal.subject_id}


@probe.get("/probe/provider")
async def provider_probe(principal: Any = require(Role.PROVIDER)) -> dict[str, Any]:  # noqa: B008
    assert isinstance(principal, Principal)
    return {"role": principal.role, "subject_id": principal.subject_id}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    database.migrate()
    ensure_bootstrap_admin(database, ADMIN)
    with database.unit_of_work() as uow:
        wallet = "0x" + "11" * 20
        uow.session.add(BorrowerRow(id=BORROWER_ID, wallet_address=wallet, jurisdiction="US-FL", created_at=_now()))
        uow.commit()
    app = FastAPI()
    problems.install(app)
    app.include_router(api_keys.router)
    app.include_router(probe)
    app.state.platform = SimpleNamespace(database=database, providers={"sim-bank": object()}, settings=Settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test", headers={"X-API-Key": ADMIN}) as c:
        yield c, database
    database.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


async def _issue(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/api-keys", json={"label": "test"} | body)
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


@on_loop
async def test_an_admin_issues_keys_for_every_role_and_each_passes_only_its_role_check(
    setup: tuple[httpx.AsyncClient, Database],
) -> None:
    client, _ = setup
    keys = {
        "admin": await _issue(client, role="admin"),
        "auditor": await _issue(client, role="auditor", label="external auditor"),
        "borrower": await _issue(client, role="borrower", subject_id=BORROWER_ID),
        "provider": await _issue(client, role="provider", subject_id="sim-bank"),
    }
    for role, issued in keys.items():
        assert issued["role"] == role
        assert issued["state"] == "active"
        assert issued["id"].startswith("key_")
        assert issued["key"].startswith(f"cm_{role}_")
        for probed in ("admin", "auditor", "borrower", "provider"):
            answer = await client.get(f"/probe/{probed}", headers={"X-API-Key": issued["key"]})
            allowed = probed == role or (probed == "auditor" and role == "admin")
            assert answer.status_code == (200 if allowed else 403), (role, probed, answer.text)
    borrower = await client.get("/probe/borrower", headers={"X-API-Key": keys["borrower"]["key"]})
    assert borrower.json()["subject_id"] == BORROWER_ID
    admin = await client.get("/probe/admin", headers={"X-API-Key": keys["admin"]["key"]})
    assert admin.json()["key_id"] == keys["admin"]["id"]

    one = await client.get(f"/v1/api-keys/{keys['auditor']['id']}")
    assert one.status_code == 200
    assert one.json()["label"] == "external auditor"
    assert "key" not in one.json()
    # only admins manage keys
    refused = await client.get("/v1/api-keys", headers={"X-API-Key": keys["auditor"]["key"]})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == problems.PROBLEM_JSON


@on_loop
async def test_issuing_refuses_what_it_cannot_honour(setup: tuple[httpx.AsyncClient, Database]) -> None:
    client, _ = setup
    past = (_now() - timedelta(minutes=1)).isoformat()
    cases = [
        ({"role": "borrower"}, 422, "subject_id"),  # the document says so: borrower and provider keys name one
        ({"role": "auditor", "subject_id": BORROWER_ID}, 422, "subject_id"),  # admin and auditor keys name none
        ({"role": "admin", "expires_at": "2030-01-01T00:00:00"}, 422, "timezone"),
        ({"role": "root"}, 422, "role"),
        ({"role": "borrower", "subject_id": "not-a-borrower"}, 404, "no borrower"),
        ({"role": "provider", "subject_id": "no-such-bank"}, 404, "no provider"),
        # a key issued expired would never authenticate: refused, naming the field, rather than issued useless
        ({"role": "admin", "expires_at": past}, 422, "expires_at: Value error, already past"),
    ]
    for body, status, reason in cases:
        response = await client.post("/v1/api-keys", json={"label": "x"} | body)
        assert response.status_code == status, (body, response.text)
        assert reason in response.json()["detail"], (body, response.json())
    listed = (await client.get("/v1/api-keys")).json()["items"]
    assert [key["bootstrap"] for key in listed] == [True], "nothing issued but the bootstrap admin key"
    assert (await client.get("/v1/api-keys/key_0000000000000000")).status_code == 404


@on_loop
async def test_listing_pages_newest_first_without_revoked_keys_unless_asked(
    setup: tuple[httpx.AsyncClient, Database],
) -> None:
    client, _ = setup
    issued = [await _issue(client, role="auditor", label=f"auditor {n}") for n in range(5)]
    assert (await client.delete(f"/v1/api-keys/{issued[0]['id']}")).status_code == 200

    seen: list[dict[str, Any]] = []
    url: str | None = "/v1/api-keys?role=auditor&limit=2"
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        seen += body["items"]
        url = body["next"]
    assert [item["id"] for item in seen] == [key["id"] for key in reversed(issued[1:])]
    assert all("key" not in item for item in seen)

    everything = (await client.get("/v1/api-keys?include_revoked=true&limit=200")).json()["items"]
    states = {item["id"]: item["state"] for item in everything}
    assert states[issued[0]["id"]] == "revoked"
    assert sum(1 for item in everything if item["bootstrap"]) == 1
    assert (await client.get("/v1/api-keys?cursor=garbage")).status_code == 400


@on_loop
async def test_expiry_and_revocation_stop_a_key(setup: tuple[httpx.AsyncClient, Database]) -> None:
    client, database = setup
    issued = await _issue(client, role="auditor")
    key, key_id = issued["key"], issued["id"]
    soon = _now() + timedelta(hours=1)
    patched = await client.patch(f"/v1/api-keys/{key_id}", json={"expires_at": soon.isoformat()})
    assert patched.status_code == 200, patched.text
    assert datetime.fromisoformat(patched.json()["expires_at"]) == soon
    assert (await client.get("/probe/auditor", headers={"X-API-Key": key})).status_code == 200
    # an hour later the key no longer authenticates
    assert authenticate(database, key, now=soon - timedelta(seconds=1)).role is Role.AUDITOR
    assert lookup(database, key) is not None
    with database.unit_of_work() as uow:
        row = ApiKeyRepository(uow.session).by_id(key_id)
        assert row is not None
        row.expires_at = _now() - timedelta(seconds=1)
        uow.commit()
    expired = await client.get("/probe/auditor", headers={"X-API-Key": key})
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    assert (await client.get(f"/v1/api-keys/{key_id}")).json()["state"] == "expired"
    # clearing the expiry brings it back; revoking stops it for good
    cleared = await client.patch(f"/v1/api-keys/{key_id}", json={"expires_at": None})
    assert cleared.json()["state"] == "active"
    assert (await client.get("/probe/auditor", headers={"X-API-Key": key})).status_code == 200
    revoked = await client.delete(f"/v1/api-keys/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    refused = await client.get("/probe/auditor", headers={"X-API-Key": key})
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert refused.headers["www-authenticate"].startswith("ApiKey")
    again = await client.delete(f"/v1/api-keys/{key_id}")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    conflict = await client.patch(f"/v1/api-keys/{key_id}", json={"expires_at": soon.isoformat()})
    assert conflict.status_code == 409
    other = await _issue(client, role="auditor")
    past = await client.patch(f"/v1/api-keys/{other['id']}", json={"expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 200
    assert past.json()["state"] == "expired"  # expired now, and back with a later expiry or none


@on_loop
async def test_rotating_the_bootstrap_admin_key_revokes_the_previous_one(
    setup: tuple[httpx.AsyncClient, Database],
) -> None:
    client, database = setup
    issued_admin = await _issue(client, role="admin")
    assert ensure_bootstrap_admin(database, ADMIN) == []  # a restart with the same setting changes nothing
    rotated = "cm_admin_rotated_" + uuid.uuid4().hex
    revoked = ensure_bootstrap_admin(database, rotated)
    assert len(revoked) == 1
    assert (await client.get("/probe/admin")).status_code == 401  # the previous bootstrap key
    assert (await client.get("/probe/admin", headers={"X-API-Key": rotated})).status_code == 200
    # keys an admin issued are not bootstrap keys: they survive the rotation
    assert (await client.get("/probe/admin", headers={"X-API-Key": issued_admin["key"]})).status_code == 200
    assert ensure_bootstrap_admin(database, rotated) == []


@on_loop
async def test_every_change_of_a_key_is_in_the_audit_log_with_the_admin_who_made_it(
    setup: tuple[httpx.AsyncClient, Database],
) -> None:
    """Issued, given an expiry, revoked: one audit entry each, naming the admin's key. Before, issuance named no
    one and neither an expiry nor a revocation was in the audit log; a rotation's revocation names the platform."""
    client, database = setup
    me = (await client.get("/probe/admin")).json()["key_id"]
    issued = await _issue(client, role="auditor", label="audited")
    key_id = issued["id"]
    assert (
        await client.patch(f"/v1/api-keys/{key_id}", json={"expires_at": "2099-01-01T00:00:00Z"})
    ).status_code == 200
    assert (await client.delete(f"/v1/api-keys/{key_id}")).status_code == 200
    assert (await client.delete(f"/v1/api-keys/{key_id}")).status_code == 200  # idempotent: one entry
    with database.unit_of_work() as uow:
        rows = uow.session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.id)).all()
        entries = [(row.kind, row.data.get("by")) for row in rows if row.data.get("keyId") == key_id]
    assert entries == [
        ("key-issued", f"admin:{me}"),
        ("key-expiry-set", f"admin:{me}"),
        ("key-revoked", f"admin:{me}"),
    ]

    rotated = ensure_bootstrap_admin(database, "cm_admin_rotated_" + uuid.uuid4().hex)
    with database.unit_of_work() as uow:
        row = uow.session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.kind == "key-revoked").order_by(AuditEntryRow.id.desc())
        ).first()
        assert row is not None
        assert (row.data["keyId"], row.data["by"]) == (rotated[0], "platform:bootstrap-rotation")


def test_a_process_still_on_the_old_key_during_a_rolling_rotation_leaves_the_new_one_working(tmp_path: Path) -> None:
    """K1, then K2 (revokes K1), then a late or restarted process still set to K1, then K2 again: K2 stays the
    admin's way in. Before, K1's start revoked K2, K1 stayed revoked, and no bootstrap key was left."""
    database = Database(f"sqlite:///{tmp_path / 'rolling.db'}")
    database.migrate()
    old, new = "cm_admin_old_" + uuid.uuid4().hex, "cm_admin_new_" + uuid.uuid4().hex
    try:
        ensure_bootstrap_admin(database, old)
        first = lookup(database, old)
        assert first is not None
        assert ensure_bootstrap_admin(database, new) == [first.key_id]
        assert ensure_bootstrap_admin(database, old) == []  # the late process revokes nothing
        assert lookup(database, old) is None
        assert lookup(database, new) is not None
        assert ensure_bootstrap_admin(database, new) == []
        assert lookup(database, new) is not None
    finally:
        database.dispose()


def test_keys_issued_before_key_management_keep_working_and_the_bootstrap_key_is_marked(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0012_accepts")
        insert = text(
            "INSERT INTO api_keys (key_hash, role, subject_id, label, created_at) VALUES (:h, :r, NULL, :l, :c)"
        )
        connection.execute(insert, {"h": hash_key("old-admin"), "r": "admin", "l": "bootstrap admin", "c": _now()})
        connection.execute(insert, {"h": hash_key("old-auditor"), "r": "auditor", "l": "auditor", "c": _now()})
    database.migrate()
    try:
        assert lookup(database, "old-auditor") == Principal(Role.AUDITOR, None, "key_" + hash_key("old-auditor")[:16])
        assert ensure_bootstrap_admin(database, "new-admin") == ["key_" + hash_key("old-admin")[:16]]
        assert lookup(database, "old-admin") is None
        assert lookup(database, "old-auditor") is not None
    finally:
        database.dispose()


def test_the_keys_command_issues_lists_expires_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    cli(["keys", "issue", "--role", "auditor", "--label", "audit firm", "--database-url", url])
    key, id_line = capsys.readouterr().out.splitlines()
    key_id = id_line.split()[1]
    database = Database(url)
    try:
        assert lookup(database, key) == Principal(Role.AUDITOR, None, key_id)
        cli(["keys", "expire", key_id, "--in-days", "30", "--database-url", url])
        assert "active" in capsys.readouterr().out
        cli(["keys", "list", "--role", "auditor", "--database-url", url])
        listed = capsys.readouterr().out
        assert key_id in listed
        assert "audit firm" in listed
        assert key not in listed
        cli(["keys", "revoke", key_id, "--database-url", url])
        assert "revoked" in capsys.readouterr().out
        assert lookup(database, key) is None
        cli(["keys", "list", "--database-url", url])
        assert key_id not in capsys.readouterr().out
        with pytest.raises(SystemExit, match="subject"):
            cli(["keys", "issue", "--role", "borrower", "--database-url", url])
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("arguments", "refused"),
    [
        (["--role", "auditor", "--expires-in-days", "-5"], "must be more than 0"),  # an admin key expired at birth
        (["--role", "auditor", "--expires-in-days", "1e9"], "at most 36500 days"),  # was an OverflowError
        (["--role", "auditor", "--expires-in-days", "nan"], "must be more than 0"),
        (["--role", "auditor", "--expires-at", "garbage"], "is not an RFC 3339 moment"),  # was a ValueError
        (["--role", "auditor", "--label", "x" * 129], "a label is 1 to 128 characters"),
        (["--role", "borrower", "--subject", "nobody"], "no borrower 'nobody'"),  # the API answers 404
        (["--role", "provider", "--subject", "nope"], "no provider 'nope'"),  # issued before; the API answers 404
        (["--role", "provider", "--subject", "gone-bank"], "provider 'gone-bank' was deregistered"),  # the API: 404
        (["--role", "borrower"], "a borrower key acts for a borrower: give --subject"),  # said "give subject_id"
        (["--role", "auditor", "--expires-at", "2001-01-01T00:00:00Z"], "is already past"),  # the API answers 422
    ],
)
def test_the_keys_command_refuses_what_the_api_refuses_and_issues_nothing(
    arguments: list[str], refused: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _deregistered_provider(url, "gone-bank")
    with pytest.raises(SystemExit) as exited:
        cli(["keys", "issue", *arguments, "--database-url", url])
    said = f"{exited.value.code} {capsys.readouterr().err}"  # argparse prints its refusal and exits 2
    assert refused in said, said
    database = Database(url)
    database.migrate()
    try:
        assert list_keys(database, None, 10, None) == [], "nothing issued"
    finally:
        database.dispose()


def _deregistered_provider(url: str, provider_id: str) -> None:
    """A provider registered through the API and deregistered since: its row kept, disabled."""
    database = Database(url)
    database.migrate()
    try:
        with database.unit_of_work() as uow:
            uow.session.add(
                ProviderRegistrationRow(
                    provider_id=provider_id, kind="http", config={}, enabled=False, created_at=datetime.now(UTC)
                )
            )
            uow.commit()
    finally:
        database.dispose()


def test_the_keys_command_issues_a_provider_key_for_a_provider_the_platform_knows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same providers as the API's: the configured HTTP lenders, the deployed pools and the registrations."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CREDITMESH_DATA_DIR", str(tmp_path / "nothing-deployed"))
    lender = {"provider_id": "bank-a", "base_url": "http://127.0.0.1:9", "secret": "bank-a-webhook-secret-0123456789"}
    monkeypatch.setenv("CREDITMESH_HTTP_LENDERS", json.dumps([lender]))
    cli(["keys", "issue", "--role", "provider", "--subject", "bank-a", "--database-url", url])
    key, _ = capsys.readouterr().out.splitlines()
    database = Database(url)
    try:
        principal = lookup(database, key)
        assert principal is not None
        assert (principal.role, principal.subject_id) == (Role.PROVIDER, "bank-a")
    finally:
        database.dispose()
    with pytest.raises(SystemExit, match="no provider 'pool:ethereum-local:USDC'"):  # nothing deployed yet
        cli(["keys", "issue", "--role", "provider", "--subject", "pool:ethereum-local:USDC", "--database-url", url])
    with pytest.raises(SystemExit, match="no provider 'sim-bank'"):  # the default lenders are not configured here
        cli(["keys", "issue", "--role", "provider", "--subject", "sim-bank", "--database-url", url])

    chain = ChainConfig(name="ethereum-local", chain_id=31337, rpc_urls=["http://127.0.0.1:9"], block_time_seconds=1)
    (tmp_path / "chains.json").write_text(json.dumps([chain.model_dump(mode="json")]))
    pool = DeployedContract(artifact="LendingPool", address="0x" + "11" * 20, tx_hash="0x" + "22" * 32, block=1)
    record = DeploymentRecord(
        chain_name=chain.name, chain_id=31337, profile="devnet", contracts={"LendingPool:USDC": pool}
    )
    record.save(tmp_path / "deployments" / f"{chain.name}.json")
    monkeypatch.setenv("CREDITMESH_CHAINS_FILE", str(tmp_path / "chains.json"))
    monkeypatch.setenv("CREDITMESH_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    cli(["keys", "issue", "--role", "provider", "--subject", "pool:ethereum-local:USDC", "--database-url", url])
    assert capsys.readouterr().out.startswith("cm_provider_")
