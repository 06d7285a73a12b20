"""A database outage at the API (issue 18, degrade don't fail): a real PostgreSQL of the test's own, stopped while
the app serves and started again — a request meanwhile gets a clean 503 problem+json with Retry-After (no 500, no
database host in the answer), and the same process serves again by itself once PostgreSQL is back."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pgserver.postgres_server import get_server

from api import problems
from store.db import Database
from tests.support.services import _sqlalchemy_postgres_url

pytestmark = pytest.mark.integration


def _app(database: Database) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.post("/v1/notes")
    def write_note() -> dict[str, int]:
        with database.unit_of_work() as uow:
            uow.session.execute(sa.text("INSERT INTO notes DEFAULT VALUES"))
            count = uow.session.execute(sa.text("SELECT count(*) FROM notes")).scalar_one()
            uow.commit()
        return {"notes": count}

    return app


def test_requests_during_a_restart_get_503_with_retry_after_then_service_resumes(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg"
    server = get_server(str(pgdata), cleanup_mode="stop")
    url = _sqlalchemy_postgres_url(server.get_uri())
    database = Database(url)
    with database.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE notes (id serial PRIMARY KEY)"))
    client = TestClient(_app(database), raise_server_exceptions=False)
    try:
        assert client.post("/v1/notes").json() == {"notes": 1}

        server.cleanup()  # PostgreSQL stops under the running app
        down = client.post("/v1/notes")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert down.headers["Retry-After"] == str(problems.DATABASE_RETRY_AFTER_SECONDS)
        assert down.json()["type"].endswith("/database-unavailable")
        assert str(pgdata) not in down.text  # nothing of the connection string or its socket

        server = get_server(str(pgdata), cleanup_mode="stop")  # back, on the same data directory
        assert client.post("/v1/notes").json() == {"notes": 2}  # the same engine reconnects by itself
    finally:
        database.engine.dispose()
        server.cleanup()
