"""The identity a borrower submits (``api.schemas.IdentityIn``), as it is kept: the country written as the account's
jurisdiction is, the names normalized, whatever blanks and widths were typed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.schemas import IdentityIn

pytestmark = pytest.mark.unit


def _identity(**changes: Any) -> dict[str, Any]:
    return {"first_name": "Grace", "last_name": "Hopper", "date_of_birth": "1985-12-10", "country": "US-FL"} | changes


@pytest.mark.parametrize(("typed", "kept"), [("US-FL", "US-FL"), ("us-fl", "US-FL"), ("gb", "GB"), ("Ua-43", "UA-43")])
def test_the_country_is_kept_upper_case(typed: str, kept: str) -> None:
    assert IdentityIn.model_validate(_identity(country=typed)).country == kept


@pytest.mark.parametrize("country", ["US-MS ", " US-MS", "US_MS", "USMS", "U", "US-", "US-FLOR", "ÜS"])
def test_a_country_not_written_as_a_code_is_refused(country: str) -> None:
    with pytest.raises(ValidationError, match="country"):
        IdentityIn.model_validate(_identity(country=country))


def test_the_names_are_kept_normalized() -> None:
    identity = IdentityIn.model_validate(_identity(first_name=" Grace", last_name="Ｈｏｐｐｅｒ  "))
    assert (identity.first_name, identity.last_name) == ("Grace", "Hopper")
    assert IdentityIn.model_validate(_identity(last_name="Höpper")).last_name == "Höpper"
    assert IdentityIn.model_validate(_identity(last_name="  ")).last_name == "  "  # no name: the provider refuses it
