"""The shared PostgreSQL and Redis fixtures start real servers."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def test_postgres_fixture_is_a_real_server(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        assert str(connection.execute(sa.text("select version()")).scalar()).startswith("PostgreSQL")
    engine.dispose()


def test_redis_fixture_is_a_real_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.incr("creditmesh:test:counter") >= 1
    client.close()
