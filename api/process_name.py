"""The name of the API process that answered, as a response header (``X-Creditmesh-Process``), when
``CREDITMESH_PROCESS_NAME`` gives one: ``creditmesh serve --processes N`` names its processes ``api-1`` … so that a
client, a benchmark or a test behind the balancer sees which one served it. Unset, no header."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROCESS_HEADER = b"x-creditmesh-process"


class ProcessName:
    """Pure ASGI middleware: adds the header to every HTTP response once the platform's settings name the process."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        platform = getattr(scope["app"].state, "platform", None) if "app" in scope else None
        name: str = platform.settings.process_name if platform is not None else ""
        if scope["type"] != "http" or not name:
            await self.app(scope, receive, send)
            return
        value = name.encode()

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (PROCESS_HEADER, value)]
            await send(message)

        await self.app(scope, receive, named)
