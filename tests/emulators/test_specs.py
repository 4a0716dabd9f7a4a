"""The emulators' responses checked against Clever's and OneRoster's official specs."""

# Clever's demo district and 1EdTech's OneRoster 1.1 set are served as they are, so
# where that data breaks the spec, the test states the deviation exactly. The
# project's generated districts must match the specs with no deviation.

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator

from rostersync.demo import DemoSize, write_demo_district
from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.oneroster import OneRosterEmulator
from tests.conftest import REAL_INPUT
from tests.datasets import copy_clever_demo
from tests.emulators.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    HTTP_TIMEOUT,
    TOKEN,
    fetch_token,
)
from tests.specs import clever_validator, oneroster_validator

pytestmark = pytest.mark.real_input

CLEVER_DEMO = [REAL_INPUT / "clever-go-mocks", REAL_INPUT / "clever-demo-schools"]
ONEROSTER_SET = REAL_INPUT / "1edtech-or11-rest" / "1574845678"
CLEVER_LISTS = {
    "districts": "DistrictsResponse",
    "schools": "SchoolsResponse",
    "users": "UsersResponse",
    "sections": "SectionsResponse",
    "terms": "TermsResponse",
}
CLEVER_RECORDS = {
    "districts": "DistrictResponse",
    "schools": "SchoolResponse",
    "users": "UserResponse",
    "sections": "SectionResponse",
}
ONEROSTER_LISTS = {
    "orgs": "OrgSetDType",
    "users": "UserSetDType",
    "classes": "ClassSetDType",
    "enrollments": "EnrollmentSetDType",
    "academicSessions": "AcademicSessionSetDType",
}
ONEROSTER_RECORDS = {
    "orgs": ("org", "SingleOrgDType"),
    "users": ("user", "SingleUserDType"),
    "classes": ("class", "SingleClassDType"),
    "academicSessions": ("academicSession", "SingleAcademicSessionDType"),
}
ONEROSTER_BASE = "/ims/oneroster/v1p1"
MAX_LIMIT = 10_000
DEMO_HAS_FORMAT = "format" in inspect.signature(write_demo_district).parameters
needs_demo_formats = pytest.mark.skipif(
    not DEMO_HAS_FORMAT,
    reason="rostersync.demo.write_demo_district has no format parameter yet",
)

# 1EdTech's users send enabledUser as a JSON boolean, but the binding requires the
# string "true" or "false". So the schema reports both its type and its enum.
ENABLED_USER_DEVIATION = {
    ("users.*.enabledUser", "type"),
    ("users.*.enabledUser", "enum"),
}
# 1EdTech's classes reference their terms with type "term", a OneRoster 1.1 type
# that the 1.2 AcadSessionGUIDRefDType replaced with "academicSession".
TERM_TYPE_DEVIATION = {("classes.*.terms.*.type", "enum")}


def deviations(validator: Draft4Validator, body: Any) -> set[tuple[str, str]]:
    """Return each schema error as (path with list indexes as *, failed keyword)."""
    found = set()
    for error in validator.iter_errors(body):
        path = ".".join(
            "*" if isinstance(part, int) else str(part) for part in error.absolute_path
        )
        found.add((path, str(error.validator)))
    return found


@pytest.fixture(scope="module")
def clever_demo() -> Iterator[httpx.Client]:
    """A client of Clever's demo district, served from the real files."""
    with (
        CleverEmulator(CLEVER_DEMO, token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def oneroster_set() -> Iterator[tuple[OneRosterEmulator, httpx.Client]]:
    """1EdTech's OneRoster 1.1 set served from the real files, and a client."""
    emulator = OneRosterEmulator(
        [ONEROSTER_SET], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    with (
        emulator,
        httpx.Client(base_url=emulator.base_url, timeout=HTTP_TIMEOUT) as client,
    ):
        client.headers["Authorization"] = f"Bearer {fetch_token(client)}"
        yield emulator, client


@pytest.fixture
def oneroster_client(oneroster_set) -> httpx.Client:
    emulator, client = oneroster_set
    emulator.faults.clear()
    return client


def get_all(client: httpx.Client, path: str) -> dict:
    response = client.get(path, params={"limit": MAX_LIMIT})
    response.raise_for_status()
    return response.json()


# Clever's demo district


@pytest.mark.parametrize("collection", CLEVER_LISTS)
def test_clever_demo_list_matches_spec(clever_demo, collection):
    body = get_all(clever_demo, f"/v3.0/{collection}")

    assert deviations(clever_validator(CLEVER_LISTS[collection]), body) == set()


def test_clever_demo_second_page_matches_spec(clever_demo):
    limit = 1000
    total = len(get_all(clever_demo, "/v3.0/users")["data"])
    first = clever_demo.get("/v3.0/users", params={"limit": limit}).json()
    next_uri = next(link["uri"] for link in first["links"] if link["rel"] == "next")

    second = clever_demo.get(next_uri).json()

    assert len(second["data"]) == min(limit, total - limit)
    assert deviations(clever_validator("UsersResponse"), second) == set()


@pytest.mark.parametrize("collection", CLEVER_RECORDS)
def test_clever_demo_record_matches_spec(clever_demo, collection):
    first = clever_demo.get(f"/v3.0/{collection}", params={"limit": 1}).json()
    record_id = first["data"][0]["data"]["id"]

    body = clever_demo.get(f"/v3.0/{collection}/{record_id}").json()

    validator = clever_validator(CLEVER_RECORDS[collection])
    assert deviations(validator, body) == set()


@pytest.mark.parametrize(
    ("path", "params", "definition"),
    [
        pytest.param("/v3.0/users/nobody", {}, "NotFound", id="404"),
        pytest.param("/v3.0/users", {"limit": MAX_LIMIT + 1}, "BadRequest", id="400"),
    ],
)
def test_clever_error_body_matches_spec(clever_demo, path, params, definition):
    response = clever_demo.get(path, params=params)

    assert deviations(clever_validator(definition), response.json()) == set()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_clever_server_error_body_matches_spec(status):
    with CleverEmulator(CLEVER_DEMO, token=TOKEN) as emulator:
        emulator.add_fault(f"server-error:status={status}")
        response = httpx.get(
            f"{emulator.base_url}/v3.0/users",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        )

    assert response.status_code == status
    assert deviations(clever_validator("InternalError"), response.json()) == set()


@pytest.mark.parametrize(
    ("headers", "fault"),
    [
        pytest.param({}, None, id="401"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, "rate-limit", id="429"),
    ],
)
def test_clever_unlisted_errors_share_shape(headers, fault):
    # The spec defines no 401 or 429 body; these share the 404 body's shape.
    with CleverEmulator(CLEVER_DEMO, token=TOKEN) as emulator:
        if fault:
            emulator.add_fault(fault)
        response = httpx.get(
            f"{emulator.base_url}/v3.0/users", headers=headers, timeout=HTTP_TIMEOUT
        )

    assert response.status_code in (401, 429)
    assert deviations(clever_validator("NotFound"), response.json()) == set()


def change_clever_demo(folder: Path) -> dict[str, str]:
    """Remove, rename and add one user and rename one section; return the ids."""
    users_path = folder / "users.json"
    users = json.loads(users_path.read_text(encoding="utf-8"))
    removed = users["data"].pop(0)["data"]
    renamed = users["data"][0]["data"]
    renamed["email"] = "renamed@example.invalid"
    added = json.loads(json.dumps(renamed))
    added["id"] = "f" * 24
    users["data"].append({"data": added, "uri": f"/v3.0/users/{added['id']}"})
    users_path.write_text(json.dumps(users), encoding="utf-8")

    sections_path = folder / "sections.json"
    sections = json.loads(sections_path.read_text(encoding="utf-8"))
    sections["data"][0]["data"]["name"] = "Renamed section"
    sections_path.write_text(json.dumps(sections), encoding="utf-8")
    return {
        "users.deleted": removed["id"],
        "users.updated": renamed["id"],
        "users.created": added["id"],
    }


@pytest.fixture
def clever_events(tmp_path) -> tuple[dict, dict[str, str]]:
    """An events page after a reload of a changed copy of the demo district."""
    folder = copy_clever_demo(tmp_path / "demo")
    with (
        CleverEmulator([folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        changed = change_clever_demo(folder)
        emulator.reload()
        body = client.get("/v3.0/events", params={"limit": 100}).json()
    return body, changed


def test_clever_events_page_matches_spec(clever_events):
    body, changed = clever_events

    types = {
        item["data"]["type"]: item["data"]["data"]["object"]["id"]
        for item in body["data"]
    }
    assert {name: types.get(name) for name in changed} == changed
    assert deviations(clever_validator("EventsResponse", events=True), body) == set()


def test_clever_each_event_matches_its_type(clever_events):
    body, _ = clever_events

    for item in body["data"]:
        event = item["data"]
        validator = clever_validator(event["type"], events=True)
        assert deviations(validator, event) == set(), event["type"]


def test_clever_previous_attributes_sit_in_event_data(clever_events):
    # The emulator sends previous_attributes inside the event's data object,
    # beside "object". The spec's event definitions place it beside "data", where
    # its values would have to be objects, so the spec does not check it here.
    body, _ = clever_events
    updated = [
        item["data"]
        for item in body["data"]
        if item["data"]["type"].endswith(".updated")
    ]

    assert all("previous_attributes" in event["data"] for event in updated)
    assert all("previous_attributes" not in event for event in updated)


# 1EdTech's OneRoster 1.1 set


@pytest.mark.parametrize("collection", ["orgs", "enrollments", "academicSessions"])
def test_oneroster_set_list_matches_spec(oneroster_client, collection):
    body = get_all(oneroster_client, f"{ONEROSTER_BASE}/{collection}")

    validator = oneroster_validator(ONEROSTER_LISTS[collection])
    assert deviations(validator, body) == set()


def enabled_user_as_string(body: dict, key: str = "users") -> dict:
    copied = json.loads(json.dumps(body))
    records = copied[key] if isinstance(copied[key], list) else [copied[key]]
    for user in records:
        user["enabledUser"] = "true" if user["enabledUser"] else "false"
    return copied


def test_oneroster_users_deviate_only_in_enabled_user(oneroster_client):
    body = get_all(oneroster_client, f"{ONEROSTER_BASE}/users")

    validator = oneroster_validator("UserSetDType")
    booleans = [user for user in body["users"] if isinstance(user["enabledUser"], bool)]
    assert len(booleans) == len(body["users"])
    assert deviations(validator, body) == ENABLED_USER_DEVIATION
    assert deviations(validator, enabled_user_as_string(body)) == set()


def test_oneroster_users_second_page_has_same_deviation(oneroster_client):
    limit = 100
    total = len(get_all(oneroster_client, f"{ONEROSTER_BASE}/users")["users"])
    params = {"limit": limit, "offset": limit}

    body = oneroster_client.get(f"{ONEROSTER_BASE}/users", params=params).json()

    validator = oneroster_validator("UserSetDType")
    assert len(body["users"]) == min(limit, total - limit)
    assert deviations(validator, body) == ENABLED_USER_DEVIATION
    assert deviations(validator, enabled_user_as_string(body)) == set()


def terms_as_academic_sessions(body: dict) -> dict:
    copied = json.loads(json.dumps(body))
    for record in copied["classes"]:
        for term in record["terms"]:
            term["type"] = "academicSession"
    return copied


def test_oneroster_classes_deviate_only_in_term_type(oneroster_client):
    body = get_all(oneroster_client, f"{ONEROSTER_BASE}/classes")

    validator = oneroster_validator("ClassSetDType")
    term_types = {
        term["type"] for record in body["classes"] for term in record["terms"]
    }
    assert term_types == {"term"}
    assert deviations(validator, body) == TERM_TYPE_DEVIATION
    assert deviations(validator, terms_as_academic_sessions(body)) == set()


@pytest.mark.parametrize("collection", ["orgs", "academicSessions"])
def test_oneroster_set_record_matches_spec(oneroster_client, collection):
    key, schema = ONEROSTER_RECORDS[collection]
    first = oneroster_client.get(f"{ONEROSTER_BASE}/{collection}", params={"limit": 1})
    sourced_id = first.json()[collection][0]["sourcedId"]

    body = oneroster_client.get(f"{ONEROSTER_BASE}/{collection}/{sourced_id}").json()

    assert list(body) == [key]
    assert deviations(oneroster_validator(schema), body) == set()


def test_oneroster_user_record_enabled_user_deviation(oneroster_client):
    first = oneroster_client.get(f"{ONEROSTER_BASE}/users", params={"limit": 1})
    sourced_id = first.json()["users"][0]["sourcedId"]

    body = oneroster_client.get(f"{ONEROSTER_BASE}/users/{sourced_id}").json()

    validator = oneroster_validator("SingleUserDType")
    expected = {
        (path.replace("users.*", "user"), keyword)
        for path, keyword in ENABLED_USER_DEVIATION
    }
    assert deviations(validator, body) == expected
    assert deviations(validator, enabled_user_as_string(body, "user")) == set()


@pytest.mark.parametrize(
    ("path", "params", "fault", "status"),
    [
        pytest.param("/users/nobody", {}, None, 404, id="404"),
        pytest.param("/users", {"filter": "shoeSize='9'"}, None, 400, id="400"),
        pytest.param("/users", {}, "rate-limit", 429, id="429"),
        pytest.param("/users", {}, "server-error:status=500", 500, id="500"),
        pytest.param("/users", {}, "unauthorized", 401, id="401"),
    ],
)
def test_oneroster_error_body_matches_spec(
    oneroster_set, oneroster_client, path, params, fault, status
):
    emulator, _ = oneroster_set
    if fault:
        emulator.add_fault(fault)

    response = oneroster_client.get(f"{ONEROSTER_BASE}{path}", params=params)

    assert response.status_code == status
    validator = oneroster_validator("imsx_StatusInfoDType")
    assert deviations(validator, response.json()) == set()
    if status == 401:
        oneroster_client.headers["Authorization"] = (
            f"Bearer {fetch_token(oneroster_client)}"
        )


def remove_and_rename_session(folder: Path) -> tuple[str, str]:
    """Remove the last academic session and rename the first; return both ids."""
    path = folder / "academicSessions.json"
    sessions = json.loads(path.read_text(encoding="utf-8"))
    removed = sessions["academicSessions"].pop()
    renamed = sessions["academicSessions"][0]
    renamed["title"] = "Renamed year"
    path.write_text(json.dumps(sessions), encoding="utf-8")
    return removed["sourcedId"], renamed["sourcedId"]


def test_oneroster_delta_with_tombstone_matches_spec(tmp_path):
    folder = shutil.copytree(ONEROSTER_SET, tmp_path / "or11")
    emulator = OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    with (
        emulator,
        httpx.Client(base_url=emulator.base_url, timeout=HTTP_TIMEOUT) as client,
    ):
        client.headers["Authorization"] = f"Bearer {fetch_token(client)}"
        before = get_all(client, f"{ONEROSTER_BASE}/academicSessions")
        since = max(record["dateLastModified"] for record in before["academicSessions"])
        removed, renamed = remove_and_rename_session(folder)
        emulator.reload()
        params = {"filter": f"dateLastModified>'{since}'"}
        body = client.get(f"{ONEROSTER_BASE}/academicSessions", params=params).json()

    statuses = {
        record["sourcedId"]: record["status"] for record in body["academicSessions"]
    }
    assert statuses == {removed: "tobedeleted", renamed: "active"}
    validator = oneroster_validator("AcademicSessionSetDType")
    assert deviations(validator, body) == set()


# The project's generated districts


@pytest.fixture(scope="module")
def generated_clever(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated-clever")
    write_demo_district(folder, DemoSize(students=200), format="clever")
    return folder


@pytest.fixture(scope="module")
def generated_oneroster(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated-oneroster")
    write_demo_district(folder, DemoSize(students=200), format="oneroster-rest")
    return folder


@needs_demo_formats
def test_generated_clever_district_matches_spec(generated_clever):
    with (
        CleverEmulator([generated_clever], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        bodies = {name: get_all(client, f"/v3.0/{name}") for name in CLEVER_LISTS}

    for name, body in bodies.items():
        assert body["data"], f"the generated district has no {name}"
        assert deviations(clever_validator(CLEVER_LISTS[name]), body) == set(), name


@needs_demo_formats
def test_generated_clever_events_match_spec(generated_clever, tmp_path):
    folder = shutil.copytree(generated_clever, tmp_path / "generated")
    with (
        CleverEmulator([folder], token=TOKEN) as emulator,
        httpx.Client(
            base_url=emulator.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=HTTP_TIMEOUT,
        ) as client,
    ):
        change_clever_demo(folder)
        emulator.reload()
        body = client.get("/v3.0/events", params={"limit": 100}).json()

    assert {item["data"]["type"] for item in body["data"]} >= {
        "users.created",
        "users.updated",
        "users.deleted",
    }
    assert deviations(clever_validator("EventsResponse", events=True), body) == set()
    for item in body["data"]:
        event = item["data"]
        validator = clever_validator(event["type"], events=True)
        assert deviations(validator, event) == set(), event["type"]


@needs_demo_formats
def test_generated_oneroster_district_matches_spec(generated_oneroster):
    emulator = OneRosterEmulator(
        [generated_oneroster], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    with (
        emulator,
        httpx.Client(base_url=emulator.base_url, timeout=HTTP_TIMEOUT) as client,
    ):
        client.headers["Authorization"] = f"Bearer {fetch_token(client)}"
        bodies = {
            name: get_all(client, f"{ONEROSTER_BASE}/{name}")
            for name in ONEROSTER_LISTS
        }

    for name, body in bodies.items():
        assert body[name], f"the generated district has no {name}"
        validator = oneroster_validator(ONEROSTER_LISTS[name])
        assert deviations(validator, body) == set(), name
