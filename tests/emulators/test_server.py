"""Tests of the shared server: lifecycle, request log, rate limiter, generic faults."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest

from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.faults import Fault
from rostersync.emulators.server import RateLimiter, RequestRecord
from tests.emulators.conftest import HTTP_TIMEOUT, TOKEN, TestClock

AUTH = {"Authorization": f"Bearer {TOKEN}"}

# Lifecycle


def test_start_rejects_other_host(clever_folder):
    emulator = CleverEmulator([clever_folder], token=TOKEN)

    with pytest.raises(ValueError, match="only on 127.0.0.1"):
        emulator.start(host="0.0.0.0")


def test_base_url_is_loopback_with_bound_port(clever):
    assert clever.base_url == f"http://127.0.0.1:{clever.port}"


def test_start_twice_raises(clever):
    with pytest.raises(RuntimeError, match="already running"):
        clever.start()


def test_base_url_before_start_raises(clever_folder):
    emulator = CleverEmulator([clever_folder], token=TOKEN)

    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.base_url


def test_start_on_given_port(clever_folder):
    probe = CleverEmulator([clever_folder], token=TOKEN).start()
    port = probe.port
    probe.stop()
    emulator = CleverEmulator([clever_folder], token=TOKEN)

    with emulator.start(port=port):
        assert emulator.port == port


def test_stop_closes_open_connections(clever_folder):
    emulator = CleverEmulator([clever_folder], token=TOKEN).start()
    client = httpx.Client(base_url=emulator.base_url, headers=AUTH, timeout=2)
    first = client.get("/v3.0/schools")

    emulator.stop()

    assert first.status_code == 200
    with pytest.raises(httpx.TransportError):
        client.get("/v3.0/schools")
    client.close()


def test_stop_twice_does_nothing(clever_folder):
    emulator = CleverEmulator([clever_folder], token=TOKEN).start()
    emulator.stop()

    emulator.stop()

    with pytest.raises(RuntimeError):
        _ = emulator.port


# Request log


def test_request_log_records_each_request(clever, clever_client):
    clever_client.get("/v3.0/users", params={"limit": 2, "role": "student"})
    clever_client.get("/v3.0/nothing")

    assert clever.requests == [
        RequestRecord(
            method="GET",
            path="/v3.0/users",
            query={"limit": ["2"], "role": ["student"]},
            status=200,
            collection="users",
            page=1,
        ),
        RequestRecord(
            method="GET",
            path="/v3.0/nothing",
            query={},
            status=404,
            collection=None,
            page=None,
        ),
    ]


def test_request_log_names_injected_fault(clever, clever_client):
    clever.add_fault("server-error")

    clever_client.get("/v3.0/users")

    assert clever.requests[-1].faults == ("server-error",)


def test_clear_requests_empties_log(clever, clever_client):
    clever_client.get("/v3.0/users")

    clever.clear_requests()

    assert clever.requests == []


def test_post_to_list_is_405(clever_client):
    response = clever_client.post("/v3.0/users", content=b"{}")

    assert response.status_code == 405
    assert "accepts only GET" in response.json()["message"]


# Rate limiter


def test_rate_limiter_allows_limit_per_window():
    clock = TestClock(start=600.0)
    limiter = RateLimiter(3, clock)

    results = [limiter.check("token") for _ in range(4)]

    assert results[:3] == [None, None, None]
    assert results[3] == 660.0


def test_rate_limiter_resets_in_next_window():
    clock = TestClock(start=600.0)
    limiter = RateLimiter(1, clock)
    limiter.check("token")

    clock.advance(60)

    assert limiter.check("token") is None


def test_rate_limiter_counts_keys_apart():
    limiter = RateLimiter(1, TestClock())
    limiter.check("first")

    assert limiter.check("second") is None


def test_rate_limiter_rejects_zero_limit():
    with pytest.raises(ValueError, match="rate_limit_per_minute must be 1 or more"):
        RateLimiter(0, TestClock())


def test_rate_limit_answers_429_with_both_headers(clever_folder):
    clock = TestClock(start=6000.0 + 15)
    emulator = CleverEmulator(
        [clever_folder], token=TOKEN, now=clock, rate_limit_per_minute=2
    )
    with (
        emulator,
        httpx.Client(
            base_url=emulator.base_url, headers=AUTH, timeout=HTTP_TIMEOUT
        ) as client,
    ):
        statuses = [client.get("/v3.0/schools").status_code for _ in range(2)]
        limited = client.get("/v3.0/schools")

    window_end = (clock() // 60 + 1) * 60
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Reset"] == str(int(window_end))
    assert limited.headers["Retry-After"] == str(math.ceil(window_end - clock()))
    assert "2 requests per minute" in limited.json()["message"]


def test_rate_limit_lifts_after_window(clever_folder):
    clock = TestClock()
    emulator = CleverEmulator(
        [clever_folder], token=TOKEN, now=clock, rate_limit_per_minute=1
    )
    with (
        emulator,
        httpx.Client(
            base_url=emulator.base_url, headers=AUTH, timeout=HTTP_TIMEOUT
        ) as client,
    ):
        client.get("/v3.0/schools")
        limited = client.get("/v3.0/schools")
        clock.advance(60)
        allowed = client.get("/v3.0/schools")

    assert limited.status_code == 429
    assert allowed.status_code == 200


def test_rejected_credentials_do_not_count(clever_folder):
    emulator = CleverEmulator(
        [clever_folder], token=TOKEN, now=TestClock(), rate_limit_per_minute=1
    )
    with (
        emulator,
        httpx.Client(base_url=emulator.base_url, timeout=HTTP_TIMEOUT) as client,
    ):
        rejected = client.get("/v3.0/schools", headers={"Authorization": "Bearer no"})
        allowed = client.get("/v3.0/schools", headers=AUTH)

    assert rejected.status_code == 401
    assert allowed.status_code == 200


# Generic faults


def test_slow_fault_delays_response(clever, clever_client):
    seconds = 0.3
    clever.add_fault(Fault("slow", path="users", seconds=seconds))

    started = time.monotonic()
    response = clever_client.get("/v3.0/users")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= seconds


def test_truncate_fault_cuts_body_in_half(clever, clever_client):
    full = clever_client.get("/v3.0/users").content
    clever.add_fault("truncate:path=users")

    response = clever_client.get("/v3.0/users")

    assert response.status_code == 200
    assert response.content == full[: len(full) // 2]
    assert response.headers["Content-Length"] == str(len(full) // 2)
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_drop_fault_closes_connection_mid_body(clever, clever_client):
    clever.add_fault("drop:path=users")

    with pytest.raises(httpx.RemoteProtocolError):
        clever_client.get("/v3.0/users")


def test_request_after_drop_succeeds(clever, clever_client):
    clever.add_fault("drop:path=users")
    with pytest.raises(httpx.RemoteProtocolError):
        clever_client.get("/v3.0/users")

    response = clever_client.get("/v3.0/users")

    assert response.status_code == 200


def test_fault_times_zero_hits_every_response(clever, clever_client):
    clever.add_fault("server-error:times=0")

    statuses = [clever_client.get("/v3.0/schools").status_code for _ in range(3)]

    assert statuses == [503, 503, 503]


def test_fault_spent_after_times(clever, clever_client):
    clever.add_fault("server-error:times=2")

    statuses = [clever_client.get("/v3.0/schools").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]


def test_fault_of_other_path_leaves_response(clever, clever_client):
    clever.add_fault("server-error:path=sections")

    response = clever_client.get("/v3.0/users")

    assert response.status_code == 200
    assert len(clever.faults.pending()) == 1


def test_faults_clear_stops_injection(clever, clever_client):
    clever.add_fault("server-error:times=0")

    clever.faults.clear()

    assert clever_client.get("/v3.0/users").status_code == 200


def test_unknown_path_gets_no_fault(clever, clever_client):
    clever.add_fault("server-error")

    response = clever_client.get("/v3.0/courses")

    assert response.status_code == 404
    assert len(clever.faults.pending()) == 1
