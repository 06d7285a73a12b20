"""No route pays a worker-thread hop for a dependency: FastAPI runs a plain ``def`` dependency in a thread of its
pool on every request, so every dependency of every route is a coroutine function (or a security scheme, whose
``__call__`` is one)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

import api.routers
from api import metrics

pytestmark = pytest.mark.unit


def _sync_dependencies(dependant: Dependant) -> list[str]:
    found = []
    for sub in dependant.dependencies:
        call = sub.call
        target = call if inspect.isroutine(call) else getattr(call, "__call__", call)  # noqa: B004
        if not inspect.iscoroutinefunction(target):
            found.append(getattr(call, "__qualname__", repr(call)))
        found += _sync_dependencies(sub)
    return found


def test_every_dependency_of_every_route_runs_on_the_event_loop() -> None:
    modules = [importlib.import_module(f"api.routers.{m.name}") for m in pkgutil.iter_modules(api.routers.__path__)]
    routers = [module.router for module in modules if hasattr(module, "router")] + [metrics.router]
    routes = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]
    assert any(route.path == "/v1/credit-requests" for route in routes)
    sync = {f"{route.path}: {name}" for route in routes for name in _sync_dependencies(route.dependant)}
    assert not sync, f"plain def dependencies (a worker-thread hop each): {sorted(sync)}"
