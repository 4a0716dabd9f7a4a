"""Pull a district's roster from a OneRoster 1.1 REST API, as ClassLink serves it.

Collections are paged with ``limit`` and ``offset`` until the provider's headers
or a short page show the end. When the provider sends ``X-Total-Count``, the
distinct records pulled must match it. A collection that changed while it was
paged is read once more, and fails the pull if it still does not match. Requests
are signed with OAuth 1.0a HMAC-SHA256 or carry an OAuth 2 client-credentials
token.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import httpx

from rostersync.errors import ProviderAuthError, ProviderError
from rostersync.providers import oauth1
from rostersync.providers.http import (
    RATE_WINDOW_SECONDS,
    ProviderHttp,
    TokenUnavailable,
    provider_code,
    reset_wait,
)
from rostersync.readers.oneroster_rest import OneRosterRestBuilder
from rostersync.roster import CursorUpdate, Roster

logger = logging.getLogger(__name__)

BASE_PATH = "/ims/oneroster/v1p1"
# The collections in the order they are pulled, and those a delta may filter.
# Orgs are pulled whole because users' schools resolve through the org tree.
# Enrollments are pulled whole because an enrollment that moves to another class
# keeps its sourcedId, while the store identifies enrollments by class, user and
# role, so only a whole pull shows the old one is gone. Academic sessions are few.
COLLECTIONS = ("orgs", "academicSessions", "users", "classes", "enrollments")
DELTA_COLLECTIONS = ("users", "classes")
# A delta requests records changed since the previous pull began, less this
# margin, which covers a difference between the provider's clock and ours.
# Reading a changed record twice changes nothing.
DELTA_OVERLAP = timedelta(hours=1)
MAX_DELTA_AGE = timedelta(days=30)
MAX_PAGES = 100_000
# OAuth 2 error codes that mean the client id or secret is wrong (RFC 6749 5.2).
_CREDENTIAL_CODES = (" (code invalid_client)", " (code unauthorized_client)")
# A token longer than this would not fit in the request headers servers accept.
MAX_TOKEN_LENGTH = 8192
# An access token this close to its expiry is renewed before the request.
TOKEN_RENEWAL_MARGIN_SECONDS = 60.0


class OAuth1Signer(httpx.Auth):
    """Sign each request with two-legged OAuth 1.0a HMAC-SHA256 (ClassLink)."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self._client_id = client_id
        self._client_secret = client_secret

    def __repr__(self) -> str:
        return "OAuth1Signer()"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = oauth1.authorization_header(
            request.method,
            str(request.url),
            request.url.params.multi_items(),
            consumer_key=self._client_id,
            consumer_secret=self._client_secret,
        )
        yield request


class OAuth2ClientCredentials:
    """An OAuth 2 client-credentials token, which ``ProviderHttp`` sends as a bearer.

    The token is requested with HTTP Basic authentication of the client id and
    secret, kept in memory only, renewed before it expires, and discarded when a
    request gets 401 (``ProviderHttp`` then fetches one new token and tries once
    more).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        clock=time.time,
    ) -> None:
        self._token_url = token_url
        # RFC 6749 section 2.3.1: each part is form-encoded before they are joined,
        # so a ':' or '+' in the id or secret reaches the server as it was given.
        id_part, secret_part = (
            quote_plus(client_id, safe=""),
            quote_plus(client_secret, safe=""),
        )
        joined = f"{id_part}:{secret_part}"
        self._basic = base64.b64encode(joined.encode()).decode()
        self._scope = scope
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self._token_url!r})"

    def token(self, http: ProviderHttp) -> str:
        """Return the current token, requesting a new one when it is near expiry."""
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        reply = http.post_form(
            self._token_url,
            form,
            {"Authorization": f"Basic {self._basic}", "Accept": "application/json"},
        )
        return self._store(reply.response, reply.content)

    def discard(self) -> None:
        self._token = None

    def _store(self, response: httpx.Response, content: bytes) -> str:
        where = f"POST {httpx.URL(self._token_url).path}"
        status = response.status_code
        if status == 429:
            wait = reset_wait(response.headers, now=time.time())
            raise TokenUnavailable(
                f"was rate-limited at the token endpoint ({where})",
                wait=RATE_WINDOW_SECONDS if wait is None else wait,
            )
        if status >= 500:
            raise TokenUnavailable(f"found the token endpoint failing (HTTP {status})")
        code = provider_code(content)
        if status in (401, 403) or (status == 400 and code in _CREDENTIAL_CODES):
            raise ProviderAuthError(
                f"The OAuth 2 token endpoint rejected the client id and secret "
                f"({where}, HTTP {status}{code}). Ask the district for new "
                "ClassLink credentials, update the environment variables or Prefect "
                "Secret blocks the integration names, and run the sync again.",
                status=status,
            )
        if status == 400:
            raise ProviderError(
                f"The OAuth 2 token endpoint rejected the token request ({where}, "
                f"HTTP 400{code}); check the integration's --token-url.",
                status=status,
            )
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        usable = isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_LENGTH
        if status != 200 or not usable or not token.isprintable():
            raise ProviderError(
                f"The OAuth 2 token endpoint ({where}) returned HTTP {status} without "
                "a usable access_token; check the integration's --token-url.",
                status=status,
            )
        lifetime = body.get("expires_in")
        usable = isinstance(lifetime, int | float) and not isinstance(lifetime, bool)
        seconds = float(lifetime) if usable and math.isfinite(lifetime) else 3600.0
        self._token = token
        self._expires_at = self._clock() + max(
            0.0, seconds - TOKEN_RENEWAL_MARGIN_SECONDS
        )
        return token


@dataclass(frozen=True)
class StoredTimestamp:
    """The ``dateLastModified`` bound the store kept after the last applied pull."""

    value: str | None
    taken_at: datetime | None


class OneRosterClient:
    """Page through OneRoster 1.1 REST collections with a ``ProviderHttp`` session."""

    def __init__(self, http: ProviderHttp, *, page_size: int, base_path: str) -> None:
        self.http = http
        self.page_size = page_size
        self.base_path = base_path

    def pages(
        self, collection: str, filter_expression: str | None = None
    ) -> Iterator[tuple[dict, str, int | None]]:
        """Yield each page of ``collection``, the request, and its X-Total-Count.

        A provider may serve fewer records than ``limit`` requests, so a short page
        ends the collection only when nothing says more follow. The signs, in order:
        X-Total-Count, a ``Link`` header with or without ``rel="next"``, and a page
        shorter than an earlier one. Otherwise one more request confirms the end.
        """
        path = f"{self.base_path}/{collection}"
        offset = 0
        largest = 0
        for _ in range(MAX_PAGES):
            params = [("limit", str(self.page_size)), ("offset", str(offset))]
            if filter_expression:
                params.append(("filter", filter_expression))
            body, response = self.http.get_json(
                path, params, envelope=collection, collection=collection
            )
            total = _total_count(response, collection)
            query = "&".join(f"{name}={value}" for name, value in params)
            yield body, f"GET {path}?{query}", total
            received = len(body[collection])
            offset += received
            if received == 0 or _is_last_page(
                response, received, self.page_size, largest, offset, total
            ):
                return
            largest = max(largest, received)
        raise ProviderError(
            f"The OneRoster API's {collection} did not end within {MAX_PAGES:,} "
            "pages; the pull stopped and nothing was written."
        )


def _is_last_page(
    response: httpx.Response,
    received: int,
    limit: int,
    largest: int,
    offset: int,
    total: int | None,
) -> bool:
    """Say whether a page that held records was the collection's last one."""
    if total is not None:
        return offset >= total
    if "link" in response.headers:
        return "next" not in response.links
    if received >= limit:
        return False
    # A page shorter than an earlier one is the end. A short first page may be the
    # provider's page size, which only the next request shows.
    return largest > 0 and received < largest


def pull_oneroster(
    client: OneRosterClient,
    *,
    source: str,
    cursor: StoredTimestamp,
    incremental: bool,
    full_pull: bool,
    now: datetime | None = None,
) -> Roster:
    """Pull the district's roster, as a delta from ``cursor`` when allowed.

    In a delta, users and classes are those changed since the cursor, and a missing
    record has not changed. In both kinds of pull, ``tobedeleted`` archives.
    """
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    reason = _full_pull_reason(cursor, full_pull, now) if incremental else None
    delta = incremental and reason is None
    changed_since = (
        f"dateLastModified>'{cursor.value}'" if delta and cursor.value else None
    )

    # Set first, so that a pull that fails part way reports what it was.
    client.http.stats.mode = "incremental" if delta else "full"
    client.http.stats.reason = reason
    builder = OneRosterRestBuilder()
    for collection in COLLECTIONS:
        expression = changed_since if collection in DELTA_COLLECTIONS else None
        _pull_collection(client, builder, collection, expression)

    modes = dict.fromkeys(("users", "sections"), "delta") if delta else None
    roster = builder.build(source, modes)  # type: ignore[arg-type]
    roster.pull = client.http.stats
    roster.pull.mode = "incremental" if delta else "full"
    roster.pull.reason = reason
    if incremental:
        roster.cursor = CursorUpdate(_timestamp(now - DELTA_OVERLAP), now)
    _log_pull(source, roster, started)
    return roster


def _full_pull_reason(
    cursor: StoredTimestamp, full_pull: bool, now: datetime
) -> str | None:
    if full_pull:
        return "a full pull was requested"
    if cursor.value is None and cursor.taken_at is not None:
        return (
            "the previous sync quarantined records, so this pull reads them again "
            "in full"
        )
    if cursor.value is None:
        return "no delta cursor is stored yet"
    if cursor.taken_at is not None and now - cursor.taken_at > MAX_DELTA_AGE:
        return (
            f"the stored delta cursor dates from {cursor.taken_at:%Y-%m-%d}, more "
            "than 30 days ago"
        )
    return None


def _pull_collection(
    client: OneRosterClient,
    builder: OneRosterRestBuilder,
    collection: str,
    filter_expression: str | None,
) -> None:
    """Pull one collection; read it again once if it does not match X-Total-Count."""
    for attempt in (1, 2):
        total = None
        for body, where, page_total in client.pages(collection, filter_expression):
            builder.add_page(collection, body, where)
            total = page_total if page_total is not None else total
        if total is None:
            return
        distinct = builder.distinct_records(collection)
        if distinct == total:
            return
        if attempt == 1:
            logger.info(
                "oneroster %s: %d distinct records but X-Total-Count %d; records "
                "changed while paging, so the collection is read again",
                collection,
                distinct,
                total,
            )
            builder.restart(collection)
    raise ProviderError(
        f"The OneRoster API reported {total} {collection} in X-Total-Count, but its "
        f"pages held {distinct} distinct records, twice in a row. Records were "
        "missed or changed while paging, so the pull is incomplete and nothing was "
        "written; run the sync again when the district's data is stable."
    )


def _total_count(response: httpx.Response, collection: str) -> int | None:
    value = response.headers.get("x-total-count")
    if value is None:
        return None
    try:
        total = int(value)
    except ValueError:
        total = -1
    if total < 0:
        raise ProviderError(
            f"The OneRoster API sent an X-Total-Count for {collection} that is not "
            "a count of records; nothing was written."
        )
    return total


def _timestamp(moment: datetime) -> str:
    """Format a time as OneRoster's dateLastModified: UTC with milliseconds."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _log_pull(source: str, roster: Roster, started: float) -> None:
    pull = roster.pull
    logger.info(
        "oneroster %s: %s pull in %.1f s; requests %d, pages %d, retries %d, "
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
