"""The API's input types admit what its document says and nothing else: every RFC 3339 form a client writes is read
as pydantic read it before, a number (or a string of one) where a date or a moment belongs, which pydantic's lax mode
read as a Unix timestamp, is refused; an integer is a JSON number without a fraction, not true or "30"; a lender's
resilience policy is JSON numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from api.input_types import AwareRfc3339DateTime, JsonInteger, Rfc3339Date, Rfc3339DateTime
from api.loan_schemas import RepaymentIn
from api.routers.providers import RegistrationIn
from api.schemas import PermitIn
from providers.policy import ResiliencePolicy

pytestmark = pytest.mark.unit

DATES = TypeAdapter(Rfc3339Date)
MOMENTS = TypeAdapter(Rfc3339DateTime)
AWARE = TypeAdapter(AwareRfc3339DateTime)
NUMBERS = ["0", "0.5", "1700000000", "20260131", "-1", " 2026-01-31", "2026-01-31\n"]


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ('"2026-01-31T09:00:00Z"', datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ('"2026-01-31t09:00:00.250+02:00"', datetime(2026, 1, 31, 9, 0, 0, 250_000, timezone(timedelta(hours=2)))),
        ('"2026-01-31 09:00:00-05:00"', datetime(2026, 1, 31, 9, tzinfo=timezone(timedelta(hours=-5)))),
    ],
)
def test_rfc_3339_moments_are_read_as_before(text: str, moment: datetime) -> None:
    assert AWARE.validate_json(text) == moment
    assert MOMENTS.validate_json(text) == moment


@pytest.mark.parametrize("text", ['"0001-01-01T00:00:00+00:01"', '"9999-12-31T23:59:59-00:01"'])
def test_a_moment_with_no_utc_time_is_refused_naming_the_range(text: str) -> None:
    """Every moment is compared and stored in UTC: one that has no UTC time was a 500 (OverflowError)."""
    for adapter in (MOMENTS, AWARE):
        with pytest.raises(ValidationError, match="between years 1 and 9999 in UTC"):
            adapter.validate_json(text)


def test_a_moment_without_a_zone_or_a_date_alone_is_read_where_a_zone_may_be_left_out() -> None:
    assert MOMENTS.validate_json('"2026-01-31T09:00:00"') == datetime(2026, 1, 31, 9)
    assert MOMENTS.validate_python("2026-01-31") == datetime(2026, 1, 31)  # a query parameter's text
    with pytest.raises(ValidationError, match="timezone"):
        AWARE.validate_json('"2026-01-31T09:00:00"')


@pytest.mark.parametrize("number", [0, 1.5, 1_700_000_000, True])
def test_a_json_number_is_no_date_and_no_moment(number: object) -> None:
    for adapter in (DATES, MOMENTS, AWARE):
        with pytest.raises(ValidationError, match="must be an RFC 3339"):
            adapter.validate_python(number)


@pytest.mark.parametrize("text", NUMBERS)
def test_a_string_of_a_number_is_no_date_and_no_moment(text: str) -> None:
    for adapter in (DATES, MOMENTS, AWARE):
        with pytest.raises(ValidationError, match="must be an RFC 3339"):
            adapter.validate_python(text)


def test_dates_are_year_month_day() -> None:
    assert DATES.validate_json('"2026-01-31"') == date(2026, 1, 31)
    assert DATES.validate_python(date(2026, 1, 31)) == date(2026, 1, 31)
    with pytest.raises(ValidationError, match="must be an RFC 3339 date"):
        DATES.validate_json('"2026-01-31T00:00:00Z"')
    with pytest.raises(ValidationError):
        DATES.validate_json('"2026-02-30"')  # the shape, not a day: pydantic's own refusal


def test_the_document_still_says_date_and_date_time() -> None:
    assert DATES.json_schema() == {"type": "string", "format": "date"}
    assert AWARE.json_schema() == {"type": "string", "format": "date-time"}


def test_an_integer_is_a_json_number_without_a_fraction() -> None:
    integers = TypeAdapter(JsonInteger)
    assert integers.validate_json("30") == integers.validate_json("30.0") == 30
    for refused in ("true", '"30"', "30.5"):
        with pytest.raises(ValidationError):
            integers.validate_json(refused)
    with pytest.raises(ValidationError, match="not a boolean or a string"):
        integers.validate_python(True)
    assert integers.json_schema() == {"type": "integer"}


def test_a_registrations_resilience_takes_json_numbers_only() -> None:
    """The settings' policy reads numbers from environment strings; a registration's body gives JSON numbers."""
    body = {"provider_id": "lax-bank", "config": {}}
    for field, refused in (("fail_max", "true"), ("burst", '"3"'), ("reset_timeout_seconds", '"1.5"')):
        document = f'{{"provider_id": "lax-bank", "config": {{}}, "resilience": {{"{field}": {refused}}}}}'
        with pytest.raises(ValidationError, match="must be a JSON number") as refusal:
            RegistrationIn.model_validate_json(document)
        assert refusal.value.errors()[0]["loc"] == ("resilience", field)
    taken = RegistrationIn.model_validate(body | {"resilience": {"fail_max": 3, "reset_timeout_seconds": 2}})
    assert taken.resilience is not None
    assert (taken.resilience.fail_max, taken.resilience.reset_timeout_seconds) == (3, 2.0)
    assert isinstance(taken.resilience, ResiliencePolicy)  # what the registry stores and the breakers read
    assert ResiliencePolicy.model_validate({"fail_max": "3"}).fail_max == 3  # the settings' model, unchanged


def test_a_uint256_field_takes_up_to_2_256_minus_1_and_names_the_bound_past_it() -> None:
    """The patterns admit 78 digits, more than a uint256 holds: a repayment's nonce or a permit's value past it was
    a 500 from the ABI encoder; a permit's deadline is a JSON integer held to 2^53 like the repayment's."""
    permit = {
        "value": str(2**256 - 1),
        "deadline": 2_000_000_000,
        "v": 27,
        "r": "0x" + "11" * 32,
        "s": "0x" + "22" * 32,
    }
    assert PermitIn.model_validate(permit).value == str(2**256 - 1)
    repayment = {"amount": "1", "nonce": str(2**256 - 1), "deadline": 1, "signature": "0x" + "33" * 65}
    assert RepaymentIn.model_validate(repayment).nonce == str(2**256 - 1)
    for model, field, value in (
        (PermitIn, "value", str(2**256)),
        (RepaymentIn, "nonce", "9" * 78),
    ):
        base = permit if model is PermitIn else repayment
        with pytest.raises(ValidationError, match="below 2\\^256"):
            model.model_validate(base | {field: value})
    with pytest.raises(ValidationError, match="less than or equal to 9007199254740992"):
        PermitIn.model_validate(permit | {"deadline": 2**256})
