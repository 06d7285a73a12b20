"""What the API's input types admit: exactly what its document says, nothing pydantic's lax mode reads besides.

Lax mode read a number, or a string of one, as a Unix timestamp where the document says an RFC 3339 date or
date-time (``"expires_at": 0`` issued a key that expired in 1970, ``?decided_before=0.5`` listed decisions before
1970, ``"expires_on": 0`` gave a document 1970-01-01), and ``true`` or ``"30"`` as an integer (``"term_days": true``
asked for a one-day loan): each a request the document calls invalid, answered as if valid (schemathesis's ST201).
These types refuse such input before pydantic reads it, so the request is a 422 naming the field; their JSON Schema
stays the plain ``date`` / ``date-time`` string and ``integer``. A JSON boolean is ``pydantic.StrictBool``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from annotated_types import Ge
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}.*)?", re.DOTALL)


def _date_text(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value
    raise ValueError("must be an RFC 3339 date (YYYY-MM-DD), such as 2026-01-31")


def _date_time_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_TIME.fullmatch(value):
        return value
    raise ValueError("must be an RFC 3339 date-time, such as 2026-01-31T09:00:00Z")


def in_utc_range(moment: datetime) -> datetime:
    """``moment``, refused when it has no UTC time (``0001-01-01T00:00:00+00:01`` is before year 1 there): every
    moment is compared and stored in UTC, where such a one raised ``OverflowError``, a 500."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError as err:
            raise ValueError("must be a moment between years 1 and 9999 in UTC") from err
    return moment


#: a calendar date written YYYY-MM-DD
Rfc3339Date = Annotated[date, BeforeValidator(_date_text)]
#: a moment written as RFC 3339 text (a date alone is its midnight; where a zone may be left out, the caller says)
Rfc3339DateTime = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(in_utc_range)]
#: a moment written as RFC 3339 text with its zone
AwareRfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(in_utc_range)]


def _below_2_256(text: str) -> str:
    if int(text) >= 2**256:  # the pattern admits 78 digits; the ABI encoder refused the rest with a 500
        raise ValueError("must be below 2^256 (a uint256)")
    return text


#: a uint256 written as decimal digits (the field's pattern says how many)
Uint256Text = Annotated[str, AfterValidator(_below_2_256)]


def _integer(value: Any) -> Any:
    if isinstance(value, bool | str):  # JSON's true, or a string of digits: not what the document says
        raise ValueError("must be a JSON integer, not a boolean or a string")
    return value


def json_number(value: Any) -> Any:
    """A ``mode="before"`` check for a model whose every field is a number: a JSON boolean or a string is refused."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number, not a boolean or a string")
    return value


#: a JSON integer (a number with no fraction; a boolean or a string of digits is refused)
JsonInteger = Annotated[int, BeforeValidator(_integer)]
#: a JSON integer >= 0; the bound stands before the check, so the document says ``minimum: 0`` even where the type is
#: in a union (``Field(ge=0)`` on ``JsonInteger | None`` wrote ``ge``, which no JSON Schema reader knows)
NonNegativeJsonInteger = Annotated[int, Ge(0), BeforeValidator(_integer)]
