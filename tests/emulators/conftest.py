"""Fixtures of the emulator tests: inline data folders, a test clock and clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.oneroster import OneRosterEmulator
from rostersync.emulators.records import iso_timestamp

TOKEN = "test-district-token"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
DISTRICT_ID = "d0000000000000000000000a"
# 2026-12-04T10:00:00Z, a fixed start for the test clock.
START = 1_796_378_400.0
HTTP_TIMEOUT = 10.0


class TestClock:
    """A clock that moves only when a test advances it."""

    __test__ = False

    def __init__(self, start: float = START) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


# Clever data


def clever_id(number: int) -> str:
    """Return a 24-hex-digit id like Clever's, increasing with ``number``."""
    return f"{number:024x}"


def clever_user(number: int, role: str = "student", **fields: Any) -> dict[str, Any]:
    record = {
        "id": clever_id(number),
        "district": DISTRICT_ID,
        "name": {"first": f"First{number}", "last": f"Last{number}"},
        "email": f"user{number}@example.invalid",
        "roles": {role: {"school": clever_id(9001)}},
        "created": "2026-01-01T00:00:00.000Z",
        "last_modified": "2026-01-01T00:00:00.000Z",
    }
    record.update(fields)
    return record


def clever_school(number: int) -> dict[str, Any]:
    return {
        "id": clever_id(number),
        "district": DISTRICT_ID,
        "name": f"School {number}",
    }


def clever_section(number: int) -> dict[str, Any]:
    return {
        "id": clever_id(number),
        "district": DISTRICT_ID,
        "school": clever_id(9001),
        "name": f"Section {number}",
        "students": [clever_id(1)],
        "teachers": [clever_id(101)],
    }


def write_clever_file(
    folder: Path, collection: str, records: list[dict[str, Any]]
) -> Path:
    """Write a v3.0 list file with one record per line, as the generator does."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"data": record, "uri": f"/v3.0/{collection}/{record['id']}"})
        for record in records
    ]
    path = folder / f"{collection}.json"
    path.write_text('{"data":[\n' + ",\n".join(lines) + '\n],"links":[]}\n')
    return path


def default_clever_users() -> list[dict[str, Any]]:
    """Five students, two teachers and one contact, ids 1-5, 101-102 and 201."""
    students = [clever_user(number) for number in range(1, 6)]
    teachers = [clever_user(number, "teacher") for number in (101, 102)]
    return [*students, *teachers, clever_user(201, "contact")]


def write_clever_folder(
    folder: Path, users: list[dict[str, Any]] | None = None
) -> Path:
    write_clever_file(folder, "schools", [clever_school(9001), clever_school(9002)])
    write_clever_file(folder, "users", users or default_clever_users())
    write_clever_file(folder, "sections", [clever_section(5001), clever_section(5002)])
    return folder


# OneRoster data


def oneroster_user(
    number: int, role: str = "student", date: str = "2026-01-01T00:00:00.000Z"
) -> dict[str, Any]:
    return {
        "sourcedId": f"user-{number:04d}",
        "status": "active",
        "dateLastModified": date,
        "enabledUser": "true",
        "orgs": [
            {
                "href": "http://127.0.0.1/ims/oneroster/v1p1/orgs/school-1",
                "sourcedId": "school-1",
                "type": "org",
            }
        ],
        "role": role,
        "username": f"user{number}",
        "givenName": f"Given{number}",
        "familyName": f"Family{number}",
    }


def oneroster_org(sourced_id: str = "school-1") -> dict[str, Any]:
    return {
        "sourcedId": sourced_id,
        "status": "active",
        "dateLastModified": "2026-01-01T00:00:00.000Z",
        "name": "School One",
        "type": "school",
        "identifier": "S1",
    }


def write_oneroster_file(
    folder: Path, collection: str, records: list[dict[str, Any]]
) -> Path:
    """Write ``{"<collection>": [...]}`` with one record per line."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record) for record in records]
    path = folder / f"{collection}.json"
    path.write_text(f'{{"{collection}":[\n' + ",\n".join(lines) + "\n]}\n")
    return path


def write_oneroster_folder(folder: Path, users: list[dict[str, Any]]) -> Path:
    write_oneroster_file(folder, "orgs", [oneroster_org()])
    write_oneroster_file(folder, "users", users)
    for collection in ("classes", "enrollments", "academicSessions"):
        write_oneroster_file(folder, collection, [])
    return folder


def now_iso(clock: TestClock) -> str:
    return iso_timestamp(clock())


# Fixtures


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def clever_folder(tmp_path: Path) -> Path:
    return write_clever_folder(tmp_path / "clever")


@pytest.fixture
def clever(clever_folder: Path, clock: TestClock) -> Iterator[CleverEmulator]:
    with CleverEmulator([clever_folder], token=TOKEN, now=clock) as emulator:
        yield emulator


@pytest.fixture
def clever_client(clever: CleverEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(
        base_url=clever.base_url, headers=headers, timeout=HTTP_TIMEOUT
    ) as client:
        yield client


@pytest.fixture
def oneroster_folder(tmp_path: Path) -> Path:
    users = [oneroster_user(number) for number in range(1, 8)]
    return write_oneroster_folder(tmp_path / "oneroster", users)


@pytest.fixture
def oneroster(oneroster_folder: Path, clock: TestClock) -> Iterator[OneRosterEmulator]:
    emulator = OneRosterEmulator(
        [oneroster_folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET, now=clock
    )
    with emulator:
        yield emulator


@pytest.fixture
def oneroster_client(oneroster: OneRosterEmulator) -> Iterator[httpx.Client]:
    """A client that sends a bearer token from the emulator's token endpoint."""
    with httpx.Client(base_url=oneroster.base_url, timeout=HTTP_TIMEOUT) as client:
        client.headers["Authorization"] = f"Bearer {fetch_token(client)}"
        yield client


def fetch_token(client: httpx.Client) -> str:
    response = client.post(
        "/oauth2/v2/token",
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    )
    response.raise_for_status()
    return response.json()["access_token"]
