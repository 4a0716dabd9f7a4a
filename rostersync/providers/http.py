"""Send provider requests with retries, backoff, rate limits and one log line each.

Every provider client goes through ``ProviderHttp.get_json``:
- 500, 502, 503, 504, network errors, timeouts and 200 bodies that are not the
  expected JSON envelope are tried again after an exponential backoff with full
  jitter, up to ``RetryPolicy.max_attempts`` tries;
- 429 waits until the reset the response announces (``X-RateLimit-Reset`` or
  ``Retry-After``), without using up a try;
- 401 and 403 raise ProviderAuthError at once, and other statuses ProviderError.
Requests and responses are logged by method, path and status. Headers, which
carry the credentials, are never logged or put in an error.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

import rostersync
from rostersync.errors import ConfigurationError, ProviderAuthError, ProviderError
from rostersync.roster import PullInfo
from rostersync.settings import Settings

logger = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({500, 502, 503, 504})
# A provider that returns 429 this many times in a row for one request is not
# recovering.
MAX_RATE_LIMITED = 50
RATE_WINDOW_SECONDS = 60.0
# A district of a million students sends a few million enrollments. About ten
# times that is not a roster, and would exhaust memory before the pull ended.
MAX_RECORDS_PER_COLLECTION = 50_000_000
# Error codes that responses may quote, from RFC 6749 section 5.2 and the OneRoster
# imsx_CodeMinorFieldValue vocabulary.
OAUTH2_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
ONEROSTER_CODES = frozenset(
    {
        "fullsuccess",
        "invalid_filter_field",
        "invalid_selection_field",
        "invaliddata",
        "unauthorisedrequest",
        "forbidden",
        "server_busy",
        "unknownobject",
        "internal_server_error",
    }
)

Params = Mapping[str, str] | Sequence[tuple[str, str]] | None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a provider request is tried again."""

    max_attempts: int = 5
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    rate_limit_max_wait_seconds: float = 300.0
    response_max_seconds: float = 300.0
    max_response_bytes: int = 256 * 2**20
    pull_max_seconds: float = 4 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.http_max_attempts,
            backoff_seconds=settings.http_backoff_seconds,
            backoff_max_seconds=settings.http_backoff_max_seconds,
            rate_limit_max_wait_seconds=settings.rate_limit_max_wait_seconds,
            response_max_seconds=settings.http_response_max_seconds,
            max_response_bytes=settings.http_max_response_mb * 2**20,
            pull_max_seconds=settings.pull_max_seconds,
        )

    def backoff(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """Return the wait before try ``attempt + 1``: full jitter up to the cap."""
        ceiling = min(
            self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1)
        )
        return draw() * ceiling


class RateLimiter:
    """Keep at most ``per_minute`` requests in any 60 s, and honour a 429's reset.

    One limiter exists per provider credential in a process (``for_key``), so two
    pulls with the same token share it. Another process with the same token has
    its own limiter; the 429 handling covers what the two send together.
    """

    _shared: dict[str, RateLimiter] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def for_key(cls, provider: str, secret: str, per_minute: int) -> RateLimiter:
        """Return the process's limiter for one credential, named by its hash."""
        digest = hashlib.sha256(f"{provider}\0{secret}".encode()).hexdigest()[:16]
        with cls._shared_lock:
            limiter = cls._shared.get(digest)
            if limiter is None or limiter.per_minute != per_minute:
                limiter = cls(per_minute)
                cls._shared[digest] = limiter
            return limiter

    def acquire(self) -> float:
        """Wait until one more request is allowed; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - RATE_WINDOW_SECONDS:
                    self._sent.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._sent) >= self.per_minute:
                    wait = self._sent[0] + RATE_WINDOW_SECONDS - now
                if wait <= 0:
                    self._sent.append(now)
                    return waited
            self._sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """Hold every request of this credential for ``seconds`` (after a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class _SlowResponse(Exception):
    """A response body took longer than ``RetryPolicy.response_max_seconds``."""


class TokenUnavailable(Exception):
    """The token endpoint failed in a way that a later try may not.

    ``wait`` is the reset a 429 announced, in seconds; None means the usual
    backoff applies.
    """

    def __init__(self, problem: str, *, wait: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait = wait


class TokenSource(Protocol):
    """A source of the bearer token that ``ProviderHttp`` adds to each request."""

    def token(self, http: ProviderHttp) -> str:
        """Return a token, fetching one with ``http.post_form`` when needed."""
        ...

    def discard(self) -> None:
        """Forget the token, which the provider rejected."""
        ...


@dataclass(frozen=True)
class _Reply:
    """A response with its body read and decompressed."""

    response: httpx.Response
    content: bytes


class ProviderHttp:
    """One provider's HTTP session: the httpx client, retries, limits and figures.

    ``stats`` counts requests, retries, rate-limit waits, pages and records, for the
    run's report.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        provider: str,
        policy: RetryPolicy,
        limiter: RateLimiter,
        stats: PullInfo | None = None,
        token_source: TokenSource | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.token_source = token_source
        self.provider = provider
        self.policy = policy
        self.limiter = limiter
        self.stats = stats if stats is not None else PullInfo()
        self._sleep = sleep
        self._clock = clock
        self._started = time.monotonic()

    def get_json(
        self, path: str, params: Params = None, *, envelope: str, collection: str
    ) -> tuple[dict, httpx.Response]:
        """GET ``path`` and return its decoded body, which has the ``envelope`` list.

        Raises ProviderAuthError for 401 and 403, and ProviderError for any other
        status that is not retried, when the tries run out, and when the pull has
        run longer than ``RetryPolicy.pull_max_seconds``.
        """
        where = _describe(path, params)
        attempt = 0
        rate_limited = 0
        renewed = False
        while True:
            attempt += 1
            self._check_pull_time(where)
            self.stats.waited_seconds += self.limiter.acquire()
            try:
                reply = self._send(path, params)
            except httpx.RequestError as exc:
                problem = f"failed with {type(exc).__name__}"
                self._retry_or_raise(where, attempt, problem)
                continue
            except _SlowResponse:
                seconds = self.policy.response_max_seconds
                problem = f"took longer than {seconds:g} s to arrive"
                self._retry_or_raise(where, attempt, problem)
                continue
            except TokenUnavailable as exc:
                if exc.wait is None:
                    self._retry_or_raise(where, attempt, exc.problem)
                else:
                    rate_limited += 1
                    attempt -= 1
                    self._wait(where, exc.wait, rate_limited)
                continue
            status = reply.response.status_code
            if status == 401 and self.token_source is not None and not renewed:
                # The token may have expired or been revoked early: one new token
                # and one more try, which uses up no try of the request.
                self.token_source.discard()
                renewed = True
                attempt -= 1
                continue
            if status == 429:
                rate_limited += 1
                attempt -= 1
                wait = reset_wait(reply.response.headers, now=self._clock())
                self._wait(where, wait, rate_limited)
                continue
            if status in RETRIED_STATUSES:
                self._retry_or_raise(where, attempt, f"returned HTTP {status}")
                continue
            self._raise_for_status(where, reply)
            body = _decode(reply.content, envelope)
            if body is None:
                problem = (
                    f'returned a 200 body that is not JSON with the "{envelope}" list'
                )
                self._retry_or_raise(where, attempt, problem)
                continue
            self._count(collection, len(body[envelope]), where)
            return body, reply.response

    def _send(self, path: str, params: Params) -> _Reply:
        """Send one GET and read its body, within the size and time limits."""
        request = self.client.build_request("GET", path, params=_query(params))
        if self.token_source is not None:
            token = self.token_source.token(self)
            request.headers["Authorization"] = f"Bearer {token}"
        return self._exchange(request, client_auth=True)

    def post_form(
        self, url: str, form: dict[str, str], headers: dict[str, str]
    ) -> _Reply:
        """POST a form to ``url`` (a token endpoint) within the size and time limits.

        Raises httpx.RequestError or a slow-response error, which ``get_json``
        tries again like its own.
        """
        request = self.client.build_request("POST", url, data=form, headers=headers)
        return self._exchange(request, client_auth=False)

    def _exchange(self, request: httpx.Request, *, client_auth: bool) -> _Reply:
        """Send ``request``, read its body, and log its method, path and status.

        ``client_auth`` False sends the request without the client's
        authentication, because a token endpoint gets its own Basic header.
        """
        started = time.perf_counter()
        self.stats.requests += 1
        shown = request.url.raw_path.decode("ascii", "replace")
        auth = httpx.USE_CLIENT_DEFAULT if client_auth else None
        try:
            response = self.client.send(request, stream=True, auth=auth)
            try:
                content = self._read(response, started, shown)
            finally:
                response.close()
        except (httpx.RequestError, _SlowResponse) as exc:
            logger.debug(
                "%s %s %s failed with %s",
                self.provider,
                request.method,
                shown,
                type(exc).__name__,
            )
            raise
        logger.debug(
            "%s %s %s %d (%.2f s)",
            self.provider,
            request.method,
            shown,
            response.status_code,
            time.perf_counter() - started,
        )
        return _Reply(response, content)

    def _read(self, response: httpx.Response, started: float, shown: str) -> bytes:
        """Read a decompressed body, failing when it is too large or too slow.

        The client's timeout applies to each read, so a body sent a byte at a time
        needs a limit of its own, and a small compressed body can expand without end.
        """
        limit = self.policy.max_response_bytes
        deadline = started + self.policy.response_max_seconds
        content = bytearray()
        for chunk in response.iter_bytes():
            content += chunk
            if len(content) > limit:
                raise ProviderError(
                    f"{self._name()} sent more than {limit // 2**20:,} MiB for GET "
                    f"{shown} (ROSTERSYNC_HTTP_MAX_RESPONSE_MB), more than a page "
                    "of roster data needs; nothing was written. Lower the page size "
                    "or check the source URL."
                )
            if time.perf_counter() > deadline:
                raise _SlowResponse()
        return bytes(content)

    def _check_pull_time(self, where: str) -> None:
        elapsed = time.monotonic() - self._started
        if elapsed > self.policy.pull_max_seconds:
            raise ProviderError(
                f"The pull from {self._name()} ran for {elapsed:.0f} s, longer than "
                f"{self.policy.pull_max_seconds:.0f} s "
                "(ROSTERSYNC_PULL_MAX_SECONDS), and stopped before request "
                f"{where}; nothing was written."
            )

    def _count(self, collection: str, records: int, where: str) -> None:
        self.stats.pages[collection] = self.stats.pages.get(collection, 0) + 1
        total = self.stats.records.get(collection, 0) + records
        self.stats.records[collection] = total
        if total > MAX_RECORDS_PER_COLLECTION:
            raise ProviderError(
                f"{self._name()} sent more than {MAX_RECORDS_PER_COLLECTION:,} "
                f"{collection} records by request {where}, more than any district "
                "has; the pull stopped and nothing was written."
            )

    def _retry_or_raise(self, where: str, attempt: int, problem: str) -> None:
        if attempt >= self.policy.max_attempts:
            raise ProviderError(
                f"{self._name()} request {where} {problem} on all "
                f"{self.policy.max_attempts} tries, so the pull is incomplete and "
                "nothing was written. Check the provider's status page, then run "
                "the sync again."
            )
        wait = self.policy.backoff(attempt)
        logger.info(
            "%s request %s %s (try %d of %d); trying again in %.1f s",
            self.provider,
            where,
            problem,
            attempt,
            self.policy.max_attempts,
            wait,
        )
        self.stats.retries += 1
        self.stats.waited_seconds += wait
        self._sleep(wait)

    def _wait(self, where: str, wait: float | None, rate_limited: int) -> None:
        """Wait out a 429 whose reset is ``wait`` seconds away (None: unknown)."""
        self.stats.rate_limited += 1
        limit = self.policy.rate_limit_max_wait_seconds
        if wait is None:
            wait = min(limit, RATE_WINDOW_SECONDS)
        if wait > limit:
            raise ProviderError(
                f"{self._name()} rate-limited request {where} until {wait:.0f} s from "
                f"now, longer than the maximum wait of {limit:.0f} s "
                "(ROSTERSYNC_RATE_LIMIT_MAX_WAIT_SECONDS); nothing was written. Run "
                "the sync again later."
            )
        if rate_limited > MAX_RATE_LIMITED:
            raise ProviderError(
                f"{self._name()} rate-limited request {where} {rate_limited} times "
                "in a row; nothing was written. Another client may share the "
                "credential's request budget, so check which ones use it."
            )
        logger.info(
            "%s rate-limited request %s; waiting %.1f s for the reset",
            self.provider,
            where,
            wait,
        )
        self.limiter.pause(wait)

    def _raise_for_status(self, where: str, reply: _Reply) -> None:
        status = reply.response.status_code
        if status == 200:
            return
        detail = provider_code(reply.content)
        if status in (401, 403):
            credential = (
                "district token" if self.provider == "clever" else "client id or secret"
            )
            raise ProviderAuthError(
                f"{self._name()} rejected the credentials for {where} with HTTP "
                f"{status}{detail}: the {credential} is invalid, expired or "
                "revoked, or lacks access to this data. Ask the district for new "
                "credentials, update the environment variable or Prefect Secret "
                "block the integration names, and run the sync again.",
                status=status,
            )
        if 300 <= status < 400:
            raise ProviderError(
                f"{self._name()} redirected {where} with HTTP {status}; redirects "
                "are not followed, because they could carry the credentials to "
                "another host. Point the integration's source at the final URL."
            )
        raise ProviderError(
            f"{self._name()} returned HTTP {status}{detail} for {where}; nothing "
            "was written. Check the integration's source URL and the provider's "
            "status, then run the sync again.",
            status=status,
        )

    def _name(self) -> str:
        return {"clever": "Clever", "oneroster-rest": "The OneRoster API"}.get(
            self.provider, self.provider
        )


def reset_wait(headers: httpx.Headers, *, now: float) -> float | None:
    """Return the seconds until a 429's announced reset, or None if it names none.

    ``X-RateLimit-Reset`` is a Unix time in seconds; ``Retry-After`` is a number of
    seconds or an HTTP date.
    """
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    retry_after = headers.get("retry-after")
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def provider_code(content: bytes) -> str:
    """Return the provider's error code as `` (code ...)``, or "" when it has none.

    Only codes from the providers' fixed vocabularies are shown: OneRoster's
    ``imsx_codeMinorFieldValue`` and OAuth 2's ``error``. A provider's free-text
    message is never quoted, because it can echo the request's credentials or a
    record's names.
    """
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(body, dict):
        return ""
    code = body.get("error")
    if code in OAUTH2_ERRORS:
        return f" (code {code})"
    minor = body.get("imsx_CodeMinor")
    fields = minor.get("imsx_codeMinorField") if isinstance(minor, dict) else None
    for field in fields if isinstance(fields, list) else ():
        value = (
            field.get("imsx_codeMinorFieldValue") if isinstance(field, dict) else None
        )
        if value in ONEROSTER_CODES:
            return f" (code {value})"
    return ""


def _decode(content: bytes, envelope: str) -> dict | None:
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get(envelope), list):
        return None
    return body


def _describe(path: str, params: Params) -> str:
    """Name a request by method, path and query, which carry no credentials."""
    query = _query(params)
    return f"GET {path}?{query}" if query else f"GET {path}"


def _query(params: Params) -> httpx.QueryParams:
    if params is None:
        return httpx.QueryParams()
    if isinstance(params, Mapping):
        return httpx.QueryParams(dict(params))
    return httpx.QueryParams(list(params))


# Clients


def is_url(source: str) -> bool:
    """Say whether a source is an http or https URL, in any letter case."""
    return source[:8].lower().startswith(("http://", "https://"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(
    url: str, *, district_id: str | None = None, label: str = "source"
) -> httpx.URL:
    """Return ``url`` parsed, or raise ConfigurationError if it may not be used.

    HTTPS with certificate verification is required, except on loopback, where the
    local emulators serve plain HTTP. Messages show the URL without its user,
    password and query, which could hold a credential.
    """
    prefix = f"District {district_id}: " if district_id else ""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(
            f"{prefix}the {label} is not a valid URL; use one such as "
            "https://api.clever.com."
        ) from exc
    shown = repr(_redacted(parsed))
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"{prefix}{label} {shown} is not an http or https URL with a host; use "
            "one such as https://api.clever.com."
        )
    if parsed.userinfo or parsed.query or parsed.fragment:
        raise ConfigurationError(
            f"{prefix}{label} {shown} contains a user, query or fragment, which "
            "are not shown here; give the base URL only, and name the credentials with "
            "--token-env or --client-id-env."
        )
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise ConfigurationError(
            f"{prefix}{label} {shown} uses plain http to a host that is not "
            "loopback, which would send the credentials unencrypted; use https."
        )
    return parsed


def _redacted(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def make_client(
    base_url: str,
    *,
    timeout: float,
    auth: httpx.Auth | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """Create the httpx client of one pull: no redirects, TLS verified.

    Proxy and certificate settings come from the environment, except for loopback
    URLs, which never go through a proxy.
    """
    parsed = httpx.URL(base_url)
    return httpx.Client(
        base_url=base_url,
        auth=auth,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        verify=True,
        trust_env=not is_loopback(parsed.host),
        transport=transport,
        headers={
            "Accept": "application/json",
            "User-Agent": f"rostersync/{rostersync.__version__}",
        },
    )


class BearerToken(httpx.Auth):
    """Send a fixed bearer token, such as a Clever district token, on every request."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerToken()"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
