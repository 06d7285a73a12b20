"""Dates and times as the API documents them: RFC 3339 text (``format: date`` / ``date-time``), nothing else.

Pydantic's lax mode also reads a number, or a string of one, as a Unix timestamp: ``"expires_at": 0`` issued a key
that expired in 1970, ``?decided_before=0.5`` listed decisions before 1970, and ``"expires_on": 0`` gave a document
1970-01-01 — each a request the document says is invalid, answered as if it were valid (schemathesis's ST201). These
types refuse any input that is not ISO 8601 text before pydantic parses it, so such a request is a 422 naming the
field; their JSON Schema stays the plain ``date`` / ``date-time`` string."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

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


#: a calendar date written YYYY-MM-DD
Rfc3339Date = Annotated[date, BeforeValidator(_date_text)]
#: a moment written as RFC 3339 text (a date alone is its midnight; where a zone may be left out, the caller says)
Rfc3339DateTime = Annotated[datetime, BeforeValidator(_date_time_text)]
#: a moment written as RFC 3339 text with its zone
AwareRfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
