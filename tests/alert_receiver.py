"""A webhook receiver on loopback that records the alerts tests send to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Bounds that keep a misbehaving sender from holding the test: requests kept, body
# size, and seconds a connection may stay silent.
MAX_REQUESTS = 100
MAX_BODY_BYTES = 1_000_000
SOCKET_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST the receiver recorded: its path, headers and JSON body."""

    path: str
    headers: dict[str, str]
    body: Any


class AlertReceiver:
    """A loopback HTTP server that records each POST and responds with 200."""

    def __init__(self) -> None:
        self._requests: list[ReceivedRequest] = []
        self._condition = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="alert-receiver",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._condition:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least ``count`` requests arrived or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return list(self._requests)

    def wait_until(
        self, predicate: Callable[[ReceivedRequest], bool], timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """Wait until a request matches ``predicate`` or ``timeout`` passed.

        Returns the requests that match, which may be none.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while not any(predicate(request) for request in self._requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return [request for request in self._requests if predicate(request)]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=SOCKET_TIMEOUT_SECONDS)

    def _record(self, request: ReceivedRequest) -> bool:
        with self._condition:
            if len(self._requests) >= MAX_REQUESTS:
                return False
            self._requests.append(request)
            self._condition.notify_all()
            return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = SOCKET_TIMEOUT_SECONDS

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_error(413)
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", errors="replace")
                request = ReceivedRequest(self.path, dict(self.headers.items()), body)
                self.send_response(200 if receiver._record(request) else 429)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output free of one line per request."""

        return Handler


@contextmanager
def alert_receiver() -> Iterator[AlertReceiver]:
    """Run an AlertReceiver on a free loopback port until the block exits."""
    receiver = AlertReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def closed_loopback_port() -> int:
    """Return a loopback port that nothing listens on, so a connection is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
