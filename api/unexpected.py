"""The last answer: an error no exception handler maps (a bug, a library raising what nobody expected) leaves the API
as a ``500`` problem+json of type ``internal-error``, not Starlette's ``text/plain`` "Internal Server Error".

Installed inside every other middleware, so that they see an answer like any other: the correlation middleware
(``api.logs``) puts the request's ``X-Correlation-Id`` on it, the idempotency middleware releases the key (a 5xx is
not kept), the body limit still replaces it with its 413 when the body was cut off. Nothing of the error is shown
(its message may name a host, a statement, a secret's shape); the log keeps it, with its traceback, under the
correlation id the answer carries."""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.body_limit import BodyTooLarge
from api.logs import correlation_id
from api.problems import problem

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal-error"
#: what the middlewares outside act on themselves (the body limit's 413), or a client gone (no one to answer)
_NOT_OURS = (BodyTooLarge, ClientDisconnect)


class UnexpectedErrors:
    """Pure ASGI middleware: an exception out of the app before its answer began becomes a 500 problem; one after it
    began (a stream cut off) is raised on, the answer being half sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except _NOT_OURS:
            raise
        except Exception:
            if started:
                raise
            log.exception("unexpected error in %s %s", scope["method"], scope["path"])
            reference = correlation_id.get()
            response = problem(
                500,
                INTERNAL_ERROR,
                "Internal error",
                f"the request failed on our side; quote correlation id {reference} when reporting it",
                scope["path"],
                correlation_id=reference,
            )
            await response(scope, receive, send)
