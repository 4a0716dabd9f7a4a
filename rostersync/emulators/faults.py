"""Faults that the provider emulators inject into their responses, and their plan."""

from __future__ import annotations

import math
import threading
from collections.abc import Collection
from dataclasses import dataclass

RATE_LIMIT = "rate-limit"
SERVER_ERROR = "server-error"
SLOW = "slow"
TRUNCATE = "truncate"
DROP = "drop"
NO_DATA = "no-data"
MOVE = "move"
CURSOR_REPEAT = "cursor-repeat"
CURSOR_BACKWARDS = "cursor-backwards"
UNAUTHORIZED = "unauthorized"
BAD_REQUEST = "bad-request"

FAULT_KINDS = (
    RATE_LIMIT,
    SERVER_ERROR,
    SLOW,
    TRUNCATE,
    DROP,
    NO_DATA,
    MOVE,
    CURSOR_REPEAT,
    CURSOR_BACKWARDS,
    UNAUTHORIZED,
    BAD_REQUEST,
)
SERVER_ERROR_STATUSES = (500, 502, 503)
DEFAULT_SERVER_ERROR_STATUS = 503
RATE_LIMIT_HEADERS = ("reset", "retry-after", "both")
DEFAULT_RATE_LIMIT_SECONDS = 1.0
OPTIONS = ("path", "page", "times", "status", "seconds", "header")


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind, the responses it matches and its settings.

    ``path`` is a collection name and ``page`` a 1-based page number of that
    collection; None matches any. ``times`` is how many matching responses the fault
    affects, and 0 means every one.
    """

    kind: str
    path: str | None = None
    page: int | None = None
    times: int = 1
    status: int | None = None
    seconds: float | None = None
    header: str | None = None

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_counts(self)
        _check_settings(self)

    @property
    def response_status(self) -> int:
        """The HTTP status of a server-error fault."""
        return self.status or DEFAULT_SERVER_ERROR_STATUS

    @property
    def wait_seconds(self) -> float:
        """The delay of a slow fault, or the wait a rate-limit fault requests."""
        if self.seconds is None:
            return DEFAULT_RATE_LIMIT_SECONDS
        return self.seconds

    @property
    def rate_limit_header(self) -> str:
        """Which headers a rate-limit fault sends: reset, retry-after or both."""
        return self.header or "both"

    def matches(self, collection: str | None, page: int | None) -> bool:
        """Return whether the fault applies to a response of ``collection``/``page``."""
        if self.path is not None and self.path != collection:
            return False
        return self.page is None or self.page == page


def _check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(
            f"Unknown fault kind {kind!r}; expected one of: {', '.join(FAULT_KINDS)}."
        )


def _check_counts(fault: Fault) -> None:
    if fault.path is not None and not fault.path:
        raise ValueError("Fault path is empty; give a collection name or leave it out.")
    if fault.page is not None and fault.page < 1:
        raise ValueError(f"Fault page must be 1 or more, got {fault.page}.")
    if fault.times < 0:
        raise ValueError(
            f"Fault times must be 0 (every matching response) or more, got "
            f"{fault.times}."
        )


def _check_settings(fault: Fault) -> None:
    if fault.status is not None:
        if fault.kind != SERVER_ERROR:
            raise ValueError(f"Fault option status applies only to {SERVER_ERROR}.")
        if fault.status not in SERVER_ERROR_STATUSES:
            allowed = ", ".join(map(str, SERVER_ERROR_STATUSES))
            raise ValueError(
                f"Fault status must be one of {allowed}, got {fault.status}."
            )
    if fault.seconds is not None:
        if fault.kind not in (RATE_LIMIT, SLOW):
            raise ValueError(
                f"Fault option seconds applies only to {RATE_LIMIT} and {SLOW}."
            )
        if not math.isfinite(fault.seconds) or fault.seconds < 0:
            raise ValueError(
                f"Fault seconds must be a finite number of 0 or more, got "
                f"{fault.seconds}."
            )
    if fault.kind == SLOW and fault.seconds is None:
        raise ValueError(f"A {SLOW} fault needs seconds, such as seconds=1.5.")
    if fault.header is not None:
        if fault.kind != RATE_LIMIT:
            raise ValueError(f"Fault option header applies only to {RATE_LIMIT}.")
        if fault.header not in RATE_LIMIT_HEADERS:
            raise ValueError(
                f"Fault header must be one of {', '.join(RATE_LIMIT_HEADERS)}, got "
                f"{fault.header!r}."
            )


def parse_fault(spec: str) -> Fault:
    """Parse ``KIND[:OPTION=VALUE,...]``, such as ``server-error:path=users,page=2``.

    Raises ValueError naming the invalid part and the accepted values.
    """
    kind, _, options_text = spec.strip().partition(":")
    options: dict[str, str] = {}
    for item in options_text.split(",") if options_text else ():
        name, separator, value = item.strip().partition("=")
        if not separator or not value:
            raise ValueError(
                f"Invalid fault option {item!r} in {spec!r}; write OPTION=VALUE."
            )
        if name not in OPTIONS:
            raise ValueError(
                f"Unknown fault option {name!r} in {spec!r}; expected one of: "
                f"{', '.join(OPTIONS)}."
            )
        if name in options:
            raise ValueError(f"Fault option {name!r} is given twice in {spec!r}.")
        options[name] = value
    try:
        times = _integer(options, "times")
        return Fault(
            kind=kind,
            path=options.get("path"),
            page=_integer(options, "page"),
            times=1 if times is None else times,
            status=_integer(options, "status"),
            seconds=_number(options, "seconds"),
            header=options.get("header"),
        )
    except ValueError as exc:
        raise ValueError(f"Invalid fault {spec!r}: {exc}") from exc


def _integer(options: dict[str, str], name: str) -> int | None:
    if name not in options:
        return None
    try:
        return int(options[name])
    except ValueError:
        raise ValueError(
            f"Fault option {name} must be a whole number, got {options[name]!r}."
        ) from None


def _number(options: dict[str, str], name: str) -> float | None:
    if name not in options:
        return None
    try:
        return float(options[name])
    except ValueError:
        raise ValueError(
            f"Fault option {name} must be a number of seconds, got {options[name]!r}."
        ) from None


@dataclass
class _Entry:
    fault: Fault
    remaining: int | None


class FaultPlan:
    """The faults one emulator still has to inject, safe to use from many threads.

    ``kinds`` and ``paths`` are what the emulator supports; ``add`` rejects others.
    """

    def __init__(
        self, kinds: Collection[str] = FAULT_KINDS, paths: Collection[str] = ()
    ) -> None:
        self._kinds = tuple(kinds)
        self._paths = tuple(paths)
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Queue ``fault``; earlier faults win when several match one response."""
        if fault.kind not in self._kinds:
            raise ValueError(
                f"This emulator does not support the fault kind {fault.kind!r}; "
                f"expected one of: {', '.join(self._kinds)}."
            )
        if self._paths and fault.path is not None and fault.path not in self._paths:
            raise ValueError(
                f"Unknown fault path {fault.path!r}; expected one of: "
                f"{', '.join(self._paths)}."
            )
        remaining = fault.times or None
        with self._lock:
            self._entries.append(_Entry(fault, remaining))
        return fault

    def clear(self) -> None:
        """Remove every queued fault."""
        with self._lock:
            self._entries.clear()

    def pending(self) -> list[Fault]:
        """Return the faults that still affect responses, in the order added."""
        with self._lock:
            return [entry.fault for entry in self._entries]

    def take(
        self, kinds: Collection[str], collection: str | None, page: int | None
    ) -> Fault | None:
        """Consume and return the first fault of ``kinds`` matching the response."""
        with self._lock:
            for index, entry in enumerate(self._entries):
                fault = entry.fault
                if fault.kind not in kinds or not fault.matches(collection, page):
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        del self._entries[index]
                return fault
        return None
