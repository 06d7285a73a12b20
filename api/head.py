"""``HEAD`` wherever ``GET`` (RFC 9110 section 9.3.2): FastAPI's routes answer only the methods they declare, so ``HEAD
/healthz`` or ``HEAD /v1/loans`` was 405. A ``HEAD`` request is served as its ``GET`` and answered with that answer's
status and headers, without its body. The document does not list ``HEAD`` operations: every ``GET`` has one."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Pure ASGI middleware, inside the others (their logs and metrics see ``HEAD``; the routes ``GET``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # a streamed body's parts: none is sent
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, headers_only)
