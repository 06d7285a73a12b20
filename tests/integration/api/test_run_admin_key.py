"""``creditmesh run`` (``make run``) with a bootstrap admin key an admin revoked, against the API's real key check
over HTTP (a real SQLite database): it stops with one line saying to set ``CREDITMESH_ADMIN_API_KEY`` to a live admin
key, no traceback; a live admin key passes, and a borrower's key is refused as no admin's. Before (fixed 2026-11-29)
the run died in its journey with ``httpx.HTTPStatusError: 401`` and the whole platform stopped."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI

from api import auth, problems
from api.auth import Role
from api.cli.run import require_live_admin_key
from api.routers import api_keys
from chain.devnet import free_port
from store.db import Database
from tests.support.served import served

pytestmark = pytest.mark.integration

BOOTSTRAP = "cm_admin_bootstrap_key_of_an_earlier_run"


def test_a_revoked_bootstrap_key_stops_the_run_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    database.migrate()
    auth.ensure_bootstrap_admin(database, BOOTSTRAP)
    live_admin = auth.issue_key(database, Role.ADMIN, None, "the admin who revoked it")
    borrower = auth.issue_key(database, Role.BORROWER, "b-1", "a borrower")
    (bootstrap,) = [info for info in auth.list_keys(database, None, 10, Role.ADMIN, False) if info.bootstrap]
    auth.revoke(database, bootstrap.key_id, actor="admin:someone")
    auth.ensure_bootstrap_admin(database, BOOTSTRAP)  # the next start with the same setting: it stays revoked
    app = FastAPI()
    problems.install(app)
    app.include_router(api_keys.router)
    app.state.platform = SimpleNamespace(database=database)
    try:
        with served(app, free_port()) as api_url:
            with pytest.raises(SystemExit) as ended:
                require_live_admin_key(api_url, BOOTSTRAP)
            assert ended.value.code == 1
            said = capsys.readouterr().err
            assert said.count("\n") == 1, said  # one line
            assert said.startswith("creditmesh: CREDITMESH_ADMIN_API_KEY is not a live API key here (")
            assert "Set CREDITMESH_ADMIN_API_KEY to a live admin key" in said
            assert "Traceback" not in said
            require_live_admin_key(api_url, live_admin)  # passes: the run goes on
            with pytest.raises(SystemExit):
                require_live_admin_key(api_url, borrower)
            assert "CREDITMESH_ADMIN_API_KEY is not an admin's key (the API answered 403" in capsys.readouterr().err
    finally:
        database.dispose()
