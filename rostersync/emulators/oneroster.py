"""A local emulator of the OneRoster 1.1 REST rostering API as ClassLink serves it."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlencode

from rostersync.emulators.faults import (
    BAD_REQUEST,
    DROP,
    MOVE,
    NO_DATA,
    RATE_LIMIT,
    SERVER_ERROR,
    SLOW,
    TRUNCATE,
    UNAUTHORIZED,
)
from rostersync.emulators.oneroster_data import (
    BadRequest,
    RecordFilter,
    Row,
    Table,
    merge,
    new_table,
    parse_row,
)
from rostersync.emulators.records import (
    check_folders,
    find_file,
    iso_timestamp,
    read_records,
)
from rostersync.emulators.server import (
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    LOOPBACK,
    AuthenticationFailed,
    Clock,
    EmulatorServer,
    Exchange,
    Request,
    Response,
    Route,
    json_response,
)
from rostersync.providers import oauth1

logger = logging.getLogger(__name__)

BASE_PATH = "/ims/oneroster/v1p1"
TOKEN_PATH = "/oauth2/v2/token"
TOKEN = "token"
COLLECTIONS = ("orgs", "users", "classes", "enrollments", "academicSessions")
SINGULAR = {
    "orgs": "org",
    "users": "user",
    "classes": "class",
    "enrollments": "enrollment",
    "academicSessions": "academicSession",
}
AUTH_MODES = ("oauth1", "oauth2", "either")
DEFAULT_LIMIT = 100
DEFAULT_MAX_LIMIT = 10_000
DEFAULT_TOKEN_LIFETIME = 3600
DEFAULT_SCOPE = "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"
# An OAuth 1.0a request is rejected when its timestamp is this far from the clock,
# or when its nonce was already used within the window.
OAUTH1_TIMESTAMP_TOLERANCE_SECONDS = 300
OAUTH1_NONCE_WINDOW_SECONDS = 600
# Filtered views of a large collection are costly to build, so the latest few are
# kept for the pages that follow.
FILTER_CACHE_SIZE = 8
_CODE_MINOR = {
    400: "invaliddata",
    401: "unauthorisedrequest",
    403: "forbidden",
    404: "unknownobject",
    405: "invaliddata",
    429: "server_busy",
}
_OAUTH_ERROR = {
    400: "invalid_request",
    401: "invalid_client",
    404: "invalid_request",
    405: "invalid_request",
}


@dataclass(frozen=True)
class _ListQuery:
    limit: int
    offset: int
    filter_text: str | None

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1


class OneRosterEmulator(EmulatorServer):
    """Serve OneRoster 1.1 REST collections under /ims/oneroster/v1p1/.

    ``data_dirs`` are folders of ``orgs.json``, ``users.json``, ``classes.json``,
    ``enrollments.json`` and ``academicSessions.json``, each ``{"<collection>":
    [...]}``; an earlier folder's file wins. ``auth`` chooses OAuth 1.0a signed
    requests, OAuth 2 client-credentials bearer tokens or either. ``reload()``
    re-reads the folders: changed records get a new dateLastModified and removed
    ones stay visible to dateLastModified filters as tobedeleted tombstones.
    """

    name = "OneRoster emulator"
    fault_kinds = (
        RATE_LIMIT,
        SERVER_ERROR,
        SLOW,
        TRUNCATE,
        DROP,
        NO_DATA,
        MOVE,
        UNAUTHORIZED,
        BAD_REQUEST,
    )
    fault_paths = (*COLLECTIONS, TOKEN)

    def __init__(
        self,
        data_dirs: Sequence[Path | str],
        *,
        client_id: str,
        client_secret: str,
        auth: str = "either",
        now: Clock = time.time,
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE,
        max_limit: int = DEFAULT_MAX_LIMIT,
        total_count_header: bool = True,
        link_header: bool = True,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        page_cap: int | None = None,
    ) -> None:
        super().__init__(now=now, rate_limit_per_minute=rate_limit_per_minute)
        _check_settings(client_id, client_secret, auth, max_limit, token_lifetime)
        self.data_dirs = check_folders(data_dirs)
        self.auth = auth
        self.max_limit = max_limit
        self.total_count_header = total_count_header
        self.link_header = link_header
        self.token_lifetime = token_lifetime
        # Some providers serve fewer records per page than the limit requests.
        self.page_cap = page_cap
        self._client_id = client_id
        self._client_secret = client_secret
        self._lock = threading.RLock()
        self._reload_lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._nonces: dict[str, float] = {}
        self._warned_missing: set[str] = set()
        self._filter_cache: OrderedDict[tuple[Table, str | None], list[str]] = (
            OrderedDict()
        )
        self._tables = {name: new_table(*self._read_rows(name)) for name in COLLECTIONS}

    # Data

    def reload(self) -> int:
        """Re-read the data folders and serve them; return how many records changed.

        New and changed records (ignoring dateLastModified) get dateLastModified set
        to the clock's time; removed records become tobedeleted tombstones.
        """
        with self._reload_lock:
            stamp = iso_timestamp(self.now())
            changes = 0
            # One collection at a time, so a reload keeps a second copy of only one
            # collection in memory. Clients may meanwhile see some collections
            # reloaded and others not yet.
            for name in COLLECTIONS:
                rows, fields = self._read_rows(name)
                with self._lock:
                    table, changed = merge(self._tables[name], rows, fields, stamp)
                    self._tables[name] = table
                    self._filter_cache.clear()
                changes += changed
                del rows
        logger.info("%s reloaded its data: %d records changed", self.name, changes)
        return changes

    def _read_rows(self, name: str) -> tuple[list[Row], set[str]]:
        """Read one collection's file; return its rows and their top-level fields."""
        path = find_file(self.data_dirs, f"{name}.json")
        if path is None:
            if name not in self._warned_missing:
                self._warned_missing.add(name)
                logger.warning(
                    "%s.json is in none of the data folders; %s is served empty",
                    name,
                    name,
                )
            return [], set()
        fields: set[str] = set()
        return read_records(path, name, partial(parse_row, path, fields)), fields

    def _move_first_to_end(self, name: str) -> None:
        """Move the first record of ``name`` to the end of its serving order."""
        with self._lock:
            table = self._tables[name]
            if len(table.order) < 2:
                return
            order = [*table.order[1:], table.order[0]]
            self._tables[name] = Table(table.records, order, table.fields)
            self._filter_cache.clear()

    def _visible(
        self,
        name: str,
        table: Table,
        record_filter: RecordFilter | None,
        text: str | None,
    ) -> list[str]:
        """Return the sourcedIds a listing of ``table`` shows, in serving order."""
        key = (table, text)
        with self._lock:
            cached = self._filter_cache.get(key)
            if cached is not None:
                self._filter_cache.move_to_end(key)
                return cached
        records = table.records
        if record_filter is None:
            ids = [i for i in table.order if not records[i].tombstone]
        else:
            tombstones = record_filter.includes_tombstones
            ids = [
                i
                for i in table.order
                if (tombstones or not records[i].tombstone)
                and record_filter.matches(records[i])
            ]
        with self._lock:
            # A reload may have replaced the table meanwhile; cache only current ones.
            if self._tables[name] is table:
                self._filter_cache[key] = ids
                while len(self._filter_cache) > FILTER_CACHE_SIZE:
                    self._filter_cache.popitem(last=False)
        return ids

    # Authentication

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("Authorization") or ""
        scheme = header.partition(" ")[0].lower()
        if scheme == "oauth" and self.auth in ("oauth1", "either"):
            return self._verify_oauth1(request, header)
        if scheme == "bearer" and self.auth in ("oauth2", "either"):
            return self._verify_bearer(header)
        expected = {
            "oauth1": "an OAuth 1.0a signed Authorization header",
            "oauth2": "Authorization: Bearer with a token from " + TOKEN_PATH,
            "either": "an OAuth 1.0a signature or a Bearer token from " + TOKEN_PATH,
        }[self.auth]
        raise AuthenticationFailed(
            f"Missing or unsupported credentials; send {expected}."
        )

    def _verify_oauth1(self, request: Request, header: str) -> str:
        """Check a two-legged OAuth 1.0a request; return its rate-limit key."""
        parameters = oauth1.parse_authorization_header(header)
        key = parameters.get("oauth_consumer_key", "")
        if not hmac.compare_digest(key.encode(), self._client_id.encode()):
            raise AuthenticationFailed("Unknown oauth_consumer_key.")
        method = parameters.get("oauth_signature_method")
        if method != oauth1.SIGNATURE_METHOD:
            raise AuthenticationFailed(
                f"oauth_signature_method must be {oauth1.SIGNATURE_METHOD}, "
                f"got {method!r}."
            )

        self._check_timestamp(parameters.get("oauth_timestamp"))
        nonce = parameters.get("oauth_nonce")
        if not nonce:
            raise AuthenticationFailed("The oauth_nonce parameter is missing.")
        self._check_signature(request, parameters)
        self._use_nonce(nonce)
        return f"oauth1:{key}"

    def _check_signature(self, request: Request, parameters: dict[str, str]) -> None:
        # The client signed the URL it sent the request to, so the host and port
        # come from its Host header.
        host = request.headers.get("Host") or f"{LOOPBACK}:{self.port}"
        signed = [
            (name, value)
            for name, value in parameters.items()
            if name.startswith("oauth_") and name != "oauth_signature"
        ]
        base = oauth1.signature_base_string(
            request.method, f"http://{host}{request.path}", [*request.pairs, *signed]
        )
        expected = oauth1.sign(base, self._client_secret)
        signature = parameters.get("oauth_signature", "")
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise AuthenticationFailed(
                "The OAuth 1.0a signature does not match the request; sign the "
                "method, the URL and every query parameter with HMAC-SHA256."
            )

    def _check_timestamp(self, text: str | None) -> None:
        try:
            timestamp = int(text or "")
        except ValueError:
            raise AuthenticationFailed(
                "oauth_timestamp must be a whole number of epoch seconds."
            ) from None
        skew = abs(self.now() - timestamp)
        if skew > OAUTH1_TIMESTAMP_TOLERANCE_SECONDS:
            raise AuthenticationFailed(
                f"oauth_timestamp is {skew:.0f} s from the server clock; the limit is "
                f"{OAUTH1_TIMESTAMP_TOLERANCE_SECONDS} s."
            )

    def _use_nonce(self, nonce: str) -> None:
        now = self.now()
        with self._lock:
            cutoff = now - OAUTH1_NONCE_WINDOW_SECONDS
            self._nonces = {n: t for n, t in self._nonces.items() if t >= cutoff}
            if nonce in self._nonces:
                raise AuthenticationFailed(
                    "The oauth_nonce was already used within 10 minutes; send a new "
                    "nonce with each request."
                )
            self._nonces[nonce] = now

    def _verify_bearer(self, header: str) -> str:
        token = header.partition(" ")[2].strip()
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None or expires <= self.now():
            raise AuthenticationFailed(
                f"The access token is unknown or expired; request a new one from "
                f"{TOKEN_PATH}."
            )
        return f"oauth2:{token}"

    def _issue_token(self, exchange: Exchange) -> Response:
        request = exchange.request
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        client_id, client_secret = _client_credentials(request, form)
        valid = hmac.compare_digest(
            client_id.encode(), self._client_id.encode()
        ) & hmac.compare_digest(client_secret.encode(), self._client_secret.encode())
        if not valid:
            logger.info("%s rejected a token request: unknown client", self.name)
            return _invalid_client()
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != "client_credentials":
            return json_response(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Only grant_type=client_credentials is "
                    f"supported, got {grant_type!r}.",
                },
            )
        return self._new_token((form.get("scope") or [DEFAULT_SCOPE])[0])

    def _new_token(self, scope: str) -> Response:
        token = secrets.token_urlsafe(32)
        now = self.now()
        with self._lock:
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + self.token_lifetime
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "scope": scope,
        }
        return json_response(200, body, {"Cache-Control": "no-store"})

    def _unauthorized_fault(self, exchange: Exchange) -> Response:
        if exchange.collection == TOKEN:
            return _invalid_client()
        scheme, _, token = (
            exchange.request.headers.get("Authorization") or ""
        ).partition(" ")
        if scheme.lower() == "bearer":
            # The token stops working, as if it had expired early.
            with self._lock:
                self._tokens.pop(token.strip(), None)
        return self._imsx(401, "The credentials were rejected (injected fault).")

    # HTTP

    def _error(self, status: int, message: str, collection: str | None) -> Response:
        if collection == TOKEN:
            error = _OAUTH_ERROR.get(status, "temporarily_unavailable")
            return json_response(status, {"error": error, "error_description": message})
        return self._imsx(status, message)

    def _imsx(
        self, status: int, message: str, code_minor: str | None = None
    ) -> Response:
        code = code_minor or _CODE_MINOR.get(status, "internal_server_error")
        body = {
            "imsx_codeMajor": "failure",
            "imsx_severity": "error",
            "imsx_description": message,
            "imsx_CodeMinor": {
                "imsx_codeMinorField": [
                    {
                        "imsx_codeMinorFieldName": "TargetEndSystem",
                        "imsx_codeMinorFieldValue": code,
                    }
                ]
            },
        }
        return json_response(status, body)

    def _no_data_body(self, collection: str | None) -> bytes:
        return b"{}"

    def _route(self, request: Request) -> Route | None:
        if request.path == TOKEN_PATH:
            return Route(TOKEN, None, self._token_endpoint, method="POST", public=True)
        prefix = f"{BASE_PATH}/"
        if not request.path.startswith(prefix):
            return None
        parts = request.path[len(prefix) :].split("/")
        if parts[0] not in COLLECTIONS or len(parts) > 2:
            return None
        collection = parts[0]
        if len(parts) == 2:
            if not parts[1]:
                return None
            respond = partial(self._respond_record, unquote(parts[1]))
            return Route(collection, None, respond)
        try:
            query = self._list_query(request)
        except BadRequest as exc:
            return Route(collection, None, partial(self._respond_bad_request, exc))
        return Route(collection, query.page, partial(self._respond_list, query))

    def _token_endpoint(self, exchange: Exchange) -> Response:
        if self.auth == "oauth1":
            return json_response(
                404,
                {
                    "error": "invalid_request",
                    "error_description": "This emulator accepts only OAuth 1.0a "
                    "signed requests and issues no tokens.",
                },
            )
        return self._issue_token(exchange)

    def _list_query(self, request: Request) -> _ListQuery:
        limit = _integer(request.param("limit"), "limit", DEFAULT_LIMIT)
        if not 1 <= limit <= self.max_limit:
            raise BadRequest(
                f"limit must be between 1 and {self.max_limit}, got {limit}."
            )
        offset = _integer(request.param("offset"), "offset", 0)
        if offset < 0:
            raise BadRequest(f"offset must be 0 or more, got {offset}.")
        return _ListQuery(limit, offset, request.param("filter"))

    def _respond_bad_request(self, exc: BadRequest, exchange: Exchange) -> Response:
        return self._imsx(400, str(exc), exc.code_minor)

    def _respond_list(self, query: _ListQuery, exchange: Exchange) -> Response:
        name = str(exchange.collection)
        record_filter = None
        if query.filter_text is not None:
            with self._lock:
                fields = self._tables[name].fields
            try:
                record_filter = RecordFilter.parse(query.filter_text, fields)
            except BadRequest as exc:
                return self._respond_bad_request(exc, exchange)
        if self.take_fault(exchange, (MOVE,)):
            self._move_first_to_end(name)
        with self._lock:
            table = self._tables[name]
        ids = self._visible(name, table, record_filter, query.filter_text)
        size = min(query.limit, self.page_cap or query.limit)
        page = ids[query.offset : query.offset + size]
        records = table.records
        data = b",".join(records[i].raw for i in page)
        body = b'{"' + name.encode() + b'":[' + data + b"]}"
        headers = self._list_headers(exchange.request, query.offset, size, len(ids))
        return Response(200, body, headers)

    def _list_headers(
        self, request: Request, offset: int, size: int, total: int
    ) -> dict[str, str]:
        headers = {}
        if self.total_count_header:
            headers["X-Total-Count"] = str(total)
        if self.link_header and offset + size < total:
            last = (total - 1) // size * size
            next_url = self._page_url(request, size, offset + size)
            last_url = self._page_url(request, size, last)
            headers["Link"] = f'<{next_url}>; rel="next", <{last_url}>; rel="last"'
        return headers

    def _page_url(self, request: Request, limit: int, offset: int) -> str:
        host = request.headers.get("Host") or f"{LOOPBACK}:{self.port}"
        other_pairs = [(n, v) for n, v in request.pairs if n not in ("limit", "offset")]
        pairs = [*other_pairs, ("limit", str(limit)), ("offset", str(offset))]
        return f"http://{host}{request.path}?{urlencode(pairs, quote_via=quote)}"

    def _respond_record(self, sourced_id: str, exchange: Exchange) -> Response:
        name = str(exchange.collection)
        with self._lock:
            record = self._tables[name].records.get(sourced_id)
        if record is None or record.tombstone:
            return self._imsx(
                404, f"No {SINGULAR[name]} has the sourcedId {sourced_id!r}."
            )
        body = b'{"' + SINGULAR[name].encode() + b'":' + record.raw + b"}"
        return Response(200, body)


def _check_settings(
    client_id: str, client_secret: str, auth: str, max_limit: int, lifetime: float
) -> None:
    if not client_id or not client_secret:
        raise ValueError("client_id and client_secret must both be non-empty.")
    if auth not in AUTH_MODES:
        raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}.")
    if max_limit < 1:
        raise ValueError(f"max_limit must be 1 or more, got {max_limit}.")
    if lifetime <= 0:
        raise ValueError(f"token_lifetime must be more than 0 seconds, got {lifetime}.")


def _integer(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text!r}.") from None


def _client_credentials(
    request: Request, form: dict[str, list[str]]
) -> tuple[str, str]:
    """Return the client id and secret from HTTP Basic auth or the form fields."""
    scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, client_secret = decoded.partition(":")
        # RFC 6749 section 2.3.1 form-encodes both before joining them.
        return unquote_plus(client_id), unquote_plus(client_secret)
    return (form.get("client_id") or [""])[0], (form.get("client_secret") or [""])[0]


def _invalid_client() -> Response:
    return json_response(
        401,
        {"error": "invalid_client"},
        {"WWW-Authenticate": 'Basic realm="oneroster"'},
    )
