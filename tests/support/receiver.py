"""A webhook receiver on loopback for the loan events the outbox relay sends: it verifies each message's HMAC
signature as a lender would, records what arrived (a duplicate too: the test decides what a duplicate is), and can
be down (its port closed), answer an error for a while, answer late, or answer a body that trickles or never ends."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chain.devnet import free_port
from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, ReplayGuard, SignatureRejected


@dataclass(frozen=True, slots=True)
class Received:
    event_id: str
    type: str
    loan_id: str
    sequence: int
    header_event_id: str
    body: dict[str, Any]


class EventReceiver:
    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.received: list[Received] = []
        self.refused: list[str] = []
        #: answer this status (after recording nothing) while set
        self.failing_with: int | None = None
        #: event ids answered 500 once AFTER being recorded: a delivery whose answer was lost
        self.lose_answer_once: set[str] = set()
        #: answer a 200's body this way while set: (bytes, seconds between two) one byte at a time, or
        #: (bytes, 0) as fast as the socket takes them; ``answered_bytes`` counts what left before the relay let go
        self.answer_body: tuple[int, float] | None = None
        self.answered_bytes = 0
        #: seconds taken to answer what was recorded (a receiver slower than the relay's timeout keeps the event)
        self.answer_after = 0.0
        self._guard = ReplayGuard(secret)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> EventReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(
                    self.headers.get(TIMESTAMP_HEADER),
                    self.headers.get(SIGNATURE_HEADER),
                    body,
                    self.headers.get("X-Creditmesh-Event-Id", ""),
                )
                size, pause = receiver.answer_body if status == 200 and receiver.answer_body else (0, 0.0)
                time.sleep(receiver.answer_after)
                step = 1 if pause else 64 * 1024
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    self.wfile.flush()
                    for start in range(0, size, step):
                        chunk = b"x" * min(step, size - start)
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        receiver.answered_bytes += len(chunk)
                        time.sleep(pause)
                except OSError:  # the relay dropped the connection
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, timestamp: str | None, signature: str | None, body: bytes, header_event_id: str) -> int:
        with self._lock:
            if self.failing_with is not None:
                return self.failing_with
            try:
                self._guard.verify(timestamp, signature, body, int(time.time()))
            except SignatureRejected as err:
                self.refused.append(str(err))
                return 401
            event = json.loads(body)
            self.received.append(
                Received(event["event_id"], event["type"], event["loan_id"], event["sequence"], header_event_id, event)
            )
            if event["event_id"] in self.lose_answer_once:
                self.lose_answer_once.discard(event["event_id"])
                return 500
            return 200

    def events(self) -> list[Received]:
        with self._lock:
            return list(self.received)
