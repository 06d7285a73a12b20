"""A local service (``creditmesh run``'s API, simulated lenders and identity providers) whose port another program
already listens on is refused before it starts, naming the port: that program would otherwise answer the service's
health check, and the run would go on talking to it while the service itself failed to bind."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import replace

import pytest

from api.local_platform import ServicePorts, ServicePortTaken, api_service, simulators
from chain.devnet import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def other_program() -> Iterator[int]:
    """A development server answering every GET with 404 (< 500, as a health check accepts), on a port of its own."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("service", ["api", "lenders", "identity"])
def test_a_service_whose_port_another_program_holds_is_refused_naming_the_port(
    other_program: int, service: str
) -> None:
    starting: AbstractContextManager[object]
    if service == "api":
        starting = api_service(other_program, timeout=30)
    else:
        ports = ServicePorts(api=free_port(), lenders=free_port(), identity=free_port())
        starting = simulators(replace(ports, **{service: other_program}), timeout=30)
    with pytest.raises(ServicePortTaken) as refused, starting:
        pytest.fail(f"the {service} service started on a port another program holds")
    assert str(refused.value) == f"port {other_program} ({service}) is taken by another program"
    assert (refused.value.service, refused.value.port) == (service, other_program)
