"""Structured JSON logs with a correlation id that follows a request into provider calls and transactions, and
with identity values masked (compliance's PiiMaskingFilter)."""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response

from compliance.pii import PiiMaskingFilter
from providers.models import is_valid_correlation_id

CORRELATION_HEADER = "X-Correlation-Id"
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")
PII_FILTER = PiiMaskingFilter()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        if record.exc_info:
            entry["exception"] = PII_FILTER.scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """One JSON handler on the root logger, masking PII before anything is written."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PII_FILTER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def install(app: FastAPI) -> None:
    log = logging.getLogger("creditmesh.http")

    @app.middleware("http")
    async def _correlate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # a caller's id is kept only when it is a plain token (^[A-Za-z0-9-]{1,64}$): it is echoed, logged and sent
        # to lenders, so anything else (non-ASCII, 6,000 characters, CR/LF) is replaced by a fresh one
        given = request.headers.get(CORRELATION_HEADER, "")
        token = correlation_id.set(given if is_valid_correlation_id(given) else str(uuid.uuid4()))
        started = time.perf_counter()
        try:
            response = await call_next(request)
            response.headers[CORRELATION_HEADER] = correlation_id.get()
            log.info(
                "%s %s %d %.1f ms",
                request.method,
                request.url.path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
            return response
        finally:
            correlation_id.reset(token)
