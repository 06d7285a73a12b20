"""A database URL SQLAlchemy cannot parse is refused when the settings are read, naming the setting, never echoing
the URL (it may carry a password)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.settings import Settings

pytestmark = pytest.mark.unit


def _one(field: str, value: str) -> dict[str, Any]:
    return {field: value}


@pytest.mark.parametrize("field", ["database_url", "database_readonly_url", "key_store_url"])
def test_a_url_that_is_not_a_database_url_is_refused(field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**_one(field, "sqlite:/secret-pw@cm.db"))
    (error,) = refused.value.errors()
    assert error["loc"] == (field,)
    assert "not a database URL" in error["msg"]
    assert "secret-pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("database_url", "postgresql://cm@db.internal/creditmesh"),
        ("database_url", "sqlite:///tmp/cm.db"),
        ("database_readonly_url", "postgresql+psycopg://reader@replica/creditmesh"),
        ("key_store_url", "kms://eu-west-1"),
        ("key_store_url", "sqlite:///tmp/keys.db"),
    ],
)
def test_database_urls_and_the_key_stores_kms_are_accepted(field: str, url: str) -> None:
    assert getattr(Settings(**_one(field, url)), field) == url
