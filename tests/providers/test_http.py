"""The HTTP layer's pure parts: reset headers, backoff, rate limiter, URL rules."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from rostersync.errors import ConfigurationError
from rostersync.providers.http import (
    RateLimiter,
    RetryPolicy,
    check_base_url,
    reset_wait,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"X-RateLimit-Reset": str(int(NOW) + 7)}, 7.0, id="reset-epoch"),
        pytest.param({"Retry-After": "3"}, 3.0, id="retry-after-seconds"),
        pytest.param(
            {"Retry-After": email.utils.formatdate(NOW + 11, usegmt=True)},
            11.0,
            id="retry-after-date",
        ),
        pytest.param(
            {"X-RateLimit-Reset": str(int(NOW) + 5), "Retry-After": "60"},
            5.0,
            id="reset-wins",
        ),
        pytest.param({"X-RateLimit-Reset": str(int(NOW) - 30)}, 0.0, id="past-reset"),
        pytest.param({"Retry-After": "soon"}, None, id="unreadable"),
        pytest.param({}, None, id="none"),
    ],
)
def test_reset_wait_reads_the_announced_reset(headers, expected):
    assert reset_wait(httpx.Headers(headers), now=NOW) == expected


def test_backoff_grows_and_stays_under_the_cap():
    policy = RetryPolicy(backoff_seconds=1.0, backoff_max_seconds=5.0)

    ceilings = [policy.backoff(attempt, draw=lambda: 1.0) for attempt in (1, 2, 3, 4)]

    assert ceilings == [1.0, 2.0, 4.0, 5.0]
    assert policy.backoff(3, draw=lambda: 0.0) == 0.0


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_waits_when_the_minute_is_full():
    time = FakeTime()
    limiter = RateLimiter(3, clock=time.clock, sleep=time.sleep)

    waits = [limiter.acquire() for _ in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == 60.0


def test_rate_limiter_pause_holds_the_next_request():
    time = FakeTime()
    limiter = RateLimiter(100, clock=time.clock, sleep=time.sleep)

    limiter.pause(4.5)
    waited = limiter.acquire()

    assert waited == 4.5


def test_limiters_are_shared_per_credential():
    first = RateLimiter.for_key("clever", "token-a", 1200)

    assert RateLimiter.for_key("clever", "token-a", 1200) is first
    assert RateLimiter.for_key("clever", "token-b", 1200) is not first


@pytest.mark.parametrize(
    "url",
    [
        "https://api.clever.com",
        "http://127.0.0.1:8080",
        "http://localhost:9000/ims/oneroster/v1p1",
        "http://[::1]:8080",
    ],
)
def test_base_url_accepts_https_and_loopback_http(url):
    assert check_base_url(url).host


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("http://api.clever.com", "unencrypted", id="plain-http"),
        pytest.param("ftp://api.clever.com", "not an http", id="scheme"),
        pytest.param("https://user:pw@api.clever.com", "user, query", id="userinfo"),
        pytest.param("https://api.clever.com/?token=x", "user, query", id="query"),
        pytest.param("https://", "not an http", id="no-host"),
    ],
)
def test_base_url_rejects_unsafe_urls(url, problem):
    with pytest.raises(ConfigurationError, match=problem):
        check_base_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://someone:hunter2@api.clever.com",
        "https://api.clever.com/?access_token=hunter2",
        "http://someone:hunter2@example.org",
    ],
)
def test_base_url_error_hides_credentials(url):
    with pytest.raises(ConfigurationError) as raised:
        check_base_url(url)

    assert "hunter2" not in str(raised.value)
