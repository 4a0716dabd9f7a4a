"""Tests of the OneRoster 1.1 emulator over real HTTP: paging, filters, auth, reload."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rostersync.emulators.oneroster import OneRosterEmulator
from rostersync.providers import oauth1
from tests.emulators.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    HTTP_TIMEOUT,
    TestClock,
    fetch_token,
    now_iso,
    oneroster_user,
    write_oneroster_file,
    write_oneroster_folder,
)

USERS = "/ims/oneroster/v1p1/users"
TOKEN_PATH = "/oauth2/v2/token"


def ids_of(body: dict, collection: str = "users") -> list[str]:
    return [record["sourcedId"] for record in body[collection]]


def default_ids() -> list[str]:
    return [oneroster_user(number)["sourcedId"] for number in range(1, 8)]


def code_minor(body: dict) -> str:
    return body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def page_by_offset(client: httpx.Client, path: str, limit: int) -> list[str]:
    """Read pages until a short one, as ClassLink clients do; return every id."""
    seen: list[str] = []
    for page in range(20):
        params = {"limit": limit, "offset": page * limit}
        records = client.get(path, params=params).json()["users"]
        seen.extend(record["sourcedId"] for record in records)
        if len(records) < limit:
            return seen
    raise AssertionError("Paging did not end within 20 pages.")


@pytest.fixture
def emulator_factory(
    oneroster_folder: Path, clock: TestClock
) -> Iterator[Callable[..., OneRosterEmulator]]:
    """Start OneRoster emulators with custom settings; stop them all afterwards."""
    started: list[OneRosterEmulator] = []

    def start(folder: Path | None = None, **settings) -> OneRosterEmulator:
        settings = {"now": clock, **settings}
        emulator = OneRosterEmulator(
            [folder or oneroster_folder],
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            **settings,
        )
        started.append(emulator.start())
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def raw_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        yield client


@contextmanager
def bearer_client(emulator: OneRosterEmulator) -> Iterator[httpx.Client]:
    """Open a client that sends a bearer token from the emulator's token endpoint."""
    with httpx.Client(base_url=emulator.base_url, timeout=HTTP_TIMEOUT) as client:
        client.headers["Authorization"] = f"Bearer {fetch_token(client)}"
        yield client


def signed_get(
    client: httpx.Client,
    emulator: OneRosterEmulator,
    path: str,
    params: list[tuple[str, str]] | None = None,
    *,
    timestamp: float,
    key: str = CLIENT_ID,
    secret: str = CLIENT_SECRET,
    nonce: str | None = None,
    sent_params: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """GET with an OAuth 1.0a header signed over ``params``."""
    url = emulator.base_url + path
    header = oauth1.authorization_header(
        "GET",
        url,
        params or [],
        consumer_key=key,
        consumer_secret=secret,
        timestamp=int(timestamp),
        nonce=nonce,
    )
    sent = params if sent_params is None else sent_params
    return client.get(url, params=sent, headers={"Authorization": header})


# Paging


def test_users_listed_in_file_order(oneroster_client):
    body = oneroster_client.get(USERS).json()

    assert ids_of(body) == default_ids()


def test_limit_and_offset_select_page(oneroster_client):
    body = oneroster_client.get(USERS, params={"limit": 3, "offset": 3}).json()

    assert ids_of(body) == default_ids()[3:6]


def test_total_count_header_counts_collection(oneroster_client):
    response = oneroster_client.get(USERS, params={"limit": 3})

    assert response.headers["X-Total-Count"] == str(len(default_ids()))


def test_link_header_has_next_and_last(oneroster, oneroster_client):
    response = oneroster_client.get(USERS, params={"limit": 3})

    url = f"{oneroster.base_url}{USERS}"
    last_offset = (len(default_ids()) - 1) // 3 * 3
    assert response.headers["Link"] == (
        f'<{url}?limit=3&offset=3>; rel="next", '
        f'<{url}?limit=3&offset={last_offset}>; rel="last"'
    )


def test_last_page_has_no_link_header(oneroster_client):
    response = oneroster_client.get(USERS, params={"limit": 3, "offset": 6})

    assert "Link" not in response.headers


def test_total_count_header_can_be_off(emulator_factory):
    emulator = emulator_factory(total_count_header=False)
    with bearer_client(emulator) as client:
        response = client.get(USERS, params={"limit": 3})

    assert "X-Total-Count" not in response.headers
    assert "Link" in response.headers


def test_link_header_can_be_off(emulator_factory):
    emulator = emulator_factory(link_header=False)
    with bearer_client(emulator) as client:
        response = client.get(USERS, params={"limit": 3})

    assert "Link" not in response.headers


def test_offset_past_end_is_empty_page(oneroster_client):
    response = oneroster_client.get(USERS, params={"offset": 100})

    assert response.status_code == 200
    assert response.json() == {"users": []}


def test_paging_by_offset_visits_every_user_once(oneroster_client):
    seen = page_by_offset(oneroster_client, USERS, limit=3)

    assert seen == default_ids()


def test_default_limit_is_100(emulator_factory, tmp_path):
    count = 130
    users = [oneroster_user(number) for number in range(1, count + 1)]
    folder = write_oneroster_folder(tmp_path / "big", users)
    emulator = emulator_factory(folder)
    with bearer_client(emulator) as client:
        body = client.get(USERS).json()

    assert len(body["users"]) == 100


def test_limit_above_max_limit_is_400(emulator_factory):
    max_limit = 5
    emulator = emulator_factory(max_limit=max_limit)
    with bearer_client(emulator) as client:
        response = client.get(USERS, params={"limit": max_limit + 1})

    assert response.status_code == 400
    assert code_minor(response.json()) == "invaliddata"
    assert str(max_limit) in response.json()["imsx_description"]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"offset": -1}, id="negative-offset"),
        pytest.param({"limit": "all"}, id="text-limit"),
        pytest.param({"limit": 0}, id="zero-limit"),
    ],
)
def test_invalid_paging_is_400(oneroster_client, params):
    response = oneroster_client.get(USERS, params=params)

    assert response.status_code == 400
    assert code_minor(response.json()) == "invaliddata"


def test_page_number_is_offset_over_limit(oneroster, oneroster_client):
    oneroster_client.get(USERS, params={"limit": 3, "offset": 6})

    assert oneroster.requests[-1].page == 6 // 3 + 1


# Records


def test_record_by_sourced_id(oneroster_client):
    body = oneroster_client.get(f"{USERS}/user-0002").json()

    assert body == {"user": oneroster_user(2)}


def test_unknown_record_is_404(oneroster_client):
    response = oneroster_client.get(f"{USERS}/nobody")

    assert response.status_code == 404
    assert code_minor(response.json()) == "unknownobject"


def test_unknown_collection_is_404(oneroster_client):
    response = oneroster_client.get("/ims/oneroster/v1p1/courses")

    assert response.status_code == 404


def test_missing_file_is_empty_with_one_warning(emulator_factory, tmp_path, caplog):
    folder = write_oneroster_folder(tmp_path / "partial", [oneroster_user(1)])
    (folder / "enrollments.json").unlink()
    caplog.set_level(logging.WARNING, logger="rostersync.emulators")

    emulator = emulator_factory(folder)
    emulator.reload()
    with bearer_client(emulator) as client:
        body = client.get("/ims/oneroster/v1p1/enrollments").json()

    warnings = [r for r in caplog.records if "enrollments.json" in r.getMessage()]
    assert body == {"enrollments": []}
    assert len(warnings) == 1


def test_earlier_folder_wins_and_later_fills_in(tmp_path):
    first = tmp_path / "first"
    write_oneroster_file(first, "users", [oneroster_user(9)])
    second = write_oneroster_folder(tmp_path / "second", [oneroster_user(1)])
    emulator = OneRosterEmulator(
        [first, second], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    with emulator, bearer_client(emulator) as client:
        users = client.get(USERS).json()
        orgs = client.get("/ims/oneroster/v1p1/orgs").json()

    assert ids_of(users) == ["user-0009"]
    assert ids_of(orgs, "orgs") == ["school-1"]


def test_record_without_sourced_id_raises(tmp_path):
    folder = write_oneroster_folder(tmp_path / "bad", [{"status": "active"}])

    with pytest.raises(ValueError, match="string sourcedId"):
        OneRosterEmulator([folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


def test_unknown_auth_mode_is_rejected(oneroster_folder):
    with pytest.raises(ValueError, match="auth must be one of"):
        OneRosterEmulator(
            [oneroster_folder],
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            auth="saml",
        )


# Filters

DATES = [
    "2026-12-01T10:00:00.000Z",
    "2026-12-02T10:00:00.000Z",
    "2026-12-03T10:00:00.000Z",
    "2026-12-04T10:00:00.000Z",
]
PIVOT = DATES[2]


@pytest.fixture
def dated_client(emulator_factory, tmp_path) -> Iterator[httpx.Client]:
    """A client of users user-0001..4 modified on DATES, user-0004 a teacher."""
    users = [oneroster_user(n, date=date) for n, date in enumerate(DATES, start=1)]
    users[3]["role"] = "teacher"
    emulator = emulator_factory(write_oneroster_folder(tmp_path / "dated", users))
    with bearer_client(emulator) as client:
        yield client


def ids_with_date(test) -> list[str]:
    return [f"user-{n:04d}" for n, date in enumerate(DATES, start=1) if test(date)]


@pytest.mark.parametrize(
    ("op", "test"),
    [
        pytest.param("=", lambda date: date == PIVOT, id="eq"),
        pytest.param("!=", lambda date: date != PIVOT, id="ne"),
        pytest.param(">", lambda date: date > PIVOT, id="gt"),
        pytest.param(">=", lambda date: date >= PIVOT, id="ge"),
        pytest.param("<", lambda date: date < PIVOT, id="lt"),
        pytest.param("<=", lambda date: date <= PIVOT, id="le"),
    ],
)
def test_filter_on_date_last_modified(dated_client, op, test):
    params = {"filter": f"dateLastModified{op}'{PIVOT}'"}

    body = dated_client.get(USERS, params=params).json()

    assert ids_of(body) == ids_with_date(test)


def test_filter_with_and(dated_client):
    params = {"filter": f"dateLastModified>'{DATES[0]}' AND role='student'"}

    body = dated_client.get(USERS, params=params).json()

    assert ids_of(body) == ["user-0002", "user-0003"]


def test_filter_with_or(dated_client):
    params = {"filter": f"dateLastModified<'{DATES[1]}' OR role='teacher'"}

    body = dated_client.get(USERS, params=params).json()

    assert ids_of(body) == ["user-0001", "user-0004"]


def test_filter_on_list_field_matches_nothing(dated_client):
    body = dated_client.get(USERS, params={"filter": "orgs='school-1'"}).json()

    assert body == {"users": []}


def test_total_count_counts_filtered_records(dated_client):
    params = {"filter": f"dateLastModified>'{PIVOT}'", "limit": 1}

    response = dated_client.get(USERS, params=params)

    newer = ids_with_date(lambda date: date > PIVOT)
    assert response.headers["X-Total-Count"] == str(len(newer))


def test_link_header_keeps_filter(dated_client):
    text = f"dateLastModified>'{DATES[0]}'"

    response = dated_client.get(USERS, params={"filter": text, "limit": 1})

    next_url = response.headers["Link"].split(";")[0].strip("<>")
    assert httpx.URL(next_url).params["filter"] == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("dateLastModified>2026", id="unquoted"),
        pytest.param("dateLastModified~'2026'", id="operator"),
        pytest.param("role='a' AND role='b' AND role='c'", id="three"),
        pytest.param("role='a' and role='b'", id="lowercase-and"),
        pytest.param("school.sourcedId='x'", id="nested"),
    ],
)
def test_invalid_filter_is_400(dated_client, text):
    response = dated_client.get(USERS, params={"filter": text})

    assert response.status_code == 400
    assert code_minor(response.json()) == "invalid_filter_field"


def test_unknown_filter_field_is_400(dated_client):
    response = dated_client.get(USERS, params={"filter": "shoeSize='9'"})

    assert response.status_code == 400
    assert code_minor(response.json()) == "invalid_filter_field"
    assert "shoeSize" in response.json()["imsx_description"]


# OAuth 1.0a


def test_signed_request_is_accepted(oneroster, raw_client, clock):
    response = signed_get(raw_client, oneroster, USERS, timestamp=clock())

    assert response.status_code == 200
    assert ids_of(response.json()) == default_ids()


def test_signed_request_with_filter_and_paging(oneroster, raw_client, clock):
    params = [("limit", "2"), ("filter", "role='student'")]

    response = signed_get(raw_client, oneroster, USERS, params, timestamp=clock())

    assert response.status_code == 200
    assert ids_of(response.json()) == default_ids()[:2]


def test_wrong_consumer_key_is_401(oneroster, raw_client, clock):
    response = signed_get(raw_client, oneroster, USERS, timestamp=clock(), key="other")

    assert response.status_code == 401
    assert code_minor(response.json()) == "unauthorisedrequest"


def test_wrong_secret_is_401(oneroster, raw_client, clock):
    response = signed_get(
        raw_client, oneroster, USERS, timestamp=clock(), secret="guess"
    )

    assert response.status_code == 401
    assert "signature does not match" in response.json()["imsx_description"]


def test_unsigned_parameter_is_401(oneroster, raw_client, clock):
    response = signed_get(
        raw_client,
        oneroster,
        USERS,
        [("limit", "5")],
        timestamp=clock(),
        sent_params=[("limit", "6")],
    )

    assert response.status_code == 401


def test_old_timestamp_is_401(oneroster, raw_client, clock):
    response = signed_get(raw_client, oneroster, USERS, timestamp=clock() - 301)

    assert response.status_code == 401
    assert "oauth_timestamp" in response.json()["imsx_description"]


def test_timestamp_within_300_seconds_is_accepted(oneroster, raw_client, clock):
    response = signed_get(raw_client, oneroster, USERS, timestamp=clock() + 299)

    assert response.status_code == 200


def test_reused_nonce_is_401(oneroster, raw_client, clock):
    first = signed_get(raw_client, oneroster, USERS, timestamp=clock(), nonce="n-1")
    second = signed_get(raw_client, oneroster, USERS, timestamp=clock(), nonce="n-1")

    assert first.status_code == 200
    assert second.status_code == 401
    assert "oauth_nonce" in second.json()["imsx_description"]


def test_nonce_reusable_after_ten_minutes(oneroster, raw_client, clock):
    signed_get(raw_client, oneroster, USERS, timestamp=clock(), nonce="n-2")
    clock.advance(601)

    again = signed_get(raw_client, oneroster, USERS, timestamp=clock(), nonce="n-2")

    assert again.status_code == 200


def test_other_signature_method_is_401(oneroster, raw_client, clock):
    header = oauth1.authorization_header(
        "GET",
        oneroster.base_url + USERS,
        [],
        consumer_key=CLIENT_ID,
        consumer_secret=CLIENT_SECRET,
        timestamp=int(clock()),
    ).replace("HMAC-SHA256", "PLAINTEXT")

    response = raw_client.get(
        oneroster.base_url + USERS, headers={"Authorization": header}
    )

    assert response.status_code == 401
    assert "oauth_signature_method" in response.json()["imsx_description"]


def test_signed_request_rejected_in_oauth2_mode(emulator_factory, raw_client, clock):
    emulator = emulator_factory(auth="oauth2")

    response = signed_get(raw_client, emulator, USERS, timestamp=clock())

    assert response.status_code == 401


# OAuth 2 client credentials


def test_token_with_basic_auth(oneroster, raw_client):
    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    )

    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"]
    assert body["access_token"]


def test_token_with_form_fields(oneroster, raw_client):
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }

    response = raw_client.post(oneroster.base_url + TOKEN_PATH, data=form)

    assert response.status_code == 200


def test_token_echoes_requested_scope(oneroster, raw_client):
    scope = "https://purl.imsglobal.org/spec/or/v1p1/scope/roster.readonly"

    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials", "scope": scope},
    )

    assert response.json()["scope"] == scope


def test_wrong_client_secret_is_invalid_client(oneroster, raw_client):
    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, "guess"),
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}


def test_other_grant_type_is_unsupported(oneroster, raw_client):
    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "password"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_endpoint_accepts_only_post(oneroster, raw_client):
    response = raw_client.get(oneroster.base_url + TOKEN_PATH)

    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


def test_unknown_bearer_token_is_401(oneroster, raw_client):
    headers = {"Authorization": "Bearer made-up"}

    response = raw_client.get(oneroster.base_url + USERS, headers=headers)

    assert response.status_code == 401
    assert code_minor(response.json()) == "unauthorisedrequest"


def test_token_expires_after_lifetime(emulator_factory, clock):
    lifetime = 120
    emulator = emulator_factory(token_lifetime=lifetime)
    with bearer_client(emulator) as client:
        before = client.get(USERS)
        clock.advance(lifetime)
        after = client.get(USERS)

    assert before.status_code == 200
    assert after.status_code == 401


def test_bearer_rejected_in_oauth1_mode(emulator_factory, raw_client):
    emulator = emulator_factory(auth="oauth1")
    headers = {"Authorization": "Bearer anything"}

    response = raw_client.get(emulator.base_url + USERS, headers=headers)

    assert response.status_code == 401


def test_token_endpoint_issues_nothing_in_oauth1_mode(emulator_factory, raw_client):
    emulator = emulator_factory(auth="oauth1")

    response = raw_client.post(
        emulator.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 404
    assert "access_token" not in response.json()


def test_either_mode_accepts_both(oneroster, raw_client, clock):
    signed = signed_get(raw_client, oneroster, USERS, timestamp=clock())
    with bearer_client(oneroster) as client:
        bearer = client.get(USERS)

    assert signed.status_code == 200
    assert bearer.status_code == 200


def test_rate_limit_counts_each_token_apart(emulator_factory):
    emulator = emulator_factory(rate_limit_per_minute=1)
    with bearer_client(emulator) as first, bearer_client(emulator) as second:
        statuses = [
            first.get(USERS).status_code,
            first.get(USERS).status_code,
            second.get(USERS).status_code,
        ]

    assert statuses == [200, 429, 200]


def test_rate_limit_answers_imsx_server_busy(emulator_factory):
    emulator = emulator_factory(rate_limit_per_minute=1)
    with bearer_client(emulator) as client:
        client.get(USERS)
        response = client.get(USERS)

    assert code_minor(response.json()) == "server_busy"
    assert "Retry-After" in response.headers
    assert "X-RateLimit-Reset" in response.headers


# Faults


def test_move_fault_skips_and_repeats_record(oneroster, oneroster_client):
    ids = default_ids()
    oneroster.add_fault("move:path=users,page=2")

    seen = page_by_offset(oneroster_client, USERS, limit=3)

    skipped = set(ids) - set(seen)
    repeated = {i for i in seen if seen.count(i) > 1}
    assert skipped == {ids[3]}
    assert repeated == {ids[0]}


def test_move_fault_changes_order_for_good(oneroster, oneroster_client):
    ids = default_ids()
    oneroster.add_fault("move:path=users")
    oneroster_client.get(USERS)

    body = oneroster_client.get(USERS).json()

    assert ids_of(body) == [*ids[1:], ids[0]]


def test_no_data_fault_returns_empty_object(oneroster, oneroster_client):
    oneroster.add_fault("no-data:path=users")

    response = oneroster_client.get(USERS)

    assert response.status_code == 200
    assert response.json() == {}


def test_truncate_fault_cuts_body(oneroster, oneroster_client):
    full = oneroster_client.get(USERS).content
    oneroster.add_fault("truncate:path=users")

    response = oneroster_client.get(USERS)

    assert response.content == full[: len(full) // 2]


def test_drop_fault_closes_connection(oneroster, oneroster_client):
    oneroster.add_fault("drop:path=users")

    with pytest.raises(httpx.RemoteProtocolError):
        oneroster_client.get(USERS)


def test_slow_fault_delays_token(oneroster, raw_client):
    seconds = 0.2
    oneroster.add_fault(f"slow:path=token,seconds={seconds}")

    started = time.monotonic()
    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 200
    assert time.monotonic() - started >= seconds


def test_server_error_fault_has_imsx_body(oneroster, oneroster_client):
    oneroster.add_fault("server-error:path=users,status=500")

    response = oneroster_client.get(USERS)

    assert response.status_code == 500
    assert code_minor(response.json()) == "internal_server_error"


def test_rate_limit_fault_has_imsx_body(oneroster, oneroster_client, clock):
    seconds = 3
    oneroster.add_fault(f"rate-limit:path=users,seconds={seconds},header=reset")

    response = oneroster_client.get(USERS)

    assert response.status_code == 429
    assert code_minor(response.json()) == "server_busy"
    assert response.headers["X-RateLimit-Reset"] == str(math.ceil(clock() + seconds))
    assert "Retry-After" not in response.headers


def test_bad_request_fault_has_imsx_body(oneroster, oneroster_client):
    oneroster.add_fault("bad-request:path=users")

    response = oneroster_client.get(USERS)

    assert response.status_code == 400
    assert code_minor(response.json()) == "invaliddata"


def test_fault_page_comes_from_offset(oneroster, oneroster_client):
    oneroster.add_fault("server-error:path=users,page=2")

    first = oneroster_client.get(USERS, params={"limit": 3, "offset": 0})
    second = oneroster_client.get(USERS, params={"limit": 3, "offset": 3})

    assert first.status_code == 200
    assert second.status_code == 503


def test_unauthorized_fault_expires_bearer_token(oneroster, oneroster_client):
    oneroster.add_fault("unauthorized:path=users")

    rejected = oneroster_client.get(USERS)
    same_token = oneroster_client.get(USERS)
    oneroster_client.headers["Authorization"] = (
        f"Bearer {fetch_token(oneroster_client)}"
    )
    new_token = oneroster_client.get(USERS)

    assert rejected.status_code == 401
    assert same_token.status_code == 401
    assert new_token.status_code == 200


def test_unauthorized_fault_rejects_signed_request(oneroster, raw_client, clock):
    oneroster.add_fault("unauthorized")

    response = signed_get(raw_client, oneroster, USERS, timestamp=clock())

    assert response.status_code == 401
    assert code_minor(response.json()) == "unauthorisedrequest"


def test_unauthorized_fault_on_token_is_invalid_client(oneroster, raw_client):
    oneroster.add_fault("unauthorized:path=token")

    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}


def test_server_error_on_token_has_oauth_body(oneroster, raw_client):
    oneroster.add_fault("server-error:path=token")

    response = raw_client.post(
        oneroster.base_url + TOKEN_PATH,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("kind", ["cursor-repeat", "cursor-backwards"])
def test_cursor_faults_are_rejected(oneroster, kind):
    with pytest.raises(ValueError, match=f"does not support the fault kind '{kind}'"):
        oneroster.add_fault(kind)


def test_fault_path_must_be_oneroster_collection(oneroster):
    with pytest.raises(ValueError, match="Unknown fault path 'sections'"):
        oneroster.add_fault("drop:path=sections")


# Reload


def rewrite_users(folder: Path, users: list[dict]) -> None:
    write_oneroster_file(folder, "users", users)


def delta(client: httpx.Client, since: str) -> list[dict]:
    params = {"filter": f"dateLastModified>'{since}'"}
    return client.get(USERS, params=params).json()["users"]


OLD_DATE = "2026-01-01T00:00:00.000Z"


def test_reload_without_changes_returns_zero(oneroster, oneroster_client):
    assert oneroster.reload() == 0
    assert delta(oneroster_client, OLD_DATE) == []


def test_changed_record_gets_clock_date(
    oneroster, oneroster_client, oneroster_folder, clock
):
    users = [oneroster_user(n) for n in range(1, 8)]
    users[1]["givenName"] = "Renamed"
    rewrite_users(oneroster_folder, users)
    clock.advance(60)

    count = oneroster.reload()

    changed = delta(oneroster_client, OLD_DATE)
    assert count == 1
    assert changed == [dict(users[1], dateLastModified=now_iso(clock))]


def test_unchanged_record_keeps_its_date(oneroster, oneroster_client, oneroster_folder):
    users = [oneroster_user(n) for n in range(1, 8)]
    users[1]["givenName"] = "Renamed"
    rewrite_users(oneroster_folder, users)
    oneroster.reload()

    body = oneroster_client.get(f"{USERS}/user-0001").json()

    assert body["user"] == oneroster_user(1)


def test_date_only_change_is_no_change(oneroster, oneroster_folder):
    users = [oneroster_user(n, date="2026-06-01T00:00:00.000Z") for n in range(1, 8)]
    rewrite_users(oneroster_folder, users)

    assert oneroster.reload() == 0


def test_new_record_gets_clock_date_at_end(
    oneroster, oneroster_client, oneroster_folder, clock
):
    users = [oneroster_user(n) for n in range(1, 9)]
    rewrite_users(oneroster_folder, users)

    oneroster.reload()

    body = oneroster_client.get(USERS).json()
    assert ids_of(body) == [*default_ids(), "user-0008"]
    assert body["users"][-1]["dateLastModified"] == now_iso(clock)


def test_removed_record_leaves_listing(oneroster, oneroster_client, oneroster_folder):
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(2, 8)])

    oneroster.reload()

    assert ids_of(oneroster_client.get(USERS).json()) == default_ids()[1:]


def test_removed_record_is_tombstone_in_delta(
    oneroster, oneroster_client, oneroster_folder, clock
):
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(2, 8)])
    clock.advance(60)

    oneroster.reload()

    expected = dict(
        oneroster_user(1), status="tobedeleted", dateLastModified=now_iso(clock)
    )
    assert delta(oneroster_client, OLD_DATE) == [expected]


def test_tombstone_hidden_from_other_filters(
    oneroster, oneroster_client, oneroster_folder
):
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(2, 8)])
    oneroster.reload()

    body = oneroster_client.get(USERS, params={"filter": "role='student'"}).json()

    assert ids_of(body) == default_ids()[1:]


def test_tombstone_record_endpoint_is_404(
    oneroster, oneroster_client, oneroster_folder
):
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(2, 8)])
    oneroster.reload()

    response = oneroster_client.get(f"{USERS}/user-0001")

    assert response.status_code == 404


def test_tombstone_keeps_date_on_next_reload(
    oneroster, oneroster_client, oneroster_folder, clock
):
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(2, 8)])
    oneroster.reload()
    deleted_at = now_iso(clock)
    clock.advance(60)

    count = oneroster.reload()

    assert count == 0
    assert [r["dateLastModified"] for r in delta(oneroster_client, OLD_DATE)] == [
        deleted_at
    ]


def test_returning_record_replaces_tombstone(
    oneroster, oneroster_client, oneroster_folder, clock
):
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(2, 8)])
    oneroster.reload()
    clock.advance(60)
    rewrite_users(oneroster_folder, [oneroster_user(n) for n in range(1, 8)])

    oneroster.reload()

    body = oneroster_client.get(f"{USERS}/user-0001").json()
    assert body["user"] == dict(oneroster_user(1), dateLastModified=now_iso(clock))


def test_file_tobedeleted_records_are_listed(emulator_factory, tmp_path):
    users = [oneroster_user(1), dict(oneroster_user(2), status="tobedeleted")]
    emulator = emulator_factory(write_oneroster_folder(tmp_path / "marked", users))
    with bearer_client(emulator) as client:
        body = client.get(USERS).json()

    assert body["users"] == users
