"""The OneRoster 1.1 REST client against the OneRoster emulator on loopback."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rostersync.demo import DemoSize, write_demo_district
from rostersync.emulators.oneroster import OneRosterEmulator
from rostersync.errors import ProviderAuthError, ProviderError
from rostersync.readers.oneroster_rest import read_oneroster_rest_files
from rostersync.settings import get_settings
from rostersync.sources import read_roster
from rostersync.store.districts import IntegrationConfig
from tests.providers.configs import api_integration, sorted_frames

CLIENT_ID = "classlink-test-client"
CLIENT_SECRET = "classlink-test-secret-77x"
PAGE_SIZE = 50

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_demo_district(
        tmp_path / "rest", DemoSize(students=120, schools=2), format="oneroster-rest"
    )


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    monkeypatch.setenv("TEST_CLASSLINK_ID", CLIENT_ID)
    monkeypatch.setenv("TEST_CLASSLINK_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("ROSTERSYNC_ONEROSTER_PAGE_SIZE", str(PAGE_SIZE))
    get_settings.cache_clear()


def start(folder: Path, **options) -> OneRosterEmulator:
    options.setdefault("auth", "either")
    server = OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **options
    )
    return server.start()


@pytest.fixture
def emulator(folder):
    server = start(folder)
    yield server
    server.stop()


def integration(url: str, **options) -> IntegrationConfig:
    credentials = {
        "client_id": {"env": "TEST_CLASSLINK_ID"},
        "client_secret": {"env": "TEST_CLASSLINK_SECRET"},
    }
    options.setdefault("auth", "oauth1")
    return api_integration("oneroster-rest", url, credentials, **options)


def oauth2(server: OneRosterEmulator, **options) -> IntegrationConfig:
    return integration(
        server.base_url,
        auth="oauth2",
        token_url=f"{server.base_url}/oauth2/v2/token",
        **options,
    )


def assert_same_roster(pulled, folder: Path) -> None:
    expected = sorted_frames(read_oneroster_rest_files(folder))
    for name, frame in sorted_frames(pulled).items():
        assert frame.equals(expected[name]), name


def requests_to(server, collection: str) -> list:
    return [r for r in server.requests if r.collection == collection]


def count(folder: Path, collection: str) -> int:
    return len(json.loads((folder / f"{collection}.json").read_text())[collection])


# Authentication


def test_signed_pull_equals_reading_the_files(emulator, folder):
    roster = read_roster(integration(emulator.base_url))

    assert_same_roster(roster, folder)
    assert roster.pull.mode == "full"


def test_base_url_with_the_oneroster_path_is_accepted(emulator, folder):
    url = f"{emulator.base_url}/ims/oneroster/v1p1"

    assert_same_roster(read_roster(integration(url)), folder)


def test_wrong_secret_fails_at_once(emulator, monkeypatch):
    monkeypatch.setenv("TEST_CLASSLINK_SECRET", "wrong-secret-31")

    with pytest.raises(ProviderAuthError) as raised:
        read_roster(integration(emulator.base_url))

    assert "wrong-secret-31" not in str(raised.value)
    assert len(emulator.requests) == 1


def test_oauth2_pull_requests_one_token(emulator, folder):
    roster = read_roster(oauth2(emulator))

    assert_same_roster(roster, folder)
    assert len(requests_to(emulator, "token")) == 1


def test_oauth2_token_rejected_once_is_renewed_once(emulator, folder):
    emulator.add_fault("unauthorized:path=users,page=2")

    roster = read_roster(oauth2(emulator))

    assert_same_roster(roster, folder)
    assert len(requests_to(emulator, "token")) == 2


def test_oauth2_token_rejected_again_fails(emulator):
    emulator.add_fault("unauthorized:path=users,times=0")

    with pytest.raises(ProviderAuthError, match="HTTP 401"):
        read_roster(oauth2(emulator))

    assert len(requests_to(emulator, "token")) == 2


def test_oauth2_wrong_secret_names_the_token_endpoint(emulator, monkeypatch):
    monkeypatch.setenv("TEST_CLASSLINK_SECRET", "wrong-secret-32")

    with pytest.raises(ProviderAuthError, match="token endpoint rejected") as raised:
        read_roster(oauth2(emulator))

    assert "wrong-secret-32" not in str(raised.value)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("plain-id", "abc+def"), ("id:with:colons", "s p%ce&="), ("idé", "sécret")],
)
def test_oauth2_credentials_are_form_encoded(folder, monkeypatch, client_id, secret):
    monkeypatch.setenv("TEST_CLASSLINK_ID", client_id)
    monkeypatch.setenv("TEST_CLASSLINK_SECRET", secret)
    server = OneRosterEmulator(
        [folder], client_id=client_id, client_secret=secret, auth="either"
    ).start()
    try:
        roster = read_roster(oauth2(server))
    finally:
        server.stop()

    assert_same_roster(roster, folder)


def test_token_endpoint_outage_is_retried(emulator, folder):
    emulator.add_fault("server-error:path=token,status=503")

    roster = read_roster(oauth2(emulator))

    assert_same_roster(roster, folder)
    assert roster.pull.retries == 1


# Paging


def test_paging_stops_at_the_total_count(emulator, folder):
    roster = read_roster(integration(emulator.base_url))

    users = count(folder, "users")
    assert roster.pull.pages["users"] == math.ceil(users / PAGE_SIZE)


def test_paging_follows_link_headers_without_a_total(folder):
    server = start(folder, total_count_header=False)
    try:
        roster = read_roster(integration(server.base_url))
    finally:
        server.stop()

    users = count(folder, "users")
    assert roster.pull.pages["users"] == math.ceil(users / PAGE_SIZE)
    assert_same_roster(roster, folder)


def test_short_page_ends_paging_without_headers(folder):
    server = start(folder, total_count_header=False, link_header=False)
    try:
        roster = read_roster(integration(server.base_url))
    finally:
        server.stop()

    users = count(folder, "users")
    # The last page is shorter than the earlier ones, unless it is full; a full
    # last page needs one more, empty page to end.
    expected = users // PAGE_SIZE + 1
    assert roster.pull.pages["users"] == expected
    # A first page shorter than the limit is confirmed by one more request.
    assert roster.pull.pages["orgs"] == 2
    assert_same_roster(roster, folder)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="total-and-link"),
        pytest.param({"total_count_header": False}, id="link-only"),
        pytest.param({"total_count_header": False, "link_header": False}, id="none"),
    ],
)
def test_provider_serving_smaller_pages_is_read_whole(folder, headers):
    server = start(folder, page_cap=PAGE_SIZE - 7, **headers)
    try:
        roster = read_roster(integration(server.base_url))
    finally:
        server.stop()

    assert_same_roster(roster, folder)


def test_record_moving_between_pages_reads_the_collection_again(emulator, folder):
    emulator.add_fault("move:path=users,page=2")

    roster = read_roster(integration(emulator.base_url))

    assert_same_roster(roster, folder)
    users = count(folder, "users")
    assert roster.pull.records["users"] == 2 * users


def test_records_moving_on_every_read_fail_the_pull(emulator):
    emulator.add_fault("move:path=users,page=2,times=2")

    with pytest.raises(ProviderError, match="X-Total-Count"):
        read_roster(integration(emulator.base_url))


@pytest.mark.parametrize(
    "fault",
    [
        "server-error:path=classes,page=1,status=502",
        "rate-limit:path=enrollments,seconds=1,header=retry-after",
        "drop:path=orgs",
        "truncate:path=users,page=2",
        "slow:path=enrollments,page=2,seconds=2.5",
    ],
)
def test_transient_fault_is_overcome(emulator, folder, fault):
    emulator.add_fault(fault)

    roster = read_roster(integration(emulator.base_url))

    assert_same_roster(roster, folder)
    assert roster.pull.retries + roster.pull.rate_limited == 1


def test_body_without_the_collection_fails_after_every_try(emulator):
    emulator.add_fault("no-data:path=classes,times=0")

    with pytest.raises(ProviderError, match='not JSON with the "classes" list'):
        read_roster(integration(emulator.base_url))


# Deltas


def write_users(folder: Path, change) -> None:
    path = folder / "users.json"
    records = change(json.loads(path.read_text())["users"])
    lines = ",\n".join(json.dumps(record) for record in records)
    path.write_text(f'{{"users":[\n{lines}\n]}}\n', encoding="utf-8")


def test_delta_reads_only_changed_users_and_marks_removals(emulator, folder):
    before = datetime.now(UTC) - timedelta(minutes=5)
    cursor = before.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def change(records):
        kept = [r for r in records if r["sourcedId"] != "demo-stu-3"]
        for record in kept:
            if record["sourcedId"] == "demo-stu-2":
                record["grades"] = ["12"]
        return kept

    write_users(folder, change)
    emulator.reload()

    roster = read_roster(
        integration(
            emulator.base_url, incremental=True, cursor=cursor, cursor_at=before
        )
    )

    users = roster.users.set_index("provider_id")
    assert roster.pull.mode == "incremental"
    assert roster.modes["users"] == "delta"
    assert roster.modes["schools"] == "bulk"
    assert sorted(users.index) == ["demo-stu-2", "demo-stu-3"]
    assert users.loc["demo-stu-2", "grade"] == "12"
    assert users.loc["demo-stu-3", "status"] == "tobedeleted"
    filters = {tuple(r.query.get("filter", ())) for r in requests_to(emulator, "users")}
    assert filters == {(f"dateLastModified>'{cursor}'",)}
    assert requests_to(emulator, "orgs")[0].query.get("filter") is None


def test_incremental_integration_without_cursor_pulls_in_full(emulator, folder):
    roster = read_roster(integration(emulator.base_url, incremental=True))

    assert roster.pull.mode == "full"
    assert roster.pull.reason == "no delta cursor is stored yet"
    assert roster.cursor is not None
    assert roster.cursor.value < datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert_same_roster(roster, folder)
