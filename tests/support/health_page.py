"""Admin ``GET /health`` of a platform built by a test (a namespace with ``chains`` and ``compliance``), over
in-process HTTP: the page as an admin reads it."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from api import problems
from api.auth import Principal, Role
from api.deps import get_principal
from api.routers import health


async def admin_health_page(platform: Any) -> dict[str, Any]:
    """The page ``GET /health`` answers an admin on ``platform`` (always 200: a sick part is said, not raised)."""
    app = FastAPI()
    problems.install(app)
    app.include_router(health.router)
    app.state.platform = platform
    app.dependency_overrides[get_principal] = lambda: Principal(Role.ADMIN, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        response = await http.get("/health")
    assert response.status_code == 200
    page: dict[str, Any] = response.json()
    return page
