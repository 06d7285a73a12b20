"""``creditmesh serve`` (the API only, configured by ``CREDITMESH_*`` variables) and ``creditmesh serve --processes N``
(N API processes, one uvicorn process per loopback port, behind the local balancer ``api.balancer`` on ``--port``).

With N processes the first runs the background workers (``CREDITMESH_WORKERS``, ``all`` unless set; the indexer,
keeper, relay and the rest, each once per chain under its lease anyway) and the others none; each answers with an
``X-Creditmesh-Process`` header naming it (``api-1`` …) and trusts the balancer's ``X-Forwarded-For`` and
``X-Forwarded-Proto`` (loopback is added to ``CREDITMESH_TRUSTED_PROXIES``; the balancer passes a client's
``X-Forwarded-Proto`` on only from a trusted proxy).
A process that exits is started again after a second (one that keeps
failing at start-up less and less often, up to every 30 s), on its port again unless another process has taken the
port meanwhile, else on another free port; the balancer sends it nothing until its ``/healthz`` answers. Several
processes need a database they can share (PostgreSQL) and ``CREDITMESH_REDIS_URL`` for the breaker state, rate
limits and velocity counters they share: without either ``serve --processes N`` refuses to start (each process
counting alone would let a borrower through N times the velocity limit). The balancer listens first: on an address
it cannot have, ``serve`` exits naming it and the cause, with no API process started."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from api.cli._common import API_PORT, tcp_port

if TYPE_CHECKING:
    from api.balancer import Backend, Balancer
    from api.client import IpNetwork
    from api.settings import Settings

log = logging.getLogger("creditmesh.serve")

RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
#: where the API processes see the balancer's connections come from
BALANCER_NETWORK = "127.0.0.1/32"
STOP_TIMEOUT_SECONDS = 20.0
#: the balancer's wait for an answer beyond the API's own longest wait
ANSWER_MARGIN_SECONDS = 30.0


def _serve(port: int, host: str) -> None:
    import uvicorn

    from api.app import create_app
    from api.logs import configure_logging
    from api.settings import Settings

    settings = Settings()
    if "CREDITMESH_WORKERS" not in os.environ:  # the platform runs its background workers unless told otherwise
        settings = settings.model_copy(update={"workers": "all"})
    configure_logging()
    # access_log off: at log level "warning" uvicorn's access lines (INFO) are never written anyway, but uvicorn builds
    # each line's arguments before the logger drops it; the API logs its own line per request (api.logs)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        **proxy_options(settings),
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy-header options: ``X-Forwarded-Proto`` (the scheme of the links the API builds: a page's
    ``next``, a redirect's ``Location``) and ``X-Forwarded-For`` believed from ``CREDITMESH_TRUSTED_PROXIES`` only,
    CIDR networks as uvicorn reads them. uvicorn's own default trusts 127.0.0.1 alone, so behind a proxy elsewhere
    (an ingress, compose's nginx) every link said http:// and a client following one sent its API key in clear."""
    return {"proxy_headers": True, "forwarded_allow_ips": [str(net) for net in settings.trusted_proxy_networks]}


def cmd_serve(args: argparse.Namespace) -> None:
    if args.processes == 1:
        _serve(args.port, args.host)
        return
    from api.logs import configure_logging
    from api.settings import Settings

    settings = Settings()
    refusal = shared_state_refusal(settings)
    if refusal is not None:
        raise SystemExit(refusal)
    configure_logging()
    asyncio.run(
        serve_processes(
            args.host,
            args.port,
            args.processes,
            answer_timeout(settings.accept_wait_seconds),
            settings.trusted_proxy_networks,
        )
    )


def shared_state_refusal(settings: Settings) -> str | None:
    """Why N processes cannot run on ``settings``, or None: they need a database they can share and Redis for the
    counters they share (velocity, rate limits, breakers). Without Redis each process would keep its own velocity
    counters and admit N times the per-borrower, per-wallet and per-address limits."""
    if settings.resolved_database_url.startswith("sqlite"):
        return "creditmesh serve --processes N needs a shared database: set CREDITMESH_DATABASE_URL"
    if not settings.redis_url:
        return (
            "creditmesh serve --processes N needs Redis for the limits its processes share (velocity, rate limits, "
            "circuit breakers; each process alone would admit N times a borrower's velocity limit): set "
            "CREDITMESH_REDIS_URL"
        )
    return None


def answer_timeout(accept_wait_seconds: float) -> float:
    """How long the balancer waits for an API process's answer: past the API's own longest wait (an accept answers
    409 "in progress" after ``accept_wait_seconds``), never below the balancer's default."""
    from api.balancer import ANSWER_TIMEOUT_SECONDS

    return max(ANSWER_TIMEOUT_SECONDS, accept_wait_seconds + ANSWER_MARGIN_SECONDS)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the supervising process dies, however it dies."""
    with_libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    with_libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def process_env(index: int, base: dict[str, str]) -> dict[str, str]:
    """The environment of API process ``index`` (0-based): the first runs the workers, the others none; each trusts
    the balancer on loopback for ``X-Forwarded-For`` (the client's address, for per-address limits)."""
    workers = base.get("CREDITMESH_WORKERS", "all") if index == 0 else "none"
    trusted: list[str] = json.loads(base.get("CREDITMESH_TRUSTED_PROXIES") or "[]")
    return base | {
        "CREDITMESH_WORKERS": workers,
        "CREDITMESH_PROCESS_NAME": f"api-{index + 1}",
        "CREDITMESH_TRUSTED_PROXIES": json.dumps(
            [*trusted, *([BALANCER_NETWORK] if BALANCER_NETWORK not in trusted else [])]
        ),
    }


async def _supervise(index: int, backend: Backend, balancer: Balancer, stop: asyncio.Event) -> None:
    """Run API process ``index`` on ``backend``'s port until ``stop``; start it again when it exits on its own, on
    the same port unless another process has taken that port meanwhile (then on another, moving ``backend``)."""
    from chain.devnet import free_port

    preexec = _die_with_parent if sys.platform == "linux" else None
    loop = asyncio.get_running_loop()
    delay = RESTART_DELAY_SECONDS / 2
    while not stop.is_set():
        started = loop.time()
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "api.cli", "serve", "--host", backend.host, "--port", str(backend.port)],
            env=process_env(index, dict(os.environ)),
            preexec_fn=preexec,  # a prctl call only: safe between fork and exec
        )
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            stopping.cancel()
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(exited, STOP_TIMEOUT_SECONDS)
                except TimeoutError:
                    process.kill()
                    await exited
            return
        stopping.cancel()
        # a process that keeps failing at start-up is started again less and less often (up to every 30 s)
        delay = (
            RESTART_DELAY_SECONDS
            if loop.time() - started > MAX_RESTART_DELAY_SECONDS
            else min(2 * delay, MAX_RESTART_DELAY_SECONDS)
        )
        log.warning(
            "API process api-%d exited with %s; starting it again in %s s", index + 1, process.returncode, delay
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if not stop.is_set() and (port := free_port(backend.port)) != backend.port:
            balancer.move(backend, port)


async def serve_processes(
    host: str,
    port: int,
    processes: int,
    answer_timeout: float | None = None,
    trusted_proxies: Sequence[IpNetwork] = (),
) -> None:
    """N API processes behind the balancer on ``host:port`` until SIGINT or SIGTERM; the balancer answers 504 for a
    process that has not answered within ``answer_timeout`` seconds (the balancer's default when None) and passes
    ``X-Forwarded-Proto`` on from ``trusted_proxies`` only."""
    from api.balancer import ANSWER_TIMEOUT_SECONDS, Backend, Balancer
    from chain.devnet import free_port

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, stop.set)
    # each kept from other processes' choices of a free port until its API process binds it
    backends = [Backend("127.0.0.1", free_port()) for _ in range(processes)]
    balancer = Balancer(
        backends,
        answer_timeout=answer_timeout or ANSWER_TIMEOUT_SECONDS,
        trusted_proxies=trusted_proxies,
    )
    try:
        await balancer.start(host, port)
    except OSError as err:  # its address taken, not this machine's or no address at all: no API process is started
        # asyncio's message repeats the address; the system's names the cause (a resolver's numbers are negative)
        reason = os.strerror(err.errno) if err.errno is not None and err.errno > 0 else (err.strerror or str(err))
        raise SystemExit(f"creditmesh serve: cannot listen on {host}:{port}: {reason}") from None
    supervisors = [asyncio.create_task(_supervise(i, b, balancer, stop)) for i, b in enumerate(backends)]
    log.warning(
        "creditmesh: %d API processes (%s) behind http://%s:%d",
        processes,
        ", ".join(b.address for b in backends),
        host,
        port,
    )
    try:
        await stop.wait()
    finally:
        stop.set()
        await balancer.close()
        await asyncio.gather(*supervisors, return_exceptions=True)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    serve = commands.add_parser("serve", help="the API only, configured by CREDITMESH_* variables")
    serve.add_argument("--port", type=tcp_port, default=API_PORT)
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container: deploy/, README)"
    )
    serve.add_argument(
        "--processes",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="N API processes (one uvicorn process per loopback port) behind a local balancer on --port; the "
        "first runs the background workers (needs PostgreSQL: CREDITMESH_DATABASE_URL)",
    )
    serve.set_defaults(func=cmd_serve)
