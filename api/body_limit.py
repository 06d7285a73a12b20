"""A cap on every request body, enforced before anything reads it: FastAPI parses a JSON body before the API-key
dependency runs, so without a cap anyone could make the service buffer a body of any size. A declared
``Content-Length`` over the cap is answered 413 at once; a chunked body is counted as it arrives and cut off."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_BASE, PROBLEM_JSON

#: the default cap (the largest legitimate body, a credit request with a credit profile, is a few KiB)
MAX_REQUEST_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    """Raised into the app by the capped ``receive``: the middleware answers 413 (``api.unexpected`` lets it by)."""


class BodyLimit:
    """Pure ASGI middleware (no buffering of its own): 413 problem+json past ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        too_large = started = replaced = False

        async def counted() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            # FastAPI turns an error while reading the body into its own 400: answer 413 in its place
            nonlocal started, replaced
            if too_large and not started and message["type"] == "http.response.start":
                started = replaced = True
                await self._refuse(scope, send)
            if replaced:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes} bytes"
        body = json.dumps(
            {
                "type": PROBLEM_BASE + "body-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": detail,
                "instance": scope.get("path", ""),
            }
        ).encode()
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def capped_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is (declared or found) larger than ``limit``: a signed webhook's body read
    before any HMAC, under a cap of its own below the app's."""
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
