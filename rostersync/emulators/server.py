"""The shared HTTP server of the provider emulators, with faults and a rate limiter."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

from rostersync.emulators.faults import (
    BAD_REQUEST,
    DROP,
    FAULT_KINDS,
    NO_DATA,
    RATE_LIMIT,
    SERVER_ERROR,
    SLOW,
    TRUNCATE,
    UNAUTHORIZED,
    Fault,
    FaultPlan,
    parse_fault,
)
from rostersync.emulators.records import encode_json

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_RATE_LIMIT_PER_MINUTE = 1200
RATE_LIMIT_WINDOW_SECONDS = 60
MAX_REQUEST_BODY_BYTES = 1_000_000
# A long-running emulator keeps only the latest requests, so its memory stays flat.
MAX_REQUEST_LOG = 100_000
# How often the serving thread checks for stop(), so stop() takes up to this long.
POLL_INTERVAL_SECONDS = 0.05

Clock = Callable[[], float]

# Faults that replace the emulator's response, checked before authentication.
ERROR_FAULTS = (UNAUTHORIZED, RATE_LIMIT, SERVER_ERROR, BAD_REQUEST)
# Faults that change how a successful response reaches the client.
DELIVERY_FAULTS = (NO_DATA, TRUNCATE, DROP)


class AuthenticationFailed(Exception):
    """A request's credentials are missing or invalid; the message gives the reason.

    The message is sent to the client, so it never contains a credential.
    """


@dataclass(frozen=True)
class RequestRecord:
    """One request an emulator responded to, with the faults injected into it."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    collection: str | None
    page: int | None
    faults: tuple[str, ...] = ()


@dataclass
class Request:
    """One HTTP request as the emulators read it."""

    method: str
    path: str
    query_string: str
    headers: Message
    body: bytes = b""
    query: dict[str, list[str]] = field(init=False)
    pairs: list[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.query = parse_qs(self.query_string, keep_blank_values=True)
        self.pairs = parse_qsl(self.query_string, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        """Return the first value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    """One HTTP response; ``delivery`` is a truncate or drop fault to apply."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delivery: str | None = None


def json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> Response:
    """Return a response whose body is ``payload`` encoded as JSON."""
    return Response(status, encode_json(payload), dict(headers or {}))


@dataclass
class Exchange:
    """One request on its way through an emulator, and the faults it received."""

    request: Request
    collection: str | None = None
    page: int | None = None
    faults: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    """The destination of a request: its collection, page and responding function.

    ``public`` routes, such as a token endpoint, need no credentials.
    """

    collection: str
    page: int | None
    respond: Callable[[Exchange], Response]
    method: str = "GET"
    public: bool = False


class RateLimiter:
    """Count requests per key in fixed windows of 60 seconds of the clock."""

    def __init__(self, per_minute: int, now: Clock) -> None:
        if per_minute < 1:
            raise ValueError(
                f"rate_limit_per_minute must be 1 or more, got {per_minute}."
            )
        self.per_minute = per_minute
        self._now = now
        self._window: int | None = None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float | None:
        """Count one request of ``key``; over the limit, return when the window ends."""
        window = math.floor(self._now() / RATE_LIMIT_WINDOW_SECONDS)
        with self._lock:
            if window != self._window:
                self._window = window
                self._counts.clear()
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        if count <= self.per_minute:
            return None
        if count == self.per_minute + 1:
            # One line per credential and window, because a client that ignores
            # 429 would otherwise fill the log. The key is a credential, so it
            # stays out of the log.
            logger.info(
                "A client exceeded %d requests per minute; its other requests in "
                "this minute get 429 without a log line",
                self.per_minute,
            )
        return float((window + 1) * RATE_LIMIT_WINDOW_SECONDS)


class EmulatorServer:
    """Base of the provider emulators: a threaded HTTP server on 127.0.0.1.

    A subclass routes requests, authenticates them and builds the provider's
    responses and error bodies. This class runs the server, logs each request,
    limits each credential to ``rate_limit_per_minute`` requests per fixed minute
    and injects the faults of ``self.faults`` that do not depend on the provider.
    Faults apply only to requests for a known route.
    """

    name: ClassVar[str] = "emulator"
    fault_kinds: ClassVar[tuple[str, ...]] = FAULT_KINDS
    fault_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        now: Clock = time.time,
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
    ) -> None:
        self.now = now
        self.faults = FaultPlan(self.fault_kinds, self.fault_paths)
        self._limiter = RateLimiter(rate_limit_per_minute, now)
        self._log: deque[RequestRecord] = deque(maxlen=MAX_REQUEST_LOG)
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self, port: int = 0, host: str = LOOPBACK) -> Self:
        """Start serving on ``host``:``port`` in a background thread; 0 picks a port."""
        if host != LOOPBACK:
            raise ValueError(f"The emulators serve only on {LOOPBACK}, not {host!r}.")
        if self._server is not None:
            raise RuntimeError(
                f"The {self.name} is already running at {self.base_url}."
            )
        server = _Server((host, port), self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
            name=f"{self.name} on port {server.server_port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        logger.info("%s started at %s", self.name, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; does nothing when stopped."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        url = self.base_url
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=10)
        logger.info("%s at %s stopped", self.name, url)

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._server is None:
            raise RuntimeError(f"The {self.name} is not running; call start() first.")
        return self._server.server_port

    @property
    def base_url(self) -> str:
        """The server's root URL, such as http://127.0.0.1:8080."""
        return f"http://{LOOPBACK}:{self.port}"

    def reload(self) -> int:
        """Re-read the data folders and return how many changes were recorded."""
        raise NotImplementedError

    # Inspection and faults

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests responded to, oldest first (the latest 100,000 at most)."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        with self._log_lock:
            self._log.clear()

    def add_fault(self, fault: Fault | str) -> Fault:
        """Queue a fault, given as a Fault or as a spec such as ``slow:seconds=1``."""
        if isinstance(fault, str):
            fault = parse_fault(fault)
        return self.faults.add(fault)

    def take_fault(self, exchange: Exchange, kinds: Collection[str]) -> Fault | None:
        """Consume the first queued fault of ``kinds`` that matches ``exchange``."""
        fault = self.faults.take(kinds, exchange.collection, exchange.page)
        if fault is not None:
            exchange.faults.append(fault.kind)
            logger.info(
                "%s injects %s into %s %s (collection %s, page %s)",
                self.name,
                fault.kind,
                exchange.request.method,
                exchange.request.path,
                exchange.collection,
                exchange.page,
            )
        return fault

    # Provider hooks

    def _route(self, request: Request) -> Route | None:
        """Return the route of ``request``, or None for an unknown path."""
        raise NotImplementedError

    def _authenticate(self, request: Request) -> str:
        """Return the rate-limit key of the request's credential.

        Raises AuthenticationFailed when the credential is missing or invalid.
        """
        raise NotImplementedError

    def _error(self, status: int, message: str, collection: str | None) -> Response:
        """Return the provider's error response."""
        raise NotImplementedError

    def _no_data_body(self, collection: str | None) -> bytes:
        """Return a successful body that lacks the provider's envelope key."""
        raise NotImplementedError

    def _unauthorized_fault(self, exchange: Exchange) -> Response:
        """Return the response of an unauthorized fault."""
        return self._error(
            401, "The credentials were rejected (injected fault).", exchange.collection
        )

    # Dispatch

    def _dispatch(self, request: Request) -> Response:
        exchange = Exchange(request)
        try:
            response = self._answer(exchange)
        except Exception:
            logger.exception(
                "%s failed to respond to %s %s", self.name, request.method, request.path
            )
            response = self._error(
                500, "The emulator failed; see its log.", exchange.collection
            )
        self._record(exchange, response)
        return response

    def _answer(self, exchange: Exchange) -> Response:
        request = exchange.request
        route = self._route(request)
        if route is not None:
            exchange.collection, exchange.page = route.collection, route.page
            slow = self.take_fault(exchange, (SLOW,))
            if slow is not None:
                time.sleep(slow.wait_seconds)
            injected = self._error_fault(exchange)
            if injected is not None:
                return injected

        key = None
        if route is None or not route.public:
            try:
                key = self._authenticate(request)
            except AuthenticationFailed as exc:
                logger.info(
                    "%s rejected %s %s: %s",
                    self.name,
                    request.method,
                    request.path,
                    exc,
                )
                return self._error(401, str(exc), exchange.collection)
        if route is None:
            return self._error(404, f"No resource at {request.path}.", None)
        if request.method != route.method:
            return self._error(
                405, f"{request.path} accepts only {route.method}.", route.collection
            )
        if key is not None:
            limited = self._rate_limit(key, route.collection)
            if limited is not None:
                return limited

        response = route.respond(exchange)
        if response.status == 200:
            self._apply_delivery_fault(exchange, response)
        return response

    def _error_fault(self, exchange: Exchange) -> Response | None:
        fault = self.take_fault(exchange, ERROR_FAULTS)
        if fault is None:
            return None
        collection = exchange.collection
        if fault.kind == UNAUTHORIZED:
            return self._unauthorized_fault(exchange)
        if fault.kind == BAD_REQUEST:
            return self._error(
                400, "The request was rejected (injected fault).", collection
            )
        if fault.kind == SERVER_ERROR:
            return self._error(
                fault.response_status, "The server failed (injected fault).", collection
            )
        return self._rate_limit_fault(fault, collection)

    def _rate_limit_fault(self, fault: Fault, collection: str | None) -> Response:
        response = self._error(429, "Too many requests (injected fault).", collection)
        seconds = fault.wait_seconds
        if fault.rate_limit_header in ("reset", "both"):
            reset = math.ceil(self.now() + seconds)
            response.headers["X-RateLimit-Reset"] = str(reset)
        if fault.rate_limit_header in ("retry-after", "both"):
            response.headers["Retry-After"] = str(math.ceil(seconds))
        return response

    def _rate_limit(self, key: str, collection: str) -> Response | None:
        reset = self._limiter.check(key)
        if reset is None:
            return None
        limit = self._limiter.per_minute
        response = self._error(
            429, f"Rate limit of {limit} requests per minute exceeded.", collection
        )
        response.headers["X-RateLimit-Reset"] = str(int(reset))
        response.headers["Retry-After"] = str(math.ceil(reset - self.now()))
        return response

    def _apply_delivery_fault(self, exchange: Exchange, response: Response) -> None:
        fault = self.take_fault(exchange, DELIVERY_FAULTS)
        if fault is None:
            return
        if fault.kind == NO_DATA:
            response.body = self._no_data_body(exchange.collection)
        else:
            response.delivery = fault.kind

    def _record(self, exchange: Exchange, response: Response) -> None:
        request = exchange.request
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=request.query,
            status=response.status,
            collection=exchange.collection,
            page=exchange.page,
            faults=tuple(exchange.faults),
        )
        with self._log_lock:
            self._log.append(record)


class _Handler(BaseHTTPRequestHandler):
    """Read one request, pass it to the emulator and write its response."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        self._serve()

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, parts.query, self.headers, body)
        response = self.server.emulator._dispatch(request)
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("The client closed the connection before the response ended.")
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Invalid Content-Length")
            return None
        if length > MAX_REQUEST_BODY_BYTES:
            self.send_error(413, "Request body too large")
            return None
        return self.rfile.read(length)

    def _send(self, response: Response) -> None:
        body = response.body
        announced = len(body)
        if response.delivery in (TRUNCATE, DROP):
            body = body[: len(body) // 2]
        if response.delivery == TRUNCATE:
            announced = len(body)
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(announced))
        if response.delivery == DROP:
            # Closing after half the announced body is the fault itself.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s: " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that can close its open keep-alive connections."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's domain name, which can send a
        # DNS query; a loopback emulator needs no name.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut the sockets of open connections, so their threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # A connection the client already closed cannot be shut again.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("Connection from %s failed", client_address, exc_info=True)
