"""A local emulator of Clever's Data API v3.0 and Events API, served over HTTP."""

from __future__ import annotations

import bisect
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from rostersync.emulators.faults import CURSOR_BACKWARDS, CURSOR_REPEAT, MOVE
from rostersync.emulators.records import (
    check_folders,
    encode_json,
    find_file,
    iso_timestamp,
    read_records,
)
from rostersync.emulators.server import (
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    AuthenticationFailed,
    Clock,
    EmulatorServer,
    Exchange,
    Request,
    Response,
    Route,
    json_response,
)

logger = logging.getLogger(__name__)

API_PREFIX = "/v3.0"
COLLECTIONS = ("districts", "schools", "users", "sections", "terms")
EVENTS = "events"
REQUIRED_COLLECTIONS = ("schools", "users", "sections")
USER_ROLES = ("student", "teacher", "staff", "district_admin", "contact")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_EVENTS_WINDOW_DAYS = 30
CURSOR_PARAMETERS = ("limit", "starting_after", "ending_before")
_MISSING = object()


class _BadRequest(ValueError):
    """A list request has invalid parameters; the message gives the reason."""


class _UnknownEvent(LookupError):
    """A cursor names an event that was never recorded or is out of the window."""


@dataclass(frozen=True)
class _ListQuery:
    """The paging parameters of one list request."""

    limit: int
    starting_after: str | None
    ending_before: str | None
    role: str | None

    @classmethod
    def parse(cls, request: Request, collection: str) -> _ListQuery:
        limit_text = request.param("limit")
        try:
            limit = DEFAULT_LIMIT if limit_text is None else int(limit_text)
        except ValueError:
            raise _BadRequest(
                f"limit must be a whole number, got {limit_text!r}."
            ) from None
        if not 1 <= limit <= MAX_LIMIT:
            raise _BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}.")
        starting_after = request.param("starting_after")
        ending_before = request.param("ending_before")
        if starting_after is not None and ending_before is not None:
            raise _BadRequest("Give starting_after or ending_before, not both.")
        role = request.param("role") if collection == "users" else None
        if role is not None and role not in USER_ROLES:
            raise _BadRequest(
                f"role must be one of {', '.join(USER_ROLES)}, got {role!r}."
            )
        return cls(limit, starting_after, ending_before, role)


@dataclass(frozen=True)
class _View:
    """The records one list request pages through, in id order."""

    ids: Sequence[str]
    item: Callable[[int], bytes]


@dataclass(frozen=True)
class _Window:
    """The slice ``start:end`` of a view that a list request selects."""

    start: int
    end: int


class _Listing:
    """One collection as served: sorted ids, envelope bytes and user ids per role."""

    __slots__ = ("by_role", "ids", "items")

    def __init__(self, items: dict[str, bytes], roles: dict[str, list[str]]) -> None:
        self.items = items
        self.ids = sorted(items)
        self.by_role = {role: sorted(ids) for role, ids in roles.items()}

    def view(self, role: str | None) -> _View:
        ids = self.ids if role is None else self.by_role.get(role, [])
        items = self.items
        return _View(ids, lambda index: items[ids[index]])

    def record(self, record_id: str) -> dict[str, Any] | None:
        item = self.items.get(record_id)
        return None if item is None else json.loads(item)["data"]


class _Event:
    """One recorded change: its id, type, time and encoded ``data`` object."""

    __slots__ = ("created", "id", "payload", "type")

    def __init__(self, event_id: str, event_type: str, created: float, payload: bytes):
        self.id = event_id
        self.type = event_type
        self.created = created
        self.payload = payload

    def item(self) -> bytes:
        """Return the event's list item, ``{"data": {...event...}, "uri": ...}``."""
        head = encode_json(
            {"id": self.id, "type": self.type, "created": iso_timestamp(self.created)}
        )
        uri = encode_json(f"{API_PREFIX}/{EVENTS}/{self.id}")
        # The head object is reopened to append the pre-encoded "data" member.
        parts = [b'{"data":', head[:-1], b',"data":', self.payload, b'},"uri":', uri]
        return b"".join([*parts, b"}"])


class CleverEmulator(EmulatorServer):
    """Serve Clever Data API v3.0 list and record endpoints and the Events API.

    ``data_dirs`` are folders of v3.0 list responses saved as files (``schools.json``,
    ``users.json``, ``sections.json``, and optionally ``districts.json`` and
    ``terms.json``). A file in an earlier folder wins over the same file in a later
    one. Clients send ``Authorization: Bearer <token>``. ``reload()`` re-reads the
    folders and records what changed as events, which are kept for
    ``events_window_days`` of the clock ``now``.
    """

    name = "Clever emulator"
    fault_paths = (*COLLECTIONS, EVENTS)

    def __init__(
        self,
        data_dirs: Sequence[Path | str],
        token: str,
        *,
        now: Clock = time.time,
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
        events_window_days: float = DEFAULT_EVENTS_WINDOW_DAYS,
    ) -> None:
        super().__init__(now=now, rate_limit_per_minute=rate_limit_per_minute)
        if not token:
            raise ValueError("token is empty; give the bearer token clients must send.")
        if events_window_days <= 0:
            raise ValueError(
                f"events_window_days must be more than 0, got {events_window_days}."
            )
        self.data_dirs = check_folders(data_dirs)
        self.events_window_days = events_window_days
        self._token = token
        self._lock = threading.RLock()
        self._reload_lock = threading.Lock()
        self._listings = self._load()
        self._events: list[_Event] = []
        self._event_ids: list[str] = []
        self._event_times: list[float] = []
        self._event_counter = 0
        self._last_event_second = 0

    # Data

    def reload(self) -> int:
        """Re-read the data folders, record each change as an event, and serve them.

        Returns the number of events recorded.
        """
        with self._reload_lock:
            listings = self._load()
            with self._lock:
                changes = [
                    change
                    for name in COLLECTIONS
                    for change in _changes(name, self._listings[name], listings[name])
                ]
                for event_type, payload in changes:
                    self._append_event(event_type, payload)
                self._listings = listings
        logger.info("%s reloaded its data: %d events", self.name, len(changes))
        return len(changes)

    def age_events(self, seconds: float) -> None:
        """Move the time of every recorded event ``seconds`` into the past."""
        with self._lock:
            for event in self._events:
                event.created -= seconds
            self._event_times = [event.created for event in self._events]

    def clear_events(self) -> None:
        """Forget every recorded event; new event ids still increase."""
        with self._lock:
            self._events.clear()
            self._event_ids.clear()
            self._event_times.clear()

    def _load(self) -> dict[str, _Listing]:
        listings: dict[str, _Listing] = {}
        districts: set[str] = set()
        for name in COLLECTIONS:
            path = find_file(self.data_dirs, f"{name}.json")
            if path is None and name in REQUIRED_COLLECTIONS:
                folders = ", ".join(str(folder) for folder in self.data_dirs)
                raise FileNotFoundError(
                    f"{name}.json is missing; put it in one of the data folders "
                    f"({folders})."
                )
            if path is not None:
                listings[name] = _read_listing(path, name, districts)
        if "districts" not in listings:
            listings["districts"] = _synthesized_districts(districts)
        listings.setdefault("terms", _Listing({}, {}))
        return listings

    def _append_event(self, event_type: str, payload: bytes) -> None:
        # Event ids are 8 hex digits of the second and 16 of a counter, so they
        # increase in string order. Event times never go backwards, so the window
        # can drop events from the front.
        now = self.now()
        second = max(int(now), self._last_event_second)
        created = max(now, self._event_times[-1] if self._event_times else now)
        self._event_counter += 1
        self._last_event_second = second
        event_id = f"{second:08x}{self._event_counter:016x}"
        self._events.append(_Event(event_id, event_type, created, payload))
        self._event_ids.append(event_id)
        self._event_times.append(created)

    def _event_view(self) -> _View:
        with self._lock:
            cutoff = self.now() - self.events_window_days * 86_400
            expired = bisect.bisect_left(self._event_times, cutoff)
            if expired:
                del self._events[:expired]
                del self._event_ids[:expired]
                del self._event_times[:expired]
            events = list(self._events)
            ids = list(self._event_ids)
        return _View(ids, lambda index: events[index].item())

    # HTTP

    def _authenticate(self, request: Request) -> str:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        valid = scheme.lower() == "bearer" and hmac.compare_digest(
            token.encode(), self._token.encode()
        )
        if not valid:
            raise AuthenticationFailed(
                "Missing or invalid bearer token; send the header Authorization: "
                "Bearer followed by the district's token."
            )
        return token

    def _error(self, status: int, message: str, collection: str | None) -> Response:
        return json_response(status, {"message": message})

    def _no_data_body(self, collection: str | None) -> bytes:
        return b'{"links":[]}'

    def _route(self, request: Request) -> Route | None:
        parts = request.path.split("/")
        if len(parts) not in (3, 4) or parts[0] or f"/{parts[1]}" != API_PREFIX:
            return None
        collection = parts[2]
        if collection not in (*COLLECTIONS, EVENTS):
            return None
        if len(parts) == 4:
            if not parts[3]:
                return None
            record_id = unquote(parts[3])
            return Route(collection, None, partial(self._respond_record, record_id))
        return self._list_route(request, collection)

    def _list_route(self, request: Request, collection: str) -> Route:
        try:
            query = _ListQuery.parse(request, collection)
        except _BadRequest as exc:
            return Route(collection, None, partial(self._respond_error, 400, str(exc)))
        if collection == EVENTS:
            view = self._event_view()
        else:
            with self._lock:
                view = self._listings[collection].view(query.role)
        try:
            window = _window(view.ids, query, events=collection == EVENTS)
        except _UnknownEvent as exc:
            return Route(collection, None, partial(self._respond_error, 404, str(exc)))
        page = window.start // query.limit + 1
        respond = partial(self._respond_list, view, query, window)
        return Route(collection, page, respond)

    def _respond_error(self, status: int, message: str, exchange: Exchange) -> Response:
        return self._error(status, message, exchange.collection)

    def _respond_list(
        self, view: _View, query: _ListQuery, window: _Window, exchange: Exchange
    ) -> Response:
        start, end = window.start, window.end
        if start > 0 and self.take_fault(exchange, (MOVE,)):
            # The page starts one record early, so the previous page's last record
            # appears twice.
            start -= 1
            end = min(start + query.limit, len(view.ids))
        data = b",".join(view.item(index) for index in range(start, end))
        links = self._links(exchange, view.ids, query, _Window(start, end))
        body = b'{"data":[' + data + b'],"links":' + encode_json(links) + b"}"
        return Response(200, body)

    def _links(
        self,
        exchange: Exchange,
        ids: Sequence[str],
        query: _ListQuery,
        window: _Window,
    ) -> list[dict[str, str]]:
        request = exchange.request
        path = f"{API_PREFIX}/{exchange.collection}"
        self_uri = f"{path}?{request.query_string}" if request.query_string else path
        links = [{"rel": "self", "uri": self_uri}]
        uri = partial(_link_uri, path, request.pairs, query.limit)

        fault = self.take_fault(exchange, (CURSOR_REPEAT, CURSOR_BACKWARDS))
        if fault is not None and fault.kind == CURSOR_REPEAT:
            links.append(
                {"rel": "next", "uri": uri("starting_after", query.starting_after)}
            )
        elif fault is not None:
            cursor = _backwards_cursor(ids, query.starting_after, window)
            links.append({"rel": "next", "uri": uri("starting_after", cursor)})
        elif window.start < window.end < len(ids):
            links.append(
                {"rel": "next", "uri": uri("starting_after", ids[window.end - 1])}
            )
        if 0 < window.start < len(ids):
            links.append(
                {"rel": "prev", "uri": uri("ending_before", ids[window.start])}
            )
        return links

    def _respond_record(self, record_id: str, exchange: Exchange) -> Response:
        collection = exchange.collection
        if collection == EVENTS:
            record = self._event_record(record_id)
        else:
            with self._lock:
                record = self._listings[str(collection)].record(record_id)
        if record is None:
            return self._error(
                404, f"No {collection} record has the id {record_id!r}.", collection
            )
        uri = f"{API_PREFIX}/{collection}/{record_id}"
        return json_response(
            200, {"data": record, "links": [{"rel": "self", "uri": uri}]}
        )

    def _event_record(self, event_id: str) -> dict[str, Any] | None:
        view = self._event_view()
        index = bisect.bisect_left(view.ids, event_id)
        if index == len(view.ids) or view.ids[index] != event_id:
            return None
        return json.loads(view.item(index))["data"]


def _window(ids: Sequence[str], query: _ListQuery, *, events: bool) -> _Window:
    """Return the slice a list request selects; an event cursor must be recorded."""
    cursor = query.ending_before
    if cursor is not None:
        if events and cursor == "last":
            end = len(ids)
        else:
            end = bisect.bisect_left(ids, cursor)
            if events:
                _require_event(ids, end, cursor)
        return _Window(max(0, end - query.limit), end)
    start = 0
    if query.starting_after is not None:
        start = bisect.bisect_right(ids, query.starting_after)
        if events:
            _require_event(ids, start - 1, query.starting_after)
    return _Window(start, min(start + query.limit, len(ids)))


def _require_event(ids: Sequence[str], index: int, cursor: str) -> None:
    if not (0 <= index < len(ids) and ids[index] == cursor):
        raise _UnknownEvent(
            f"No event has the id {cursor!r}, or it is older than the events "
            "window; start again from the latest event (ending_before=last)."
        )


def _backwards_cursor(
    ids: Sequence[str], starting_after: str | None, window: _Window
) -> str | None:
    """Return an id before the request's cursor, or the page's first id on page 1."""
    if starting_after is not None:
        before = bisect.bisect_left(ids, starting_after) - 1
        if before >= 0:
            return ids[before]
    return ids[window.start] if window.start < len(ids) else None


def _link_uri(
    path: str,
    pairs: list[tuple[str, str]],
    limit: int,
    cursor_name: str,
    cursor: str | None,
) -> str:
    """Return a paging link that keeps the request's other parameters, such as role."""
    other_pairs = [(n, v) for n, v in pairs if n not in CURSOR_PARAMETERS]
    linked = [("limit", str(limit)), *other_pairs]
    if cursor is not None:
        linked.append((cursor_name, cursor))
    return f"{path}?{urlencode(linked)}"


def _read_listing(path: Path, collection: str, districts: set[str]) -> _Listing:
    """Read one v3.0 list file; add the district ids of its records to ``districts``."""
    rows = read_records(path, "data", partial(_parse_item, path, collection))
    items = {record_id: item for record_id, item, _, _ in rows}
    if len(items) < len(rows):
        logger.warning(
            "%s repeats ids in %d records; the last record of each id is served",
            path,
            len(rows) - len(items),
        )
    roles: dict[str, list[str]] = {}
    for record_id, item, record_roles, district in rows:
        # Only the served record of a repeated id counts.
        if items[record_id] is not item:
            continue
        for role in record_roles:
            roles.setdefault(role, []).append(record_id)
        if district:
            districts.add(district)
    return _Listing(items, roles)


def _parse_item(
    path: Path, collection: str, raw: bytes, element: Any
) -> tuple[str, bytes, tuple[str, ...], str | None]:
    record = element.get("data") if isinstance(element, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise ValueError(
            f'{path}: every element of "data" must be {{"data": {{"id": ...}}, '
            f'"uri": ...}}; one is {str(element)[:80]}.'
        )
    record_id = record["id"]
    uri = f"{API_PREFIX}/{collection}/{record_id}"
    if element.keys() != {"data", "uri"} or element["uri"] != uri:
        raw = encode_json({"data": record, "uri": uri})
    roles = record.get("roles")
    record_roles = (
        tuple(roles) if collection == "users" and isinstance(roles, dict) else ()
    )
    district = record.get("district")
    return record_id, raw, record_roles, district if isinstance(district, str) else None


def _synthesized_districts(district_ids: set[str]) -> _Listing:
    """Return one district record, holding only its id, per id the records name."""
    items = {
        district_id: encode_json(
            {
                "data": {"id": district_id},
                "uri": f"{API_PREFIX}/districts/{district_id}",
            }
        )
        for district_id in district_ids
    }
    return _Listing(items, {})


def _changes(
    collection: str, old: _Listing, new: _Listing
) -> Iterator[tuple[str, bytes]]:
    """Yield the event type and ``data`` bytes of each change from old to new."""
    for record_id in new.ids:
        before_item = old.items.get(record_id)
        after_item = new.items[record_id]
        if before_item is None:
            after = json.loads(after_item)["data"]
            yield f"{collection}.created", encode_json({"object": after})
            continue
        if before_item == after_item:
            continue
        before = json.loads(before_item)["data"]
        after = json.loads(after_item)["data"]
        if before != after:
            previous = _previous_attributes(before, after)
            payload = {"object": after, "previous_attributes": previous}
            yield f"{collection}.updated", encode_json(payload)
    for record_id in old.ids:
        if record_id not in new.items:
            before = json.loads(old.items[record_id])["data"]
            yield f"{collection}.deleted", encode_json({"object": before})


def _previous_attributes(
    before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """Return the top-level fields that changed, with their values before.

    A field that the record gained has the previous value null.
    """
    changed = {}
    for key in sorted(before.keys() | after.keys()):
        if before.get(key, _MISSING) != after.get(key, _MISSING):
            changed[key] = before.get(key)
    return changed
