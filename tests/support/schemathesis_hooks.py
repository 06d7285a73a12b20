"""schemathesis hooks for the API's fuzz runs (``SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks``).

A generated ``Idempotency-Key`` is a fresh UUID in each request that carries a well-formed one: schemathesis would
send the same short key ("0") with every body, which the API rightly answers 422 (a key reused with another
request), so every creating operation would look as if it refused valid input. Malformed keys (negative cases) are
sent as generated. ``tests/integration/test_idempotency.py`` tests the replay, reuse and concurrency answers."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_WELL_FORMED = re.compile(r'"?[!#-~]{1,255}"?')


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    headers = case.headers
    if headers is not None:
        for name in list(headers):
            if name.lower() == "idempotency-key" and _WELL_FORMED.fullmatch(str(headers[name])):
                headers[name] = str(uuid.uuid4())
    return case
