"""Shared fixtures: real PostgreSQL, Redis and anvil devnets started by the test run itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://``) of a real PostgreSQL for this test session."""
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis for this test session; flush what you write or use unique keys."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
