"""Structured JSON logs with a correlation id that follows a request into provider calls and transactions.

Call sites keep ``logging.getLogger``. Personal values are masked where they are logged: pass them as
``compliance.pii.Masked`` (in the message arguments or in ``extra=``); ``extra=`` fields come out as the entry's
``fields``. The handler's ``PiiMaskingFilter`` masks shaped values (e-mails, SSNs, dates) as a safety net; nothing
in here is extended by what a borrower submits."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from compliance import random_ids
from compliance.pii import PiiMaskingFilter, scrub
from providers.models import is_valid_correlation_id

CORRELATION_HEADER = "X-Correlation-Id"
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")
# what every LogRecord has; anything else on a record came from ``extra=`` and is a structured field
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _field(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))  # ``Masked`` renders masked; other text gets the shaped-value net


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        fields = {key: _field(value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        if fields:
            entry["fields"] = fields
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """One JSON handler on the root logger, its safety-net filter before anything is written."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PiiMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request it sends at INFO ("HTTP Request: POST … 200 OK"): three JSON lines per credit request,
    # ~4% of the quote path's CPU, saying less than the provider outcome recorded with the request (latency,
    # outcome, detail). Its failures reach us as exceptions, logged where they are handled. At DEBUG it speaks.
    logging.getLogger("httpx").setLevel(logging.NOTSET if level <= logging.DEBUG else logging.WARNING)


def fresh_correlation_id() -> str:
    """A random UUID (version 4) cut from a batch of ``os.urandom`` (``compliance.random_ids``), not ``uuid.uuid4``:
    that reads ``os.urandom`` for each id, a system call that lets go of the GIL on the event loop's thread once per
    request — the loop then waits to get it back from whichever worker thread took it."""
    return str(random_ids.uuid4())


class CorrelationMiddleware:
    """Every request under a correlation id (the caller's when it is a plain token: ^[A-Za-z0-9-]{1,64}$; it is
    echoed, logged and sent to lenders, so anything else — non-ASCII, 6,000 characters, CR/LF — is replaced by a
    fresh one), echoed in the response's header, and one log line per request with its status and time.

    A plain ASGI middleware, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs the rest of the
    app in a task group of its own and streams every response through memory streams, a cost on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("creditmesh.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(CORRELATION_HEADER, "")
        value = given if is_valid_correlation_id(given) else fresh_correlation_id()
        token = correlation_id.set(value)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = value
                self.log.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    scope["path"],
                    message["status"],
                    (time.perf_counter() - started) * 1000,
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


def install(app: FastAPI) -> None:
    app.add_middleware(CorrelationMiddleware)
