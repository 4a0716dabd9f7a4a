"""Pull a district's shared roster from the Clever API v3.0, in full or by events.

A full pull reads districts, schools, users (one role at a time, so contacts'
data is never requested), sections and terms, page by page, following each
page's ``links[rel=next]``. An incremental pull reads the Events API from the
stored cursor and applies each event's new record state. Pages go to the
``CleverRosterBuilder`` one at a time, so a pull never keeps a whole collection's
JSON in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from rostersync.errors import ProviderAuthError, ProviderError
from rostersync.providers.http import ProviderHttp
from rostersync.readers.clever import CleverRosterBuilder
from rostersync.roster import CursorUpdate, Finding, Roster

logger = logging.getLogger(__name__)

API = "/v3.0"
# Roles whose users the portal stores; contacts are not requested.
USER_ROLES = ("student", "teacher", "staff", "district_admin")
# Clever keeps events for 30 days; an older cursor cannot be read from.
EVENTS_WINDOW = timedelta(days=30)
# A margin for clock differences, so a cursor close to the window's end is not
# sent only to be rejected.
_WINDOW_MARGIN = timedelta(hours=1)
MAX_PAGES = 100_000
QUARANTINE_REASON = (
    "the previous sync quarantined records, so this pull reads them again in full"
)
# The cursor kept after a full pull that found no event at all: the next pull reads
# every event Clever still has, all of which came after that pull.
FROM_FIRST_EVENT = "first"


class CursorRejected(Exception):
    """The Events API refused the stored cursor, so a full pull must replace it."""


@dataclass(frozen=True)
class StoredCursor:
    """The Events cursor the store kept after the last applied pull."""

    event_id: str | None
    taken_at: datetime | None


class CleverClient:
    """Page through Clever API v3.0 collections with a ``ProviderHttp`` session."""

    def __init__(self, http: ProviderHttp, *, page_size: int) -> None:
        self.http = http
        self.page_size = page_size

    def pages(
        self, collection: str, params: dict[str, str] | None = None
    ) -> Iterator[tuple[dict, str]]:
        """Yield each page of ``collection`` with the request it came from.

        Raises ProviderError when a next link leaves the collection, repeats a page
        or goes back: either would page forever or skip records.
        """
        path = f"{API}/{collection}"
        query: dict[str, str] = {"limit": str(self.page_size), **(params or {})}
        seen = {(path, tuple(sorted(query.items())))}
        cursor: str | None = None
        empty_in_a_row = 0
        for _ in range(MAX_PAGES):
            body, _response = self.http.get_json(
                path, query, envelope="data", collection=collection
            )
            where = _where(path, query)
            yield body, where
            next_link = _next_link(body, where)
            if next_link is None:
                return
            # Clever's last page has no next link. One empty page that links on
            # is followed, because a collection may end exactly on a page
            # boundary. A second empty page in a row means paging will not end.
            empty_in_a_row = 0 if body["data"] else empty_in_a_row + 1
            if empty_in_a_row == 2:
                raise self._cursor_error(
                    where, "follows two empty pages in a row", loops=True
                )
            path, query = self._follow(next_link, collection, query, where)
            key = (path, tuple(sorted(query.items())))
            after = query.get("starting_after")
            if key in seen or (after is not None and after == cursor):
                raise self._cursor_error(where, "repeats an earlier page")
            if after is not None and cursor is not None and after < cursor:
                raise self._cursor_error(where, "goes back to an earlier record")
            seen.add(key)
            cursor = after
        raise ProviderError(
            f"Clever's {collection} did not end within {MAX_PAGES:,} pages; the "
            "pull stopped and nothing was written."
        )

    def latest_event(self) -> tuple[str, datetime | None] | None:
        """Return the id and time of the district's newest event, or None."""
        body, _ = self.http.get_json(
            f"{API}/events",
            {"ending_before": "last", "limit": "1"},
            envelope="data",
            collection="events",
        )
        records = body["data"]
        if not records:
            return None
        event = records[-1].get("data") if isinstance(records[-1], dict) else None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise ProviderError(
                "Clever's newest event has no id, so no cursor can be kept; the "
                "response is not a v3.0 events list."
            )
        # An event time that cannot be read counts as now, so the cursor still
        # ages out of the window.
        return event["id"], _parse_time(event.get("created")) or datetime.now(UTC)

    def events_after(self, event_id: str) -> Iterator[tuple[dict, str]]:
        """Yield the pages of events after ``event_id``, oldest first.

        ``FROM_FIRST_EVENT`` reads from the oldest event Clever keeps. Raises
        CursorRejected when Clever responds to the first page with 400 or 404, as
        it does for an unknown or expired cursor.
        """
        after = {} if event_id == FROM_FIRST_EVENT else {"starting_after": event_id}
        pages = self.pages("events", after)
        try:
            first = next(pages)
        except StopIteration:
            return
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            if exc.status in (400, 404):
                raise CursorRejected(
                    f"the Events API rejected the stored cursor {event_id} with "
                    f"HTTP {exc.status}"
                ) from exc
            raise
        yield first
        yield from pages

    def _follow(
        self, link: str, collection: str, query: dict[str, str], where: str
    ) -> tuple[str, dict[str, str]]:
        """Return the next request: this request's query with the link's cursor.

        The link must stay on this collection and this host, because the client
        sends the district's token with it. Only its ``starting_after`` is taken,
        so a link that drops or changes the role filter can neither skip the
        role's users nor request contacts.
        """
        parts = urlsplit(link)
        base = self.http.client.base_url
        expected = f"{API}/{collection}"
        same_host = not parts.netloc or (
            parts.scheme == base.scheme and parts.netloc == base.netloc.decode()
        )
        if not same_host or parts.path.rstrip("/") != expected:
            raise ProviderError(
                f"Clever's next link after {where} points outside {expected} on "
                "this host, so it is not followed; nothing was written."
            )
        after = dict(parse_qsl(parts.query)).get("starting_after", "").strip()
        if not after:
            raise ProviderError(
                f"Clever's next link after {where} has no starting_after cursor, so "
                "the next page cannot be requested; nothing was written."
            )
        return expected, {**_without_cursor(query), "starting_after": after}

    def _cursor_error(
        self, where: str, problem: str, *, loops: bool = False
    ) -> ProviderError:
        effect = "would not end" if loops else "would loop or skip records"
        return ProviderError(
            f"Clever's next link after {where} {problem}, so paging {effect}; the "
            "pull stopped and nothing was written. Run the sync again, and report "
            "the response to Clever if it repeats."
        )


def pull_clever(
    client: CleverClient,
    *,
    source: str,
    cursor: StoredCursor,
    incremental: bool,
    full_pull: bool,
    now: datetime | None = None,
) -> Roster:
    """Pull the district's roster: by events from ``cursor`` when possible, else full.

    The roster's ``cursor`` is the event id to store once the pull is applied.
    """
    reason = None
    if incremental:
        reason = _full_pull_reason(cursor, full_pull, now or datetime.now(UTC))
        if reason is None:
            try:
                return _pull_events(client, source, cursor)
            except CursorRejected as exc:
                reason = f"{exc}, so the pull is full"
                logger.info("clever %s: %s", source, reason)
    return _pull_everything(client, source, reason, incremental=incremental)


def _full_pull_reason(
    cursor: StoredCursor, full_pull: bool, now: datetime
) -> str | None:
    """Say why an incremental integration's pull must be full, or return None."""
    if full_pull:
        return "a full pull was requested"
    if cursor.event_id is None and cursor.taken_at is not None:
        return QUARANTINE_REASON
    if cursor.event_id is None:
        return "no Events cursor is stored yet"
    age = now - cursor.taken_at if cursor.taken_at else timedelta(0)
    if age > EVENTS_WINDOW - _WINDOW_MARGIN:
        return (
            f"the stored Events cursor dates from {cursor.taken_at:%Y-%m-%d}, older "
            "than Clever's 30-day window"
        )
    return None


def _pull_everything(
    client: CleverClient, source: str, reason: str | None, *, incremental: bool
) -> Roster:
    started = time.perf_counter()
    pulled_at = datetime.now(UTC)
    findings: list[Finding] = []
    # Set first, so that a pull that fails part way reports what it was.
    client.http.stats.mode = "full"
    client.http.stats.reason = reason
    # The newest event is read before the data, so that a change made while the
    # pull runs is read again by the next incremental pull.
    latest = _newest_event(client, findings) if incremental else None

    builder = CleverRosterBuilder()
    for body, where in client.pages("districts"):
        builder.add_districts_page(body, where)
    for body, where in client.pages("schools"):
        builder.add_schools_page(body, where)
    for role in USER_ROLES:
        for body, where in client.pages("users", {"role": role}):
            builder.add_users_page(body, where)
    for body, where in client.pages("sections"):
        builder.add_sections_page(body, where)
    for _body, _where in client.pages("terms"):
        # The portal stores no terms; the pages are counted in the pull's figures.
        pass

    roster = builder.build(source)
    roster.findings.extend(findings)
    roster.pull = client.http.stats
    roster.pull.mode = "full"
    roster.pull.reason = reason
    if incremental:
        if latest is not None:
            roster.cursor = CursorUpdate(*latest)
        elif not any(f.check == "events_unavailable" for f in findings):
            roster.cursor = CursorUpdate(FROM_FIRST_EVENT, pulled_at)
        else:
            roster.cursor = CursorUpdate(None, None)
    _log_pull(source, roster, started)
    return roster


def _newest_event(
    client: CleverClient, findings: list[Finding]
) -> tuple[str, datetime | None] | None:
    try:
        return client.latest_event()
    except ProviderAuthError:
        raise
    except ProviderError as exc:
        if exc.status not in (403, 404):
            raise
        message = (
            f"The Events API answered HTTP {exc.status}, so no cursor is kept and "
            "the next sync pulls in full again. Ask Clever to enable events for "
            "the application."
        )
        findings.append(Finding("events", "events_unavailable", "warning", message))
        return None


def _pull_events(client: CleverClient, source: str, cursor: StoredCursor) -> Roster:
    started = time.perf_counter()
    builder = CleverRosterBuilder()
    assert cursor.event_id is not None
    client.http.stats.mode = "incremental"
    # The token's district is read too: the events carry only changed records,
    # so without it a record of another district could pass the one-district check.
    for body, where in client.pages("districts"):
        builder.add_districts_page(body, where)
    for body, where in client.events_after(cursor.event_id):
        builder.add_events_page(body, where)

    roster = builder.build(source, delta=True)
    roster.pull = client.http.stats
    roster.pull.mode = "incremental"
    if builder.last_event is None:
        roster.cursor = CursorUpdate(cursor.event_id, cursor.taken_at)
    else:
        event_id, created = builder.last_event
        taken_at = _parse_time(created) or datetime.now(UTC)
        roster.cursor = CursorUpdate(event_id, taken_at)
    _log_pull(source, roster, started)
    return roster


def _log_pull(source: str, roster: Roster, started: float) -> None:
    pull = roster.pull
    logger.info(
        "clever %s: %s pull in %.1f s; requests %d, pages %d, retries %d, "
        "rate-limited %d; records: %s",
        source,
        pull.mode,
        time.perf_counter() - started,
        pull.requests,
        sum(pull.pages.values()),
        pull.retries,
        pull.rate_limited,
        ", ".join(f"{name} {count}" for name, count in pull.records.items()) or "none",
    )


def _next_link(body: dict, where: str) -> str | None:
    links = body.get("links", [])
    if not isinstance(links, list):
        raise ProviderError(
            f'Clever\'s response to {where} has "links" that is not a list; the '
            "response is not a v3.0 list response."
        )
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next":
            uri = link.get("uri")
            if not isinstance(uri, str) or not uri:
                raise ProviderError(
                    f"Clever's next link in the response to {where} has no uri."
                )
            return uri
    return None


def _without_cursor(query: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in query.items()
        if name not in ("starting_after", "ending_before")
    }


def _where(path: str, query: dict[str, str]) -> str:
    pairs = "&".join(f"{name}={value}" for name, value in query.items())
    return f"GET {path}?{pairs}" if pairs else f"GET {path}"


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
