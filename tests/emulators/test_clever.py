"""Tests of the Clever v3.0 emulator over real HTTP: auth, paging, data, faults."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rostersync.emulators import records
from rostersync.emulators.clever import MAX_LIMIT, CleverEmulator
from rostersync.emulators.faults import Fault
from tests.emulators.conftest import (
    DISTRICT_ID,
    HTTP_TIMEOUT,
    TOKEN,
    clever_id,
    clever_user,
    default_clever_users,
    write_clever_file,
    write_clever_folder,
)


def ids_of(body: dict) -> list[str]:
    return [item["data"]["id"] for item in body["data"]]


def link(body: dict, rel: str) -> str | None:
    return next((item["uri"] for item in body["links"] if item["rel"] == rel), None)


def cursor_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["starting_after"][0]


def all_user_ids() -> list[str]:
    return sorted(user["id"] for user in default_clever_users())


def page_through(client: httpx.Client, first: str, limit: int = 20) -> list[str]:
    """Follow next links from ``first`` and return every id seen, in order."""
    seen: list[str] = []
    uri: str | None = first
    for _ in range(limit):
        if uri is None:
            return seen
        body = client.get(uri).json()
        seen.extend(ids_of(body))
        uri = link(body, "next")
    raise AssertionError(f"Paging did not end within {limit} pages.")


# Authentication


def test_missing_token_is_401(clever):
    with httpx.Client(base_url=clever.base_url, timeout=HTTP_TIMEOUT) as client:
        response = client.get("/v3.0/users")

    assert response.status_code == 401
    assert "bearer token" in response.json()["message"]


def test_wrong_token_is_401_without_echoing_it(clever):
    guess = "guessed-token-123"
    headers = {"Authorization": f"Bearer {guess}"}
    with httpx.Client(base_url=clever.base_url, timeout=HTTP_TIMEOUT) as client:
        response = client.get("/v3.0/users", headers=headers)

    assert response.status_code == 401
    assert guess not in response.text
    assert TOKEN not in response.text


def test_basic_auth_is_401(clever):
    with httpx.Client(base_url=clever.base_url, timeout=HTTP_TIMEOUT) as client:
        response = client.get("/v3.0/users", auth=(TOKEN, ""))

    assert response.status_code == 401


# Paging


def test_users_come_in_id_order(clever_client):
    body = clever_client.get("/v3.0/users").json()

    assert ids_of(body) == all_user_ids()


def test_records_keep_their_uri(clever_client):
    body = clever_client.get("/v3.0/users").json()

    uris = [item["uri"] for item in body["data"]]
    assert uris == [f"/v3.0/users/{user_id}" for user_id in all_user_ids()]


def test_limit_cuts_page(clever_client):
    body = clever_client.get("/v3.0/users", params={"limit": 3}).json()

    assert ids_of(body) == all_user_ids()[:3]


def test_next_link_starts_after_last_id(clever_client):
    body = clever_client.get("/v3.0/users", params={"limit": 3}).json()

    assert link(body, "next") == (
        f"/v3.0/users?limit=3&starting_after={all_user_ids()[2]}"
    )


def test_self_link_repeats_request(clever_client):
    body = clever_client.get("/v3.0/users", params={"limit": 3}).json()

    assert link(body, "self") == "/v3.0/users?limit=3"


def test_last_page_has_no_next_link(clever_client):
    ids = all_user_ids()
    params = {"limit": 3, "starting_after": ids[-3]}

    body = clever_client.get("/v3.0/users", params=params).json()

    assert ids_of(body) == ids[-2:]
    assert link(body, "next") is None


def test_next_links_visit_every_user_once(clever_client):
    seen = page_through(clever_client, "/v3.0/users?limit=3")

    assert seen == all_user_ids()


def test_second_page_has_prev_link(clever_client):
    ids = all_user_ids()
    params = {"limit": 3, "starting_after": ids[2]}

    body = clever_client.get("/v3.0/users", params=params).json()

    assert link(body, "prev") == f"/v3.0/users?limit=3&ending_before={ids[3]}"


def test_starting_after_unknown_id_pages_by_order(clever_client):
    ids = all_user_ids()
    between = ids[1] + "0"

    body = clever_client.get("/v3.0/users", params={"starting_after": between}).json()

    assert ids_of(body) == ids[2:]


def test_ending_before_returns_records_before_id(clever_client):
    ids = all_user_ids()
    params = {"limit": 2, "ending_before": ids[4]}

    body = clever_client.get("/v3.0/users", params=params).json()

    assert ids_of(body) == ids[2:4]


def test_role_filter_returns_only_that_role(clever_client):
    body = clever_client.get("/v3.0/users", params={"role": "teacher"}).json()

    assert ids_of(body) == [clever_id(101), clever_id(102)]


def test_next_link_keeps_role_filter(clever_client):
    body = clever_client.get("/v3.0/users", params={"limit": 2, "role": "student"})

    next_uri = link(body.json(), "next")
    assert next_uri == (
        f"/v3.0/users?limit=2&role=student&starting_after={clever_id(2)}"
    )


def test_role_filtered_paging_visits_every_student(clever_client):
    seen = page_through(clever_client, "/v3.0/users?limit=2&role=student")

    assert seen == [clever_id(number) for number in range(1, 6)]


def test_unknown_role_is_400(clever_client):
    response = clever_client.get("/v3.0/users", params={"role": "principal"})

    assert response.status_code == 400
    assert "role must be one of" in response.json()["message"]


def test_limit_above_max_is_400(clever_client):
    response = clever_client.get("/v3.0/users", params={"limit": MAX_LIMIT + 1})

    assert response.status_code == 400
    assert str(MAX_LIMIT) in response.json()["message"]


def test_limit_max_is_accepted(clever_client):
    response = clever_client.get("/v3.0/users", params={"limit": MAX_LIMIT})

    assert response.status_code == 200


def test_limit_text_is_400(clever_client):
    response = clever_client.get("/v3.0/users", params={"limit": "all"})

    assert response.status_code == 400
    assert "whole number" in response.json()["message"]


def test_both_cursors_are_400(clever_client):
    params = {"starting_after": clever_id(1), "ending_before": clever_id(3)}

    response = clever_client.get("/v3.0/users", params=params)

    assert response.status_code == 400


def test_default_limit_is_100(tmp_path):
    count = 130
    users = [clever_user(number) for number in range(1, count + 1)]
    folder = write_clever_folder(tmp_path / "big", users)
    with (
        CleverEmulator([folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        first = client.get("/v3.0/users").json()
        pages = [record.page for record in emulator.requests]
        seen = page_through(client, "/v3.0/users")

    assert len(first["data"]) == 100
    assert pages == [1]
    assert seen == sorted(user["id"] for user in users)


def test_page_numbers_follow_cursor_position(clever, clever_client):
    page_through(clever_client, "/v3.0/users?limit=3")

    pages = [record.page for record in clever.requests]
    expected_pages = math.ceil(len(all_user_ids()) / 3)
    assert pages == list(range(1, expected_pages + 1))


# Records


def test_record_by_id(clever_client):
    user_id = clever_id(101)

    body = clever_client.get(f"/v3.0/users/{user_id}").json()

    assert body["data"] == clever_user(101, "teacher")
    assert link(body, "self") == f"/v3.0/users/{user_id}"


def test_unknown_record_is_404(clever_client):
    response = clever_client.get("/v3.0/users/nobody")

    assert response.status_code == 404
    assert "nobody" in response.json()["message"]


def test_unknown_collection_is_404(clever_client):
    response = clever_client.get("/v3.0/courses")

    assert response.status_code == 404


def test_other_api_version_is_404(clever_client):
    response = clever_client.get("/v2.1/users")

    assert response.status_code == 404


# Data folders


def test_district_synthesized_from_records(clever_client):
    body = clever_client.get("/v3.0/districts").json()

    assert body["data"] == [
        {"data": {"id": DISTRICT_ID}, "uri": f"/v3.0/districts/{DISTRICT_ID}"}
    ]


def test_districts_file_served_when_present(clever_folder, tmp_path):
    district = {"id": DISTRICT_ID, "name": "Lakeside"}
    write_clever_file(clever_folder, "districts", [district])
    with (
        CleverEmulator([clever_folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        body = client.get("/v3.0/districts").json()

    assert [item["data"] for item in body["data"]] == [district]


def test_terms_empty_without_file(clever_client):
    body = clever_client.get("/v3.0/terms").json()

    assert body["data"] == []


def test_missing_users_file_raises(tmp_path):
    folder = tmp_path / "partial"
    write_clever_file(folder, "schools", [])
    write_clever_file(folder, "sections", [])

    with pytest.raises(FileNotFoundError, match="users.json is missing"):
        CleverEmulator([folder], token=TOKEN)


def test_missing_data_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CleverEmulator([tmp_path / "nowhere"], token=TOKEN)


def test_empty_token_is_rejected(clever_folder):
    with pytest.raises(ValueError, match="token is empty"):
        CleverEmulator([clever_folder], token="")


def test_earlier_folder_wins_and_later_fills_in(tmp_path):
    first = tmp_path / "first"
    write_clever_file(first, "users", [clever_user(1)])
    second = write_clever_folder(tmp_path / "second")
    with (
        CleverEmulator([first, second], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        users = client.get("/v3.0/users").json()
        schools = client.get("/v3.0/schools").json()

    assert ids_of(users) == [clever_id(1)]
    assert ids_of(schools) == [clever_id(9001), clever_id(9002)]


def test_line_layout_loads_without_json_load(tmp_path, monkeypatch):
    folder = write_clever_folder(tmp_path / "lines")

    def fail_whole_file_read(*args, **kwargs):
        raise AssertionError("json.load read a one-record-per-line file whole")

    monkeypatch.setattr(records.json, "load", fail_whole_file_read)
    emulator = CleverEmulator([folder], token=TOKEN)

    assert emulator.reload() == 0


def test_pretty_printed_file_loads(tmp_path):
    folder = write_clever_folder(tmp_path / "pretty")
    users = [clever_user(7), clever_user(8)]
    envelope = {"data": [{"data": user, "uri": "ignored"} for user in users]}
    (folder / "users.json").write_text(json.dumps(envelope, indent=4))
    with (
        CleverEmulator([folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        body = client.get("/v3.0/users").json()

    assert [item["data"] for item in body["data"]] == users
    assert [item["uri"] for item in body["data"]] == [
        f"/v3.0/users/{user['id']}" for user in users
    ]


def test_record_split_across_lines_falls_back(tmp_path):
    folder = write_clever_folder(tmp_path / "split")
    user = clever_user(9)
    item = json.dumps({"data": user, "uri": f"/v3.0/users/{user['id']}"})
    split_item = item.replace(', "uri"', ',\n"uri"')
    text = '{"data":[\n' + split_item + '\n],"links":[]}'
    (folder / "users.json").write_text(text)
    with (
        CleverEmulator([folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        body = client.get("/v3.0/users").json()

    assert [item["data"] for item in body["data"]] == [user]


def test_repeated_id_serves_last_record(tmp_path):
    users = [clever_user(1), clever_user(1, "teacher")]
    folder = write_clever_folder(tmp_path / "repeated", users)
    with (
        CleverEmulator([folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        everyone = client.get("/v3.0/users").json()
        students = client.get("/v3.0/users", params={"role": "student"}).json()
        teachers = client.get("/v3.0/users", params={"role": "teacher"}).json()

    assert [item["data"] for item in everyone["data"]] == [users[1]]
    assert ids_of(students) == []
    assert ids_of(teachers) == [clever_id(1)]


def test_invalid_file_raises_with_path(tmp_path):
    folder = write_clever_folder(tmp_path / "invalid")
    (folder / "users.json").write_text('{"data": [')

    with pytest.raises(ValueError, match="users.json is not valid UTF-8 JSON"):
        CleverEmulator([folder], token=TOKEN)


def test_record_without_id_raises(tmp_path):
    folder = write_clever_folder(tmp_path / "no-id")
    (folder / "users.json").write_text('{"data":[\n{"data":{"name":{}}}\n]}')

    with pytest.raises(ValueError, match='"id"'):
        CleverEmulator([folder], token=TOKEN)


# Faults that only Clever's paging has


def test_move_fault_repeats_previous_page_last_record(clever, clever_client):
    ids = all_user_ids()
    clever.add_fault("move:path=users,page=2")
    first = clever_client.get("/v3.0/users", params={"limit": 3}).json()

    second = clever_client.get(link(first, "next")).json()

    assert ids_of(second) == ids[2:5]


def test_move_fault_waits_for_second_page(clever, clever_client):
    clever.add_fault("move")

    first = clever_client.get("/v3.0/users", params={"limit": 3}).json()

    assert ids_of(first) == all_user_ids()[:3]
    assert clever.faults.pending() == [Fault("move")]


def test_cursor_repeat_fault_repeats_cursor(clever, clever_client):
    cursor = all_user_ids()[2]
    clever.add_fault("cursor-repeat:path=users")

    body = clever_client.get(
        "/v3.0/users", params={"limit": 3, "starting_after": cursor}
    ).json()

    assert cursor_of(link(body, "next")) == cursor


def test_cursor_repeat_first_page_links_itself(clever, clever_client):
    clever.add_fault("cursor-repeat:path=users")

    body = clever_client.get("/v3.0/users", params={"limit": 3}).json()

    assert link(body, "next") == "/v3.0/users?limit=3"


def test_cursor_backwards_fault_goes_before_cursor(clever, clever_client):
    cursor = all_user_ids()[2]
    clever.add_fault("cursor-backwards:path=users")

    body = clever_client.get(
        "/v3.0/users", params={"limit": 3, "starting_after": cursor}
    ).json()

    assert cursor_of(link(body, "next")) < cursor


def test_no_data_fault_drops_data_key(clever, clever_client):
    clever.add_fault("no-data:path=users")

    body = clever_client.get("/v3.0/users").json()

    assert body == {"links": []}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("reset", {"X-RateLimit-Reset"}, id="reset"),
        pytest.param("retry-after", {"Retry-After"}, id="retry-after"),
        pytest.param("both", {"X-RateLimit-Reset", "Retry-After"}, id="both"),
    ],
)
def test_rate_limit_fault_sends_chosen_headers(clever, clever_client, header, expected):
    clever.add_fault(f"rate-limit:header={header},seconds=2")

    response = clever_client.get("/v3.0/users")

    sent = {
        name
        for name in ("X-RateLimit-Reset", "Retry-After")
        if name in response.headers
    }
    assert response.status_code == 429
    assert sent == expected


def test_rate_limit_fault_reset_from_clock(clever, clever_client, clock):
    seconds = 2.5
    clever.add_fault(Fault("rate-limit", seconds=seconds))

    response = clever_client.get("/v3.0/users")

    assert response.headers["X-RateLimit-Reset"] == str(math.ceil(clock() + seconds))
    assert response.headers["Retry-After"] == str(math.ceil(seconds))
    assert set(response.json()) == {"message"}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_fault_uses_status(clever, clever_client, status):
    clever.add_fault(Fault("server-error", status=status))

    response = clever_client.get("/v3.0/users")

    assert response.status_code == status
    assert set(response.json()) == {"message"}


def test_server_error_fault_on_page_two_only(clever, clever_client):
    clever.add_fault("server-error:path=users,page=2")
    first = clever_client.get("/v3.0/users", params={"limit": 3})

    second = clever_client.get(link(first.json(), "next"))

    assert first.status_code == 200
    assert second.status_code == 503


def test_unauthorized_fault_rejects_valid_token(clever, clever_client):
    clever.add_fault("unauthorized")

    response = clever_client.get("/v3.0/users")

    assert response.status_code == 401


def test_bad_request_fault_is_400_with_message(clever, clever_client):
    clever.add_fault("bad-request:path=sections")

    response = clever_client.get("/v3.0/sections")

    assert response.status_code == 400
    assert set(response.json()) == {"message"}


def test_fault_on_record_endpoint_ignores_page(clever, clever_client):
    clever.add_fault("server-error:path=users")

    response = clever_client.get(f"/v3.0/users/{clever_id(1)}")

    assert response.status_code == 503


def test_paged_fault_skips_record_endpoint(clever, clever_client):
    clever.add_fault("server-error:path=users,page=1")

    response = clever_client.get(f"/v3.0/users/{clever_id(1)}")

    assert response.status_code == 200


def test_fault_path_must_be_clever_collection(clever):
    with pytest.raises(ValueError, match="Unknown fault path 'classes'"):
        clever.add_fault("drop:path=classes")


def test_add_fault_accepts_spec_string(clever):
    fault = clever.add_fault("server-error:path=users,page=2")

    assert clever.faults.pending() == [fault]


# Events


def rewrite_users(folder: Path, users: list[dict]) -> None:
    write_clever_file(folder, "users", users)


def changed_users() -> tuple[list[dict], dict, dict, dict]:
    """Return users with one added, one renamed and one removed, and those three."""
    users = default_clever_users()
    removed = users.pop(0)
    renamed = dict(users[0], email="renamed@example.invalid")
    users[0] = renamed
    added = clever_user(301)
    return [*users, added], added, renamed, removed


def events_of(client: httpx.Client, **params) -> dict:
    return client.get("/v3.0/events", params=params).json()


def test_reload_without_changes_records_nothing(clever, clever_client):
    assert clever.reload() == 0
    assert events_of(clever_client)["data"] == []


def test_reload_records_created_updated_deleted(clever, clever_client, clever_folder):
    users, added, renamed, removed = changed_users()
    rewrite_users(clever_folder, users)

    count = clever.reload()

    events = [item["data"] for item in events_of(clever_client)["data"]]
    kinds = {event["type"]: event["data"]["object"]["id"] for event in events}
    assert count == 3
    assert kinds == {
        "users.created": added["id"],
        "users.updated": renamed["id"],
        "users.deleted": removed["id"],
    }


def test_updated_event_has_previous_attributes(clever, clever_client, clever_folder):
    users, _, renamed, _ = changed_users()
    before = clever_user(2)
    rewrite_users(clever_folder, users)
    clever.reload()

    events = [item["data"] for item in events_of(clever_client)["data"]]
    updated = next(event for event in events if event["type"] == "users.updated")

    assert updated["data"]["object"] == renamed
    assert updated["data"]["previous_attributes"] == {"email": before["email"]}


def test_gained_field_has_null_previous_value(clever, clever_client, clever_folder):
    users = default_clever_users()
    users[0] = dict(users[0], sis_id="S1")
    rewrite_users(clever_folder, users)
    clever.reload()

    event = events_of(clever_client)["data"][0]["data"]

    assert event["data"]["previous_attributes"] == {"sis_id": None}


def test_deleted_event_carries_last_object(clever, clever_client, clever_folder):
    users, _, _, removed = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    events = [item["data"] for item in events_of(clever_client)["data"]]
    deleted = next(event for event in events if event["type"] == "users.deleted")

    assert deleted["data"] == {"object": removed}


def test_created_event_has_no_previous_attributes(clever, clever_client, clever_folder):
    users, added, _, _ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    events = [item["data"] for item in events_of(clever_client)["data"]]
    created = next(event for event in events if event["type"] == "users.created")

    assert created["data"] == {"object": added}


def test_reload_serves_new_data(clever, clever_client, clever_folder):
    users, _, _, removed = changed_users()
    rewrite_users(clever_folder, users)

    clever.reload()

    assert clever_client.get(f"/v3.0/users/{removed['id']}").status_code == 404
    assert ids_of(clever_client.get("/v3.0/users").json()) == sorted(
        user["id"] for user in users
    )


def test_event_time_comes_from_clock(clever, clever_client, clever_folder, clock):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    events = [item["data"] for item in events_of(clever_client)["data"]]

    assert {event["created"] for event in events} == {records.iso_timestamp(clock())}


def test_event_ids_are_24_hex_and_increase(clever, clever_client, clever_folder, clock):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    clock.advance(5)
    rewrite_users(clever_folder, default_clever_users())
    clever.reload()

    ids = [item["data"]["id"] for item in events_of(clever_client)["data"]]

    assert all(len(event_id) == 24 for event_id in ids)
    assert all(set(event_id) <= set("0123456789abcdef") for event_id in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_event_uri_names_event(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    items = events_of(clever_client)["data"]

    assert [item["uri"] for item in items] == [
        f"/v3.0/events/{item['data']['id']}" for item in items
    ]


def test_latest_event_with_ending_before_last(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    every = events_of(clever_client)["data"]

    latest = events_of(clever_client, ending_before="last", limit=1)["data"]

    assert latest == every[-1:]


def test_latest_event_is_empty_without_events(clever_client):
    body = events_of(clever_client, ending_before="last", limit=1)

    assert body["data"] == []


def test_events_page_with_next_links(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    every = [item["data"]["id"] for item in events_of(clever_client)["data"]]

    seen = page_through(clever_client, "/v3.0/events?limit=1")

    assert seen == every


def test_events_after_latest_are_empty(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    latest = events_of(clever_client, ending_before="last", limit=1)["data"][0]

    body = events_of(clever_client, starting_after=latest["data"]["id"])

    assert body["data"] == []
    assert link(body, "next") is None


def test_events_after_unknown_id_is_404(clever_client):
    response = clever_client.get("/v3.0/events", params={"starting_after": "0" * 24})

    assert response.status_code == 404
    assert "ending_before=last" in response.json()["message"]


def test_event_by_id(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    first = events_of(clever_client)["data"][0]

    body = clever_client.get(f"/v3.0/events/{first['data']['id']}").json()

    assert body["data"] == first["data"]


def test_unknown_event_by_id_is_404(clever_client):
    response = clever_client.get(f"/v3.0/events/{'f' * 24}")

    assert response.status_code == 404


def test_aged_events_leave_window(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    first = events_of(clever_client)["data"][0]["data"]["id"]

    clever.age_events(30 * 86_400 + 1)

    assert events_of(clever_client)["data"] == []
    response = clever_client.get("/v3.0/events", params={"starting_after": first})
    assert response.status_code == 404


def test_events_inside_window_stay(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    clever.age_events(30 * 86_400 - 1)

    assert len(events_of(clever_client)["data"]) == 3


def test_clock_moves_events_out_of_window(clever, clever_client, clever_folder, clock):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    clock.advance(31 * 86_400)

    assert events_of(clever_client)["data"] == []


def test_window_days_is_configurable(clever_folder, clock):
    emulator = CleverEmulator(
        [clever_folder], token=TOKEN, now=clock, events_window_days=1
    )
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    emulator.reload()
    emulator.age_events(86_400 + 1)
    with (
        emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        body = events_of(client)

    assert body["data"] == []


def test_clear_events_forgets_events(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()

    clever.clear_events()

    assert events_of(clever_client, ending_before="last", limit=1)["data"] == []


def test_ids_after_clear_still_increase(clever, clever_client, clever_folder):
    users, *_ = changed_users()
    rewrite_users(clever_folder, users)
    clever.reload()
    before = events_of(clever_client)["data"][-1]["data"]["id"]
    clever.clear_events()
    rewrite_users(clever_folder, default_clever_users())
    clever.reload()

    after = events_of(clever_client)["data"][0]["data"]["id"]

    assert after > before


def test_events_fault_path(clever, clever_client):
    clever.add_fault("server-error:path=events")

    assert clever_client.get("/v3.0/users").status_code == 200
    assert clever_client.get("/v3.0/events").status_code == 503


def test_section_changes_become_section_events(clever, clever_client, clever_folder):
    sections = clever_client.get("/v3.0/sections").json()["data"]
    write_clever_file(clever_folder, "sections", [])

    count = clever.reload()

    types = [item["data"]["type"] for item in events_of(clever_client)["data"]]
    assert count == len(sections)
    assert types == ["sections.deleted"] * len(sections)
