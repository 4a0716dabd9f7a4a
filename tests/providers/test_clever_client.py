"""The Clever API client against the Clever emulator on loopback: pages, faults,
events."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rostersync.demo import DemoSize, write_demo_district
from rostersync.emulators.clever import CleverEmulator
from rostersync.errors import ConfigurationError, ProviderAuthError, ProviderError
from rostersync.providers.clever import FROM_FIRST_EVENT
from rostersync.readers.clever import read_clever_files
from rostersync.settings import get_settings
from rostersync.sources import read_roster
from rostersync.store.districts import IntegrationConfig
from tests.providers.configs import api_integration, sorted_frames

TOKEN = "clever-test-token-5d1f"
TOKEN_VARIABLE = "ROSTERSYNC_TEST_CLEVER_TOKEN"
PAGE_SIZE = 40

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_demo_district(
        tmp_path / "clever", DemoSize(students=150, schools=2), format="clever"
    )


@pytest.fixture
def emulator(folder, monkeypatch):
    monkeypatch.setenv(TOKEN_VARIABLE, TOKEN)
    monkeypatch.setenv("ROSTERSYNC_CLEVER_PAGE_SIZE", str(PAGE_SIZE))
    get_settings.cache_clear()
    with CleverEmulator([folder], token=TOKEN) as server:
        yield server


def integration(url: str, **options) -> IntegrationConfig:
    options.setdefault("incremental", True)
    token = {"token": {"env": TOKEN_VARIABLE}}
    return api_integration("clever", url, token, **options)


def emulator_get(server, path: str) -> str:
    response = httpx.get(
        server.base_url + path, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    response.raise_for_status()
    return response.text


def requests_to(server, collection: str) -> list:
    return [r for r in server.requests if r.collection == collection]


def users_in(folder: Path) -> int:
    body = json.loads((folder / "users.json").read_text(encoding="utf-8"))
    return len(body["data"])


# Full pulls


def test_full_pull_equals_reading_the_files(emulator, folder):
    pulled = read_roster(integration(emulator.base_url))
    from_files = read_clever_files(folder)

    for name, frame in sorted_frames(pulled).items():
        assert frame.equals(sorted_frames(from_files)[name]), name


def test_full_pull_follows_next_links_page_by_page(emulator, folder):
    roster = read_roster(integration(emulator.base_url))

    sections = json.loads((folder / "sections.json").read_text())["data"]
    expected_pages = math.ceil(len(sections) / PAGE_SIZE) or 1
    assert roster.pull.pages["sections"] == expected_pages
    assert len(requests_to(emulator, "sections")) == expected_pages


def test_users_are_requested_one_role_at_a_time(emulator):
    read_roster(integration(emulator.base_url))

    roles = {tuple(r.query.get("role", ())) for r in requests_to(emulator, "users")}
    assert roles == {("student",), ("teacher",), ("staff",), ("district_admin",)}


def test_no_events_cursor_starts_at_first(emulator):
    roster = read_roster(integration(emulator.base_url))

    assert roster.pull.mode == "full"
    assert roster.pull.reason == "no Events cursor is stored yet"
    assert roster.cursor.value == FROM_FIRST_EVENT


def test_cursor_from_the_first_event_reads_every_event(emulator, folder):
    first = read_roster(integration(emulator.base_url))
    set_grade(folder, "demo-stu-4", "12")
    emulator.reload()

    roster = read_roster(
        integration(
            emulator.base_url,
            cursor=first.cursor.value,
            cursor_at=first.cursor.taken_at,
        )
    )

    assert roster.pull.mode == "incremental"
    assert roster.users["provider_id"].tolist() == ["demo-stu-4"]
    assert roster.cursor.value not in (FROM_FIRST_EVENT, None)


def test_full_pull_keeps_the_newest_event_as_cursor(emulator, folder):
    set_grade(folder, "demo-stu-4", "12")
    emulator.reload()
    [event] = json.loads(
        emulator_get(emulator, "/v3.0/events?ending_before=last&limit=1")
    )["data"]

    roster = read_roster(integration(emulator.base_url))

    assert roster.cursor.value == event["data"]["id"]


def test_non_incremental_integration_pulls_in_full_without_cursor(emulator):
    roster = read_roster(integration(emulator.base_url, incremental=False))

    assert roster.pull.mode == "full"
    assert roster.cursor is None
    assert requests_to(emulator, "events") == []


# Faults that a retry or a wait overcomes


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("server-error:path=users,page=2,status=503", id="503"),
        pytest.param("server-error:path=sections,page=1,status=500", id="500"),
        pytest.param("server-error:path=schools,status=502,times=2", id="502-twice"),
        pytest.param("drop:path=users,page=1", id="dropped-connection"),
        pytest.param("truncate:path=users,page=2", id="truncated-body"),
        pytest.param("no-data:path=users,page=3", id="200-without-data"),
        pytest.param("slow:path=schools,seconds=2.5", id="timeout"),
    ],
)
def test_transient_fault_is_retried_and_the_pull_completes(emulator, folder, fault):
    expected = sorted_frames(read_clever_files(folder))
    emulator.add_fault(fault)

    roster = read_roster(integration(emulator.base_url, incremental=False))

    assert roster.pull.retries >= 1
    for name, frame in sorted_frames(roster).items():
        assert frame.equals(expected[name]), name


@pytest.mark.parametrize("header", ["reset", "retry-after", "both"])
def test_rate_limit_waits_for_the_announced_reset(emulator, header):
    emulator.add_fault(f"rate-limit:path=users,times=2,seconds=1,header={header}")

    roster = read_roster(integration(emulator.base_url, incremental=False))

    assert roster.pull.rate_limited == 2
    assert roster.pull.retries == 0
    assert roster.pull.waited_seconds >= 0.5


def test_records_moving_between_pages_count_once(emulator, folder):
    expected = sorted_frames(read_clever_files(folder))
    emulator.add_fault("move:path=users,page=2")

    roster = read_roster(integration(emulator.base_url, incremental=False))

    assert roster.pull.records["users"] == users_in(folder) + 1
    assert sorted_frames(roster)["users"].equals(expected["users"])


# Faults that fail the pull


def test_persistent_server_error_fails_after_every_try(emulator):
    emulator.add_fault("server-error:path=users,page=2,times=0")

    with pytest.raises(ProviderError, match="on all 5 tries"):
        read_roster(integration(emulator.base_url, incremental=False))

    second_pages = [r for r in requests_to(emulator, "users") if r.page == 2]
    assert len(second_pages) == get_settings().http_max_attempts


def test_persistent_missing_data_fails(emulator):
    emulator.add_fault("no-data:path=sections,times=0")

    with pytest.raises(ProviderError, match='not JSON with the "data" list'):
        read_roster(integration(emulator.base_url, incremental=False))


def test_rejected_token_fails_at_once(emulator, monkeypatch):
    monkeypatch.setenv(TOKEN_VARIABLE, "revoked-token-9q")

    with pytest.raises(ProviderAuthError) as raised:
        read_roster(integration(emulator.base_url, incremental=False))

    assert "HTTP 401" in str(raised.value)
    assert "Ask the district for new credentials" in str(raised.value)
    assert "revoked-token-9q" not in str(raised.value)
    assert len(emulator.requests) == 1


def test_bad_request_is_not_retried(emulator):
    emulator.add_fault("bad-request:path=schools,times=0")

    with pytest.raises(ProviderError, match="HTTP 400"):
        read_roster(integration(emulator.base_url, incremental=False))

    assert len(requests_to(emulator, "schools")) == 1


def test_rate_limit_reset_beyond_the_maximum_wait_fails(emulator, monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_RATE_LIMIT_MAX_WAIT_SECONDS", "5")
    get_settings.cache_clear()
    emulator.add_fault("rate-limit:path=schools,seconds=600,header=reset")

    with pytest.raises(ProviderError, match="longer than the maximum wait of 5 s"):
        read_roster(integration(emulator.base_url, incremental=False))


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("cursor-repeat:path=users,page=2", "repeats an earlier page"),
        ("cursor-backwards:path=users,page=2", "goes back to an earlier record"),
    ],
)
def test_next_link_that_loops_is_an_error(emulator, fault, problem):
    emulator.add_fault(fault)

    with pytest.raises(ProviderError, match=problem):
        read_roster(integration(emulator.base_url, incremental=False))


def test_missing_token_variable_names_it(emulator, monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE)

    with pytest.raises(ConfigurationError, match=TOKEN_VARIABLE):
        read_roster(integration(emulator.base_url))

    assert emulator.requests == []


# Incremental pulls through the Events API


def rewrite_users(folder: Path, change) -> None:
    """Rewrite users.json, one record per line, through ``change(records)``."""
    path = folder / "users.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    records = change(body["data"])
    lines = ",\n".join(json.dumps(record) for record in records)
    links = json.dumps(body.get("links", []))
    path.write_text(f'{{"data":[\n{lines}\n],"links":{links}}}\n', encoding="utf-8")


def set_grade(folder: Path, user_id: str, grade: str) -> None:
    def change(records):
        for record in records:
            if record["data"]["id"] == user_id:
                record["data"]["roles"]["student"]["grade"] = grade
        return records

    rewrite_users(folder, change)


def remove_user(folder: Path, user_id: str) -> None:
    rewrite_users(
        folder, lambda records: [r for r in records if r["data"]["id"] != user_id]
    )


def latest_cursor(emulator) -> tuple[str, datetime]:
    roster = read_roster(integration(emulator.base_url))
    assert roster.cursor is not None and roster.cursor.value is not None
    return roster.cursor.value, roster.cursor.taken_at


def test_events_pull_returns_only_what_changed(emulator, folder):
    set_grade(folder, "demo-stu-1", "12")
    emulator.reload()
    cursor, taken_at = latest_cursor(emulator)
    set_grade(folder, "demo-stu-2", "12")
    remove_user(folder, "demo-stu-3")
    emulator.reload()

    roster = read_roster(
        integration(emulator.base_url, cursor=cursor, cursor_at=taken_at)
    )

    users = roster.users.set_index("provider_id")
    assert roster.pull.mode == "incremental"
    assert set(roster.modes.values()) == {"delta"}
    assert sorted(users.index) == ["demo-stu-2", "demo-stu-3"]
    assert users.loc["demo-stu-2", "grade"] == "12"
    assert users.loc["demo-stu-2", "status"] == "active"
    assert users.loc["demo-stu-3", "status"] == "tobedeleted"
    assert roster.cursor.value > cursor


def test_events_pull_without_new_events_keeps_the_cursor(emulator, folder):
    set_grade(folder, "demo-stu-1", "12")
    emulator.reload()
    cursor, taken_at = latest_cursor(emulator)

    roster = read_roster(
        integration(emulator.base_url, cursor=cursor, cursor_at=taken_at)
    )

    assert roster.users.empty
    assert roster.cursor.value == cursor
    assert roster.cursor.taken_at == taken_at


def test_expired_cursor_makes_full_pull(emulator, folder):
    old = datetime.now(UTC) - timedelta(days=31)

    roster = read_roster(integration(emulator.base_url, cursor="0" * 24, cursor_at=old))

    assert roster.pull.mode == "full"
    assert "older than Clever's 30-day window" in roster.pull.reason
    assert [
        r for r in requests_to(emulator, "events") if "starting_after" in r.query
    ] == []


def test_rejected_cursor_makes_a_full_pull(emulator, folder):
    set_grade(folder, "demo-stu-1", "12")
    emulator.reload()
    cursor, taken_at = latest_cursor(emulator)
    emulator.clear_events()

    roster = read_roster(
        integration(emulator.base_url, cursor=cursor, cursor_at=taken_at)
    )

    assert roster.pull.mode == "full"
    assert "rejected the stored cursor" in roster.pull.reason
    assert roster.modes["users"] == "bulk"
    assert len(roster.users) == len(read_clever_files(folder).users)


def test_full_pull_on_demand_ignores_the_cursor(emulator, folder):
    set_grade(folder, "demo-stu-1", "12")
    emulator.reload()
    cursor, taken_at = latest_cursor(emulator)

    roster = read_roster(
        integration(emulator.base_url, cursor=cursor, cursor_at=taken_at),
        full_pull=True,
    )

    assert roster.pull.mode == "full"
    assert roster.pull.reason == "a full pull was requested"
    assert roster.cursor.value == cursor


def test_each_request_is_logged_without_the_token(emulator, caplog):
    caplog.set_level("DEBUG", logger="rostersync.providers")

    read_roster(integration(emulator.base_url, incremental=False))

    request_lines = [
        r.getMessage() for r in caplog.records if r.name == "rostersync.providers.http"
    ]
    pull_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "rostersync.providers.clever" and "full pull" in r.getMessage()
    ]
    assert len(request_lines) == len(emulator.requests)
    assert any(
        line.startswith("clever GET /v3.0/schools?limit=40 200")
        for line in request_lines
    )
    assert len(pull_lines) == 1
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
