"""schemathesis hooks for the API's fuzz runs (``SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks``).

A generated ``Idempotency-Key`` is a fresh UUID in each request that carries a well-formed one: schemathesis would
send the same short key ("0") with every body, which the API rightly answers 422 (a key reused with another
request), so every creating operation would look as if it refused valid input. Malformed keys (negative cases) are
sent as generated. ``tests/integration/test_idempotency.py`` tests the replay, reuse and concurrency answers.

A new API key's ``expires_at`` must be later than now, which a JSON Schema cannot say: a well-formed one already past
is moved a year ahead (malformed ones are sent as generated); ``tests/integration/test_api_keys.py`` tests the 422."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from pydantic import TypeAdapter, ValidationError

from api.input_types import AwareRfc3339DateTime

_WELL_FORMED = re.compile(r'"?[!#-~]{1,255}"?')


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    headers = case.headers
    if headers is not None:
        for name in list(headers):
            if name.lower() == "idempotency-key" and _WELL_FORMED.fullmatch(str(headers[name])):
                headers[name] = str(uuid.uuid4())
    body = case.body
    issuing = case.method.upper() == "POST" and case.operation.path == "/v1/api-keys"
    if issuing and isinstance(body, dict) and "expires_at" in body:
        body["expires_at"] = _later_than_now(body["expires_at"])
    return case


_MOMENT: TypeAdapter[datetime] = TypeAdapter(AwareRfc3339DateTime)


def _later_than_now(value: Any) -> Any:
    """A moment the API reads (``AwareRfc3339DateTime``) that is already past, a year from now instead; anything
    else (null, a malformed moment: a negative case) as it is."""
    try:
        moment = _MOMENT.validate_python(value)
    except ValidationError:
        return value
    if moment > datetime.now(UTC):
        return value
    return (datetime.now(UTC) + timedelta(days=365)).isoformat()
