"""The ``emulate`` command: serve a Clever or OneRoster emulator in the foreground."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.faults import FAULT_KINDS, Fault, parse_fault
from rostersync.emulators.oneroster import AUTH_MODES, OneRosterEmulator
from rostersync.emulators.server import DEFAULT_RATE_LIMIT_PER_MINUTE, EmulatorServer

EXIT_USAGE = 2
TOKEN_ENV = "ROSTERSYNC_EMULATOR_TOKEN"
CLIENT_ID_ENV = "ROSTERSYNC_EMULATOR_CLIENT_ID"
CLIENT_SECRET_ENV = "ROSTERSYNC_EMULATOR_CLIENT_SECRET"
FAULT_HELP = (
    "inject a fault, as KIND[:OPTION=VALUE,...] with options path, page, times, "
    f"status, seconds and header; kinds: {', '.join(FAULT_KINDS)} "
    "(repeat the option for several faults)"
)


class _MissingVariable(Exception):
    """An environment variable that names a credential is not set."""


def add_emulate_command(subparsers: Any) -> None:
    """Add ``emulate clever`` and ``emulate oneroster`` to an argparse subparsers."""
    emulate = subparsers.add_parser(
        "emulate",
        help="serve a local emulator of Clever's or ClassLink's API",
        description="Serve a folder of roster data on 127.0.0.1 until SIGINT or "
        "SIGTERM. SIGHUP re-reads the folders and records what changed: as Clever "
        "events, or as OneRoster records with a new dateLastModified.",
    )
    providers = emulate.add_subparsers(dest="provider", required=True)

    clever = providers.add_parser("clever", help="serve the Clever Data API v3.0")
    _add_common_options(clever)
    clever.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="VAR",
        help=f"environment variable holding the bearer token (default: {TOKEN_ENV})",
    )
    clever.set_defaults(handler=run_emulator)

    oneroster = providers.add_parser(
        "oneroster", help="serve the OneRoster 1.1 REST API as ClassLink does"
    )
    _add_common_options(oneroster)
    oneroster.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default="either",
        help="OAuth 1.0a signatures, OAuth 2 bearer tokens or either (default: either)",
    )
    oneroster.add_argument(
        "--client-id-env",
        default=CLIENT_ID_ENV,
        metavar="VAR",
        help=f"environment variable holding the client id (default: {CLIENT_ID_ENV})",
    )
    oneroster.add_argument(
        "--client-secret-env",
        default=CLIENT_SECRET_ENV,
        metavar="VAR",
        help="environment variable holding the client secret "
        f"(default: {CLIENT_SECRET_ENV})",
    )
    oneroster.set_defaults(handler=run_emulator)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder of the provider's JSON list files; repeat it to fill in "
        "collections missing from earlier folders",
    )
    parser.add_argument(
        "--port",
        type=int,
        required=True,
        help="TCP port on 127.0.0.1 to listen on (0 picks a free port)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        metavar="N",
        help="requests per minute allowed per credential "
        f"(default: {DEFAULT_RATE_LIMIT_PER_MINUTE})",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault_argument,
        metavar="SPEC",
        help=FAULT_HELP,
    )


def _fault_argument(spec: str) -> Fault:
    try:
        return parse_fault(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_emulator(
    args: argparse.Namespace,
    *,
    stop: threading.Event | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve the emulator that ``args`` describes until SIGINT, SIGTERM or ``stop``.

    Prints one line with the base URL. Returns 0 after a clean stop and 2 when a
    credential variable is unset or an option is invalid.
    """
    out = out or sys.stdout
    _log_to_stderr()
    try:
        emulator = _build_emulator(args)
        for fault in args.fault:
            emulator.add_fault(fault)
    except (_MissingVariable, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        emulator.start(port=args.port)
    except OSError as exc:
        print(f"error: cannot listen on port {args.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    stop = stop or threading.Event()
    reload = threading.Event()
    restore = _stop_on_signals(stop, reload)
    try:
        print(f"{emulator.name} serving {emulator.base_url}", file=out, flush=True)
        # Waiting in short steps lets the main thread run the signal handlers.
        while not stop.wait(0.5):
            if reload.is_set():
                reload.clear()
                _reload(emulator, out)
    finally:
        emulator.stop()
        restore()
    return 0


def _log_to_stderr() -> None:
    """Show the emulators' lines (faults injected, requests rejected) on stderr."""
    emulators = logging.getLogger("rostersync.emulators")
    if not emulators.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        emulators.addHandler(handler)


def _reload(emulator: EmulatorServer, out: TextIO) -> None:
    """Re-read the data folders; on a bad file, keep serving the data as it was."""
    try:
        changes = emulator.reload()
    except (ValueError, OSError) as exc:
        print(
            f"error: the data folders were not reloaded, so the {emulator.name} "
            f"serves its earlier data: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return
    print(f"{emulator.name} reloaded: {changes} changes", file=out, flush=True)


def _build_emulator(args: argparse.Namespace) -> EmulatorServer:
    if args.provider == "clever":
        return CleverEmulator(
            args.data,
            token=_credential(args.token_env, "the bearer token clients send"),
            rate_limit_per_minute=args.rate_limit,
        )
    return OneRosterEmulator(
        args.data,
        auth=args.auth,
        client_id=_credential(args.client_id_env, "the OAuth client id"),
        client_secret=_credential(args.client_secret_env, "the OAuth client secret"),
        rate_limit_per_minute=args.rate_limit,
    )


def _credential(variable: str, meaning: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise _MissingVariable(
            f"the environment variable {variable} is not set; set it to {meaning}."
        )
    return value


def _stop_on_signals(
    stop: threading.Event, reload: threading.Event
) -> Callable[[], None]:
    """Set ``stop`` on SIGINT and SIGTERM and ``reload`` on SIGHUP.

    Returns a function that restores the previous handlers. Python runs signal
    handlers only in the main thread, so elsewhere only ``stop`` ends the server.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.getsignal(number) for number in signals}
    signal.signal(signal.SIGINT, lambda _number, _frame: stop.set())
    signal.signal(signal.SIGTERM, lambda _number, _frame: stop.set())
    signal.signal(signal.SIGHUP, lambda _number, _frame: reload.set())

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore
