"""The daily sync over HTTP: the emulators on loopback, the real flow, both stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from rostersync.cli import run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.oneroster import OneRosterEmulator
from rostersync.providers.clever import FROM_FIRST_EVENT
from rostersync.settings import get_settings
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district, update_district
from tests import datasets
from tests.conftest import REAL_INPUT
from tests.providers.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.usefixtures("prefect_harness", "fast_retries")

TOKEN = "tok-clever-3f9a77c1-unique"
CLIENT_ID = "cl-client-5521"
CLIENT_SECRET = "cl-secret-8e2b40d9-unique"


@pytest.fixture(autouse=True)
def credentials(monkeypatch, fast_retries):
    monkeypatch.setenv("HTTP_TEST_CLEVER_TOKEN", TOKEN)
    monkeypatch.setenv("HTTP_TEST_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("HTTP_TEST_CLIENT_SECRET", CLIENT_SECRET)
    # Small pages, so that every collection of a small district has several.
    monkeypatch.setenv("ROSTERSYNC_CLEVER_PAGE_SIZE", "25")
    monkeypatch.setenv("ROSTERSYNC_ONEROSTER_PAGE_SIZE", "25")
    get_settings.cache_clear()


def register_clever(district_id: str, source: str, **options) -> None:
    add_district(
        get_engine(),
        district_id,
        name=f"District {district_id}",
        provider="clever",
        source=source,
        credentials_ref={"token": {"env": "HTTP_TEST_CLEVER_TOKEN"}}
        if source.startswith("http")
        else None,
        **options,
    )


def register_oneroster(district_id: str, source: str, **options) -> None:
    add_district(
        get_engine(),
        district_id,
        name=f"District {district_id}",
        provider="oneroster-rest",
        source=source,
        credentials_ref={
            "client_id": {"env": "HTTP_TEST_CLIENT_ID"},
            "client_secret": {"env": "HTTP_TEST_CLIENT_SECRET"},
        }
        if source.startswith("http")
        else None,
        **options,
    )


def store_content(district_id: str) -> dict[str, list[tuple]]:
    """Every roster row of a district, with store ids replaced by provider ids.

    Two districts synced from the same data in any order compare equal.
    """
    with get_engine().connect() as connection:
        schools = dict(
            connection.execute(
                sa.text("select id, provider_id from schools where district_id = :d"),
                {"d": district_id},
            ).all()
        )
        users = dict(
            connection.execute(
                sa.text("select id, provider_id from users where district_id = :d"),
                {"d": district_id},
            ).all()
        )
        sections = dict(
            connection.execute(
                sa.text("select id, provider_id from sections where district_id = :d"),
                {"d": district_id},
            ).all()
        )

        def rows(query: str) -> list:
            return connection.execute(sa.text(query), {"d": district_id}).all()

        content = {
            "schools": sorted(
                (r.provider_id, r.name, r.sis_id, r.status)
                for r in rows("select * from schools where district_id = :d")
            ),
            "school_mappings": sorted(
                (r.provider_school_id, schools[r.school_id], bool(r.is_alias))
                for r in rows("select * from school_mappings where district_id = :d")
            ),
            "users": sorted(
                (
                    r.provider_id,
                    r.kind,
                    r.role,
                    r.given_name,
                    r.family_name,
                    r.email,
                    r.username,
                    r.sis_id,
                    r.grade,
                    r.eligibility,
                    schools.get(r.school_id),
                    tuple(sorted(schools[i] for i in _ids(r.school_ids))),
                    r.status,
                )  # fmt: skip
                for r in rows("select * from users where district_id = :d")
            ),
            "sections": sorted(
                (r.provider_id, schools.get(r.school_id), r.name, r.sis_id, r.status)
                for r in rows("select * from sections where district_id = :d")
            ),
            "enrollments": sorted(
                (sections[r.section_id], users[r.user_id], r.role, r.status)
                for r in rows("select * from enrollments where district_id = :d")
            ),
        }
        content["change_log"] = sorted(
            tuple(r)
            for r in rows(
                "select entity, action, count(*) from change_log "
                "where district_id = :d group by entity, action"
            )
        )
    return content


def _ids(value) -> list[int]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def cursor_of(district_id: str) -> str | None:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select events_cursor from integrations where district_id = :d"),
            {"d": district_id},
        ).scalar_one()


def run_row(run_id: str) -> sa.Row:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select status, reason from sync_runs where id = :r"),
            {"r": run_id},
        ).one()


# Same store through HTTP as through the files


@pytest.mark.real_input
def test_clever_demo_over_http_matches_files(store_url, tmp_path):
    folder = datasets.copy_clever_demo(tmp_path / "clever")
    register_clever("files", str(folder))
    with CleverEmulator([folder], token=TOKEN) as emulator:
        register_clever("api", emulator.base_url)

        from_files = run_sync("files")
        over_http = run_sync("api")

    assert from_files.status == "completed"
    assert over_http.status == "completed"
    assert over_http.pull["requests"] > 0
    assert over_http.counts == from_files.counts
    assert over_http.quarantined == from_files.quarantined
    assert store_content("api") == store_content("files")


@pytest.mark.real_input
def test_oneedtech_set_over_http_matches_files(store_url, tmp_path):
    folder = tmp_path / "or11"
    shutil.copytree(REAL_INPUT / "1edtech-or11-rest" / "1574845678", folder)
    # The set's enrollments.json is missing upstream; both paths read it empty.
    (folder / "enrollments.json").write_text('{"enrollments": []}', encoding="utf-8")
    register_oneroster("files", str(folder))
    with OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET, auth="oauth1"
    ) as emulator:
        register_oneroster("api", emulator.base_url)

        from_files = run_sync("files")
        over_http = run_sync("api")

    assert from_files.status == "completed"
    assert over_http.status == "completed"
    assert over_http.counts["students"]["created"] == 601
    assert over_http.counts == from_files.counts
    assert store_content("api") == store_content("files")


# Injected faults: completed with the right store, or failed with no write


@pytest.fixture
def clever_district(store_url, tmp_path):
    """A generated district served by the Clever emulator, synced once."""
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=80, schools=2), format="clever"
    )
    with CleverEmulator([folder], token=TOKEN) as emulator:
        register_clever("d", emulator.base_url, incremental=False)
        first = run_sync("d")
        assert first.status == "completed"
        yield emulator, folder


@pytest.mark.parametrize(
    "fault",
    [
        "server-error:path=users,page=1,status=503,times=2",
        "rate-limit:path=sections,times=3,seconds=1,header=reset",
        "drop:path=schools",
        "truncate:path=users",
        "no-data:path=sections",
        "slow:path=users,seconds=2.5",
    ],
)
def test_fault_overcome_completes_with_the_same_store(clever_district, fault):
    emulator, _ = clever_district
    before = store_content("d")
    emulator.add_fault(fault)

    result = run_sync("d")

    changed = sum(
        counts[action]
        for counts in result.counts.values()
        for action in ("created", "updated", "archived", "restored")
    )
    assert result.status == "completed"
    assert result.pull["retries"] + result.pull["rate_limited"] >= 1
    assert changed == 0
    assert store_content("d")["users"] == before["users"]


def test_records_repeated_across_pages_change_nothing(clever_district):
    emulator, _ = clever_district
    before = store_content("d")
    emulator.add_fault("move:path=users,page=2")

    result = run_sync("d")

    assert result.status == "completed"
    assert (
        result.pull["records"]["users"]
        == result.counts["students"]["unchanged"]
        + result.counts["educators"]["unchanged"]
        + 1
    )
    assert store_content("d")["users"] == before["users"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("server-error:path=users,page=2,times=0", "on all 5 tries"),
        ("no-data:path=users,times=0", 'not JSON with the "data" list'),
        ("cursor-repeat:path=users,page=2", "repeats an earlier page"),
        ("cursor-repeat:path=users,page=1", "has no starting_after cursor"),
        ("unauthorized:times=0", "rejected the credentials"),
        ("bad-request:path=sections", "HTTP 400"),
    ],
)
def test_persistent_fault_fails_without_writes(clever_district, fault, reason):
    emulator, _ = clever_district
    before = store_content("d")
    emulator.add_fault(fault)

    result = run_sync("d")

    assert result.status == "failed"
    assert reason in result.reason
    assert "nothing was written" in result.reason or "credentials" in result.reason
    assert run_row(result.run_id).status == "failed"
    assert store_content("d") == before


def test_failed_pull_reports_its_requests(clever_district):
    emulator, _ = clever_district
    emulator.add_fault("server-error:path=users,page=2,times=0")
    emulator.clear_requests()

    result = run_sync("d")

    assert result.status == "failed"
    assert result.pull["mode"] == "full"
    assert result.pull["retries"] == 4
    assert result.pull["requests"] == len(emulator.requests)


def test_oneroster_pages_that_keep_moving_fail_without_archiving(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "rest", DemoSize(students=80, schools=2), format="oneroster-rest"
    )
    with OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as emulator:
        register_oneroster("d", emulator.base_url)
        assert run_sync("d").status == "completed"
        before = store_content("d")
        emulator.add_fault("move:path=users,page=2,times=0")

        result = run_sync("d")

    assert result.status == "failed"
    assert "X-Total-Count" in result.reason
    assert store_content("d") == before


# Incremental syncs through Clever's Events API


def rewrite_users(folder: Path, change) -> None:
    path = folder / "users.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    lines = ",\n".join(json.dumps(record) for record in change(body["data"]))
    path.write_text(f'{{"data":[\n{lines}\n],"links":[]}}\n', encoding="utf-8")


def without(*user_ids: str):
    return lambda records: [r for r in records if r["data"]["id"] not in user_ids]


def with_field(user_id: str, field: str, value):
    """Return a users.json change that sets one field of one user's data."""

    def change(records):
        for record in records:
            if record["data"]["id"] == user_id:
                record["data"][field] = value
        return records

    return change


def with_grade(user_id: str, grade: str):
    def change(records):
        for record in records:
            if record["data"]["id"] == user_id:
                record["data"]["roles"]["student"]["grade"] = grade
        return records

    return change


@pytest.fixture
def events_district(store_url, tmp_path):
    """A generated Clever district, synced once in full with an Events cursor."""
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=60, schools=2), format="clever"
    )
    with CleverEmulator([folder], token=TOKEN) as emulator:
        register_clever("ev", emulator.base_url)
        first = run_sync("ev")
        assert first.status == "completed"
        assert first.pull["mode"] == "full"
        yield emulator, folder


def quarantined_users(run_id: str) -> list[str]:
    with get_engine().connect() as connection:
        return (
            connection.execute(
                sa.text(
                    "select distinct provider_id from quarantined_records "
                    "where run_id = :r and entity = 'users'"
                ),
                {"r": run_id},
            )
            .scalars()
            .all()
        )


def statuses() -> dict[str, str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            sa.text("select provider_id, status from users where district_id = 'ev'")
        )
        return dict(rows.all())


def test_events_sync_applies_exactly_the_changes(events_district):
    emulator, folder = events_district
    assert cursor_of("ev") == FROM_FIRST_EVENT
    rewrite_users(folder, without("demo-stu-5"))
    rewrite_users(folder, with_grade("demo-stu-6", "11"))
    emulator.reload()

    result = run_sync("ev")

    with get_engine().connect() as connection:
        grade = connection.execute(
            sa.text("select grade from users where provider_id = 'demo-stu-6'")
        ).scalar_one()
    assert result.status == "completed"
    assert result.pull["mode"] == "incremental"
    assert result.counts["students"]["archived"] == 1
    assert result.counts["students"]["updated"] == 1
    assert statuses()["demo-stu-5"] == "archived"
    assert grade == "11"
    assert cursor_of("ev") not in (None, FROM_FIRST_EVENT)


def test_events_sync_twice_changes_nothing_the_second_time(events_district):
    emulator, folder = events_district
    rewrite_users(folder, with_grade("demo-stu-6", "11"))
    emulator.reload()
    run_sync("ev")
    before = store_content("ev")

    result = run_sync("ev")

    assert result.pull["mode"] == "incremental"
    assert store_content("ev") == before


def test_held_events_sync_keeps_cursor(events_district):
    emulator, folder = events_district
    update_district(get_engine(), "ev", changed_by="test", removal_threshold=0)
    cursor = cursor_of("ev")
    rewrite_users(folder, without("demo-stu-7"))
    emulator.reload()

    held = run_sync("ev")
    again = run_sync("ev")

    assert held.status == "held"
    assert again.status == "held"
    assert again.counts["students"]["archived"] == 1
    assert cursor_of("ev") == cursor
    assert statuses()["demo-stu-7"] == "active"


def test_dry_run_keeps_the_cursor(events_district):
    emulator, folder = events_district
    cursor = cursor_of("ev")
    rewrite_users(folder, with_grade("demo-stu-6", "10"))
    emulator.reload()

    result = run_sync("ev", dry_run=True)

    assert result.counts["students"]["updated"] == 1
    assert cursor_of("ev") == cursor


def test_events_quarantine_forces_full_sync(events_district):
    emulator, folder = events_district
    rewrite_users(folder, with_field("demo-stu-8", "email", "not-an-address"))
    emulator.reload()

    quarantined = run_sync("ev")
    following = run_sync("ev")

    assert quarantined.quarantined == 1
    assert following.pull["mode"] == "full"
    assert following.pull["reason"].startswith("the previous sync quarantined")
    assert quarantined_users(following.run_id) == ["demo-stu-8"]
    assert statuses()["demo-stu-8"] == "active"


def test_full_sync_on_demand(events_district):
    result = run_sync("ev", full_pull=True)

    assert result.pull["mode"] == "full"
    assert result.pull["reason"] == "a full pull was requested"
    assert result.counts["students"]["unchanged"] == 60


def test_unchanged_full_pull_stores_a_new_cursor(events_district):
    emulator, folder = events_district
    original = (folder / "users.json").read_text()
    rewrite_users(folder, with_grade("demo-stu-6", "09"))
    emulator.reload()
    (folder / "users.json").write_text(original)
    emulator.reload()
    run_sync("ev")  # two events that cancel out: the roster is unchanged
    emulator.clear_events()  # the stored cursor is rejected: the pull is full
    full = run_sync("ev")

    following = run_sync("ev")

    assert full.pull["mode"] == "full"
    assert full.unchanged_since is not None
    assert following.pull["mode"] == "incremental"


def test_expired_events_cursor_pulls_full(events_district):
    emulator, folder = events_district
    rewrite_users(folder, with_grade("demo-stu-6", "09"))
    emulator.reload()
    run_sync("ev")
    emulator.clear_events()
    rewrite_users(folder, without("demo-stu-9"))
    emulator.reload()
    emulator.clear_events()  # the removal's event is gone: only a full pull reads it

    result = run_sync("ev")

    assert result.pull["mode"] == "full"
    assert "rejected the stored cursor" in result.pull["reason"]
    assert statuses()["demo-stu-9"] == "archived"


# Credentials stay out of every output


def test_credentials_appear_in_no_output(store_url, tmp_path):
    from tests.flows.test_privacy import everything_the_run_published

    folder = write_demo_district(
        tmp_path / "rest", DemoSize(students=20, schools=1), format="oneroster-rest"
    )
    with OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET, auth="oauth2"
    ) as emulator:
        register_oneroster(
            "sec",
            emulator.base_url,
            auth="oauth2",
            token_url=f"{emulator.base_url}/oauth2/v2/token",
        )
        ok = run_sync("sec")
        emulator.add_fault("unauthorized:times=0")
        rejected = run_sync("sec")

    published = "\n".join(
        everything_the_run_published(result.flow_run_id, result.run_id)
        for result in (ok, rejected)
    )
    with get_engine().connect() as connection:
        tables = sa.inspect(connection).get_table_names()
        stored = "\n".join(
            str(row)
            for table in tables
            for row in connection.execute(sa.text(f"select * from {table}"))
        )
    assert ok.status == "completed"
    assert rejected.status == "failed"
    # The client's own lines reach the run's logs, and they hold no secret.
    assert ": full pull in " in published
    for secret in (CLIENT_SECRET, TOKEN):
        assert secret not in published
        assert secret not in stored
        assert secret not in rejected.model_dump_json()


def test_token_from_a_prefect_secret_block(store_url, tmp_path):
    from prefect.blocks.system import Secret

    Secret(value=TOKEN).save("http-test-clever-token", overwrite=True)
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=20, schools=1), format="clever"
    )
    with CleverEmulator([folder], token=TOKEN) as emulator:
        add_district(
            get_engine(),
            "blk",
            name="Block district",
            provider="clever",
            source=emulator.base_url,
            credentials_ref={"token": {"block": "http-test-clever-token"}},
        )
        result = run_sync("blk")

    assert result.status == "completed"
    assert result.counts["students"]["created"] == 20


def test_missing_secret_block_fails_naming_it(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=20, schools=1), format="clever"
    )
    with CleverEmulator([folder], token=TOKEN) as emulator:
        add_district(
            get_engine(),
            "blk",
            name="Block district",
            provider="clever",
            source=emulator.base_url,
            credentials_ref={"token": {"block": "no-such-block-here"}},
        )
        result = run_sync("blk")
        requests = emulator.requests

    assert result.status == "failed"
    assert "'no-such-block-here'" in result.reason
    assert "is not found" in result.reason
    assert requests == []


# OneRoster faults through the flow


@pytest.fixture
def oneroster_district(store_url, tmp_path):
    """A generated district served by the OneRoster emulator, synced once."""
    folder = write_demo_district(
        tmp_path / "rest", DemoSize(students=80, schools=2), format="oneroster-rest"
    )
    with OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as emulator:
        register_oneroster(
            "or",
            emulator.base_url,
            auth="oauth2",
            token_url=f"{emulator.base_url}/oauth2/v2/token",
        )
        assert run_sync("or").status == "completed"
        yield emulator


@pytest.mark.parametrize(
    "fault",
    [
        "server-error:path=users,page=2,status=500",
        "rate-limit:path=classes,seconds=1,header=retry-after",
        "drop:path=enrollments",
        "truncate:path=users,page=3",
        "no-data:path=orgs",
        "slow:path=classes,seconds=2.5",
        "move:path=enrollments,page=2",
        "unauthorized:path=users,page=2",
        "server-error:path=token,status=502",
    ],
)
def test_oneroster_fault_overcome_changes_nothing(oneroster_district, fault):
    before = store_content("or")
    oneroster_district.add_fault(fault)

    result = run_sync("or")

    assert result.status == "completed"
    assert store_content("or")["users"] == before["users"]
    assert store_content("or")["enrollments"] == before["enrollments"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("server-error:path=enrollments,page=2,times=0", "on all 5 tries"),
        ("no-data:path=users,times=0", 'not JSON with the "users" list'),
        ("unauthorized:path=classes,times=0", "rejected the credentials"),
        ("bad-request:path=users", "HTTP 400"),
    ],
)
def test_oneroster_fault_that_persists_writes_nothing(
    oneroster_district, fault, reason
):
    before = store_content("or")
    oneroster_district.add_fault(fault)

    result = run_sync("or")

    assert result.status == "failed"
    assert reason in result.reason
    assert store_content("or") == before


def enrollments_of(user_id: str) -> list[str]:
    with get_engine().connect() as connection:
        return (
            connection.execute(
                sa.text(
                    "select s.provider_id from enrollments e "
                    "join users u on u.id = e.user_id "
                    "join sections s on s.id = e.section_id "
                    "where u.provider_id = :u and e.status = 'active'"
                ),
                {"u": user_id},
            )
            .scalars()
            .all()
        )


def test_user_fixed_after_quarantine_gets_its_enrollments(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=40, schools=1), format="clever"
    )
    rewrite_users(folder, with_field("demo-stu-2", "email", "not-an-address"))
    with CleverEmulator([folder], token=TOKEN) as emulator:
        register_clever("fix", emulator.base_url)
        first = run_sync("fix")
        rewrite_users(folder, with_field("demo-stu-2", "email", "fixed@demo.invalid"))
        emulator.reload()
        second = run_sync("fix")
        third = run_sync("fix")

    sections = json.loads((folder / "sections.json").read_text())["data"]
    expected = sorted(
        s["data"]["id"] for s in sections if "demo-stu-2" in s["data"]["students"]
    )
    assert first.quarantined == 1 + len(expected)  # the user and their enrollments
    assert second.pull["mode"] == "full"
    assert second.quarantined == 0
    assert sorted(enrollments_of("demo-stu-2")) == expected
    assert third.pull["mode"] == "incremental"
    assert cursor_of("fix") not in (None, FROM_FIRST_EVENT)


def rewrite_collection(folder: Path, collection: str, change) -> None:
    path = folder / f"{collection}.json"
    records = change(json.loads(path.read_text(encoding="utf-8"))[collection])
    lines = ",\n".join(json.dumps(record) for record in records)
    path.write_text(f'{{"{collection}":[\n{lines}\n]}}\n', encoding="utf-8")


def test_oneroster_delta_archives_contacts_and_moved_enrollments(store_url, tmp_path):
    # Four sections a school, so a student has a class of their school to move to.
    folder = write_demo_district(
        tmp_path / "rest", DemoSize(students=120, schools=2), format="oneroster-rest"
    )
    with OneRosterEmulator(
        [folder], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as emulator:
        register_oneroster("dl", emulator.base_url, incremental=True)
        assert run_sync("dl").pull["mode"] == "full"
        moved = json.loads((folder / "enrollments.json").read_text())["enrollments"]
        moving = next(e for e in moved if e["role"] == "student")
        student = moving["user"]["sourcedId"]
        old_class = moving["class"]["sourcedId"]
        new_class = next(
            e["class"]["sourcedId"]
            for e in moved
            if e["class"]["sourcedId"] != old_class
            and e["school"]["sourcedId"] == moving["school"]["sourcedId"]
            and not any(
                o["user"]["sourcedId"] == student
                and o["class"]["sourcedId"] == e["class"]["sourcedId"]
                for o in moved
            )
        )

        def move(records):
            for record in records:
                if record["sourcedId"] == moving["sourcedId"]:
                    record["class"]["sourcedId"] = new_class
            return records

        def to_parent(records):
            for record in records:
                if record["sourcedId"] == "demo-stu-9":
                    record["role"] = "parent"
            return records

        rewrite_collection(folder, "enrollments", move)
        rewrite_collection(folder, "users", to_parent)
        emulator.reload()
        result = run_sync("dl")

    assert result.pull["mode"] == "incremental"
    assert result.status == "completed"
    with get_engine().connect() as connection:
        parent = connection.execute(
            sa.text("select status from users where provider_id = 'demo-stu-9'")
        ).scalar_one()
    assert parent == "archived"
    assert new_class in enrollments_of(student)
    assert old_class not in enrollments_of(student)


# Records the provider lists but no longer shares


def test_unshared_students_still_listed_in_sections_stay_archived(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=60, schools=1), format="clever"
    )
    register_clever("un", str(folder), removal_threshold=10)
    run_sync("un")
    rewrite_users(folder, without("demo-stu-5", "demo-stu-6"))

    removal = run_sync("un")
    after = run_sync("un")

    with get_engine().connect() as connection:
        active = connection.execute(
            sa.text(
                "select count(*) from enrollments e join users u on u.id = e.user_id "
                "where u.status = 'archived' and e.status = 'active'"
            )
        ).scalar_one()
    assert removal.counts["students"]["archived"] == 2
    assert after.counts["enrollments"]["restored"] == 0
    assert active == 0
    assert after.quarantined == removal.quarantined


def test_unknown_role_user_is_quarantined(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=60, schools=1), format="clever"
    )
    register_clever("role", str(folder))
    run_sync("role")
    misspelled = {"studnet": {"school": "demo-sch-1"}}

    rewrite_users(folder, with_field("demo-stu-7", "roles", misspelled))
    result = run_sync("role")

    assert result.counts["students"]["archived"] == 0
    assert "demo-stu-7" in quarantined_users(result.run_id)
    assert statuses_of("role")["demo-stu-7"] == "active"


def test_student_listed_again_as_a_teacher_is_quarantined(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "clever", DemoSize(students=60, schools=1), format="clever"
    )
    users = json.loads((folder / "users.json").read_text(encoding="utf-8"))["data"]
    student = next(r for r in users if r["data"]["id"] == "demo-stu-3")
    as_teacher = json.loads(json.dumps(student))
    as_teacher["data"]["roles"] = {"teacher": {"school": "demo-sch-1"}}
    add_copy = False

    with CleverEmulator([folder], token=TOKEN) as emulator:

        def proxy(path, query, headers):
            reply = httpx.get(
                emulator.base_url + path,
                params=query,
                headers={"Authorization": headers["Authorization"]},
            )
            body = reply.content
            first_teacher_page = (
                path == "/v3.0/users"
                and query.get("role") == "teacher"
                and "starting_after" not in query
            )
            if add_copy and first_teacher_page:
                page = reply.json()
                page["data"].append(as_teacher)
                body = json.dumps(page).encode()
            return Reply(reply.status_code, body)

        with ScriptedServer(proxy) as server:
            register_clever("dup", server.base_url, incremental=False)
            assert run_sync("dup").status == "completed"
            before = store_content("dup")
            add_copy = True

            result = run_sync("dup")

    assert result.status == "completed"
    assert "demo-stu-3" in quarantined_users(result.run_id)
    assert result.counts["educators"]["updated"] == 0
    assert store_content("dup") == before


def statuses_of(district_id: str) -> dict[str, str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            sa.text("select provider_id, status from users where district_id = :d"),
            {"d": district_id},
        )
        return dict(rows.all())


def test_event_of_another_district_fails_the_sync(events_district):
    emulator, folder = events_district
    rewrite_users(folder, with_field("demo-stu-4", "district", "another-district"))
    emulator.reload()
    before = store_content("ev")

    result = run_sync("ev")

    assert result.status == "failed"
    assert "2 districts" in result.reason
    assert store_content("ev") == before
