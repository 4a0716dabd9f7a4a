"""Responses no provider should send, from a scripted server on loopback."""

from __future__ import annotations

import gzip
import json

import pytest

from rostersync.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    RosterSourceError,
)
from rostersync.settings import get_settings
from rostersync.sources import read_roster
from rostersync.store.districts import IntegrationConfig
from tests.providers.configs import api_integration
from tests.providers.scripted import Reply, ScriptedServer

TOKEN = "scripted-token-2c4e"
STUDENT_NAME = "Quillonia Bramblethorpe"

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("SCRIPTED_TOKEN", TOKEN)
    monkeypatch.setenv("SCRIPTED_ID", "client")
    monkeypatch.setenv("SCRIPTED_SECRET", "scripted-secret-88")


def clever(url: str, **options) -> IntegrationConfig:
    token = {"token": {"env": "SCRIPTED_TOKEN"}}
    return api_integration("clever", url, token, **options)


def oneroster(url: str, **options) -> IntegrationConfig:
    credentials = {
        "client_id": {"env": "SCRIPTED_ID"},
        "client_secret": {"env": "SCRIPTED_SECRET"},
    }
    options.setdefault("auth", "oauth1")
    return api_integration("oneroster-rest", url, credentials, **options)


def clever_page(records: list[dict], next_uri: str | None = None) -> bytes:
    links = [{"rel": "next", "uri": next_uri}] if next_uri else []
    data = [{"data": record, "uri": f"/v3.0/x/{record['id']}"} for record in records]
    return json.dumps({"data": data, "links": links}).encode()


def empty_clever(path, query, headers) -> Reply:
    return Reply(body=clever_page([]))


def test_provider_error_text_is_never_quoted():
    def script(path, query, headers):
        message = f"token {headers.get('Authorization')} revoked for {STUDENT_NAME}"
        return Reply(401, json.dumps({"message": message}).encode())

    with ScriptedServer(script) as server, pytest.raises(ProviderAuthError) as raised:
        read_roster(clever(server.base_url))

    assert TOKEN not in str(raised.value)
    assert STUDENT_NAME not in str(raised.value)
    assert "HTTP 401" in str(raised.value)


def test_provider_error_code_from_the_vocabulary_is_shown():
    body = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": f"No access for {STUDENT_NAME}",
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {
                    "imsx_codeMinorFieldName": "TargetEndSystem",
                    "imsx_codeMinorFieldValue": "forbidden",
                }
            ]
        },
    }

    def script(path, query, headers):
        return Reply(403, json.dumps(body).encode())

    with ScriptedServer(script) as server, pytest.raises(ProviderAuthError) as raised:
        read_roster(oneroster(server.base_url))

    assert "(code forbidden)" in str(raised.value)
    assert STUDENT_NAME not in str(raised.value)


def test_next_link_cannot_change_the_role_filter():
    def script(path, query, headers):
        first = "starting_after" not in query
        if path == "/v3.0/users" and query.get("role") == "student" and first:
            record = {"id": "u1", "roles": {"student": {"school": "s1"}}}
            next_uri = "/v3.0/users?limit=5&role=contact&starting_after=u1"
            return Reply(body=clever_page([record], next_uri))
        return Reply(body=clever_page([]))

    with ScriptedServer(script) as server:
        read_roster(clever(server.base_url, incremental=False))
        followed = [q for p, q in server.requests if "starting_after" in q]

    assert followed == [{"limit": "10000", "role": "student", "starting_after": "u1"}]


def test_endless_empty_pages_fail_the_pull():
    def script(path, query, headers):
        if path == "/v3.0/users" and query.get("role") == "student":
            after = int(query.get("starting_after", "0"))
            next_uri = f"/v3.0/users?role=student&starting_after={after + 1:06d}"
            return Reply(body=clever_page([], next_uri))
        return Reply(body=clever_page([]))

    with (
        ScriptedServer(script) as server,
        pytest.raises(ProviderError, match="two empty pages in a row"),
    ):
        read_roster(clever(server.base_url, incremental=False))
    student_pages = [q for p, q in server.requests if q.get("role") == "student"]

    assert len(student_pages) == 2


def test_one_empty_page_that_links_on_is_followed():
    def script(path, query, headers):
        if path == "/v3.0/users" and query.get("role") == "student":
            after = query.get("starting_after")
            if after is None:
                return Reply(body=clever_page([], "/v3.0/users?starting_after=u0"))
            if after == "u0":
                record = {"id": "u1", "roles": {"student": {"school": "s1"}}}
                return Reply(body=clever_page([record]))
        if path == "/v3.0/schools":
            return Reply(body=clever_page([{"id": "s1", "name": "School"}]))
        return Reply(body=clever_page([]))

    with ScriptedServer(script) as server:
        roster = read_roster(clever(server.base_url, incremental=False))

    assert roster.users["provider_id"].tolist() == ["u1"]


def test_next_link_without_a_cursor_is_refused():
    def script(path, query, headers):
        if path == "/v3.0/schools":
            return Reply(body=clever_page([{"id": "s1"}], "/v3.0/schools?limit=1"))
        return Reply(body=clever_page([]))

    with (
        ScriptedServer(script) as server,
        pytest.raises(ProviderError, match="no starting_after cursor"),
    ):
        read_roster(clever(server.base_url, incremental=False))


def test_decompressed_body_larger_than_the_limit_fails(monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_HTTP_MAX_RESPONSE_MB", "1")
    get_settings.cache_clear()
    bomb = gzip.compress(b'{"data": [' + b" " * (8 * 2**20) + b"]}")

    def script(path, query, headers):
        return Reply(body=bomb, headers={"Content-Encoding": "gzip"})

    with (
        ScriptedServer(script) as server,
        pytest.raises(ProviderError, match="more than 1 MiB"),
    ):
        read_roster(clever(server.base_url, incremental=False))

    assert len(bomb) < 2**20


def test_body_sent_too_slowly_is_tried_again(monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_HTTP_RESPONSE_MAX_SECONDS", "0.3")
    monkeypatch.setenv("ROSTERSYNC_HTTP_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()

    def script(path, query, headers):
        return Reply(body=clever_page([]), trickle=0.05)

    with ScriptedServer(script) as server:
        with pytest.raises(ProviderError, match="took longer than 0.3 s to arrive"):
            read_roster(clever(server.base_url, incremental=False))
        sent = len(server.requests)

    assert sent == 2


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(
            b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}, id="deep"
        ),
        pytest.param(b"<html>maintenance</html>", {}, id="html"),
        pytest.param(b"not gzip at all", {"Content-Encoding": "gzip"}, id="bad-gzip"),
    ],
)
def test_unreadable_body_is_tried_then_fails(monkeypatch, body, headers):
    monkeypatch.setenv("ROSTERSYNC_HTTP_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()

    def script(path, query, headers_in):
        return Reply(body=body, headers=headers)

    with ScriptedServer(script) as server:
        with pytest.raises(ProviderError, match="on all 2 tries"):
            read_roster(clever(server.base_url, incremental=False))
        sent = len(server.requests)

    assert sent == 2


def test_event_with_a_bad_created_field_names_it():
    def script(path, query, headers):
        if path == "/v3.0/events":
            event = {
                "id": "e2",
                "type": "users.updated",
                "created": {"when": "now"},
                "data": {"object": {"id": "u1", "roles": {}}},
            }
            return Reply(body=clever_page([event]))
        return Reply(body=clever_page([]))

    with (
        ScriptedServer(script) as server,
        pytest.raises(RosterSourceError, match="created is a JSON object"),
    ):
        read_roster(clever(server.base_url, incremental=True, cursor="e1"))


def test_capped_pages_without_headers_are_read_whole():
    users = [
        {"sourcedId": f"u{n}", "role": "student", "orgs": [], "status": "active"}
        for n in range(25)
    ]

    def script(path, query, headers):
        collection = path.rsplit("/", 1)[-1]
        records = users if collection == "users" else []
        offset = int(query.get("offset", 0))
        # The provider serves 10 records a page, whatever the limit.
        page = records[offset : offset + 10]
        return Reply(body=json.dumps({collection: page}).encode())

    with ScriptedServer(script) as server:
        roster = read_roster(oneroster(server.base_url))

    assert len(roster.users) == 25


def test_credential_with_a_line_break_is_rejected(monkeypatch):
    monkeypatch.setenv("SCRIPTED_TOKEN", "abc\nX-Injected: 1")

    with ScriptedServer(empty_clever) as server:
        with pytest.raises(ConfigurationError, match="line break"):
            read_roster(clever(server.base_url))
        sent = server.requests

    assert sent == []


def test_non_ascii_token_rejected_before_requests(monkeypatch):
    monkeypatch.setenv("SCRIPTED_TOKEN", "token\u201dpasted")

    with ScriptedServer(empty_clever) as server:
        with pytest.raises(ConfigurationError, match="not ASCII") as raised:
            read_roster(clever(server.base_url))
        sent = server.requests

    assert sent == []
    assert "pasted" not in str(raised.value)


def test_token_whitespace_is_removed(monkeypatch):
    monkeypatch.setenv("SCRIPTED_TOKEN", "  abc-token\n")
    sent = []

    def script(path, query, headers):
        sent.append(headers.get("Authorization"))
        return empty_clever(path, query, headers)

    with ScriptedServer(script) as server:
        read_roster(clever(server.base_url))

    assert set(sent) == {"Bearer abc-token"}


def test_non_numeric_token_lifetime_ignored():
    tokens = []

    def script(path, query, headers):
        if path == "/token":
            tokens.append(1)
            body = {"access_token": "t", "token_type": "Bearer", "expires_in": True}
            return Reply(body=json.dumps(body).encode())
        collection = path.rsplit("/", 1)[-1]
        return Reply(body=json.dumps({collection: []}).encode())

    with ScriptedServer(script) as server:
        read_roster(
            oneroster(
                server.base_url, auth="oauth2", token_url=f"{server.base_url}/token"
            )
        )

    assert len(tokens) == 1


def oauth2_script(collection_reply):
    """A OneRoster service with a working token endpoint at /token."""
    tokens = []

    def script(path, query, headers):
        if path == "/token":
            tokens.append(headers.get("Authorization"))
            body = {"access_token": f"t{len(tokens)}", "expires_in": 3600}
            return Reply(body=json.dumps(body).encode())
        return collection_reply(path, query, headers)

    return script, tokens


def test_oauth2_responses_keep_the_size_limit(monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_HTTP_MAX_RESPONSE_MB", "1")
    get_settings.cache_clear()

    def huge(path, query, headers):
        return Reply(body=b'{"orgs": [' + b" " * (3 * 2**20) + b"]}")

    script, _ = oauth2_script(huge)
    with ScriptedServer(script) as server:
        config = oneroster(
            server.base_url, auth="oauth2", token_url=f"{server.base_url}/token"
        )
        with pytest.raises(ProviderError, match="more than 1 MiB"):
            read_roster(config)


def test_token_endpoint_rate_limit_waits_for_its_reset(monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_HTTP_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    limited = []

    def script(path, query, headers):
        if path == "/token" and len(limited) < 2:
            limited.append(1)
            return Reply(429, b"{}", {"Retry-After": "0"})
        if path == "/token":
            return Reply(body=b'{"access_token": "t", "expires_in": 3600}')
        collection = path.rsplit("/", 1)[-1]
        return Reply(body=json.dumps({collection: []}).encode())

    with ScriptedServer(script) as server:
        roster = read_roster(
            oneroster(
                server.base_url, auth="oauth2", token_url=f"{server.base_url}/token"
            )
        )

    assert roster.pull.rate_limited == 2
    assert roster.pull.retries == 0
