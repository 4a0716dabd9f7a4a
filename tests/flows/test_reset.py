"""The New School Year reset and its reading-history export, on SQLite and PostgreSQL.

Three districts with a year of generated portal activity: one integrated (synced
from OneRoster CSV files), one without an integration, and one whose export
folder cannot be written. Each step compares the store, table by table, with the
state computed from the store before the reset.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker

from flows.daily_sync import daily_sync
from flows.new_school_year import new_school_year_reset
from rostersync.export import (
    CSV_NAME,
    MANIFEST_NAME,
    PARQUET_NAME,
    export_folder,
)
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.models import Base, School, Section, User
from rostersync.store.reset import school_year_on
from tests.portal_activity import FORMULA_BOOK_IDS, RECENT_DAYS, add_year_of_activity
from tests.summer_roster import regular_district, write_oneroster

pytestmark = pytest.mark.usefixtures("prefect_harness")

INTEGRATED = "int"
PORTAL = "portal"
BROKEN = "broken"
ENDING = school_year_on(datetime.now(UTC).date()) - 1
NEW_YEAR = f"{ENDING + 1}-{(ENDING + 2) % 100:02d}"
CHANGED = "<changed by the reset>"
CLEARED_TABLES = {
    "bookshelf_items": "educator_id",
    "book_requests": "student_id",
    "my_students": "educator_id",
}
# Tables that record runs and steps; they are compared on their own.
RUN_TABLES = {"sync_runs", "reset_ledger"}


# Reading the store


def snapshot() -> dict[str, list[dict[str, str]]]:
    """Every row of every table as text, ordered by the first column."""
    tables = {}
    with get_engine().connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = connection.execute(sa.select(table).order_by(*table.primary_key))
            tables[table.name] = [
                {key: str(value) for key, value in row._mapping.items()} for row in rows
            ]
    return tables


def user_districts(state: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    return {row["id"]: row["district_id"] for row in state["users"]}


def expected_after(
    before: dict[str, list[dict[str, str]]], reset: dict[str, bool]
) -> dict[str, list[dict[str, str]]]:
    """Return the store after resetting the districts in ``reset``.

    ``reset`` maps each reset district to whether it has an integration. Values
    the reset sets to the time of the reset are CHANGED.
    """
    expected = json.loads(json.dumps(before))
    owner = user_districts(before)
    for row in expected["book_assignments"]:
        if row["district_id"] not in reset:
            continue
        year = int(row["school_year"])
        left_earlier = row["shelf"] == "current" and year < ENDING
        if row["shelf"] == "last_school_year" or left_earlier:
            row["shelf"] = "earlier_years"
        elif row["shelf"] == "current" and year == ENDING:
            row["shelf"] = "last_school_year"
    for table, person in CLEARED_TABLES.items():
        for row in expected[table]:
            if (
                owner[row[person]] in reset
                and int(row["school_year"]) <= ENDING
                and row["cleared_at"] == "None"
            ):
                row["cleared_at"] = CHANGED
    for row in expected["users"]:
        integrated = reset.get(row["district_id"], True)
        if not integrated and row["kind"] == "student" and row["status"] == "active":
            row["profile_status"] = "needs_update"
            row["updated_at"] = CHANGED
    for row in expected["districts"]:
        if row["id"] in reset:
            row["school_year"] = str(ENDING + 1)
    return expected


def changed_marks(
    before: dict[str, list[dict[str, str]]], after: dict[str, list[dict[str, str]]]
) -> dict[str, list[dict[str, str]]]:
    """Return ``after`` with times the reset set written as CHANGED."""
    marked = json.loads(json.dumps(after))
    columns_by_table = {
        **dict.fromkeys(CLEARED_TABLES, ("cleared_at",)),
        "users": ("updated_at",),
    }
    for table, columns in columns_by_table.items():
        old = {row["id"]: row for row in before[table]}
        for row in marked[table]:
            for column in columns:
                if row["id"] in old and row[column] != old[row["id"]][column]:
                    row[column] = CHANGED
    return marked


def assert_tables(
    actual: dict[str, list[dict[str, str]]], expected: dict[str, list[dict[str, str]]]
) -> None:
    for table in expected:
        if table in RUN_TABLES:
            continue
        assert actual[table] == expected[table], table


def ledger() -> set[tuple[str, str, str]]:
    return {
        (row["district_id"], row["school_year"], row["step"])
        for row in snapshot()["reset_ledger"]
    }


# Building the districts


def register_integrated(tmp_path: Path) -> Path:
    """Register the integrated district from OneRoster CSV files and sync it."""
    files = write_oneroster(tmp_path / "int-roster", regular_district(20))
    add_district(
        get_engine(),
        INTEGRATED,
        name="Integrated district",
        provider="oneroster-csv",
        source=str(files),
        school_year=ENDING,
    )
    result = daily_sync(
        district_id=INTEGRATED, wait_for_approval=False, return_state=True
    ).result(raise_on_failure=False)
    assert result.status == "completed", result.reason
    return files


def register_portal_district(district_id: str, students: int = 24) -> None:
    """Register a district without an integration, with users the portal manages."""
    add_district(
        get_engine(),
        district_id,
        name=f"District {district_id}",
        provider="none",
        source="",
        school_year=ENDING,
    )
    now = datetime.now(UTC)
    with get_engine().begin() as connection:
        school = connection.execute(
            sa.insert(School)
            .values(
                district_id=district_id,
                provider_id=f"{district_id}-school",
                name="School",
                managed_by="operator",
                created_at=now,
                updated_at=now,
            )
            .returning(School.id)
        ).scalar_one()
        connection.execute(
            sa.insert(Section),
            [
                {
                    "district_id": district_id,
                    "provider_id": f"{district_id}-sec-{n}",
                    "school_id": school,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(2)
            ],
        )
        people = [("educator", "teacher", "active")] * 2 + [
            ("student", "student", "archived" if n == 0 else "active")
            for n in range(students)
        ]
        connection.execute(
            sa.insert(User),
            [
                {
                    "district_id": district_id,
                    "provider_id": f"{district_id}-user-{n}",
                    "kind": kind,
                    "role": role,
                    "grade": "04" if kind == "student" else None,
                    "given_name": f"Qwzarbindle{n}",
                    "family_name": f"Vexmorrow{n}",
                    "email": f"{district_id}-{n}@qwzarbindle.invalid",
                    "eligibility": "eligible" if kind == "student" else None,
                    "sis_id": "@SIS" if n == 3 else f"sis-{n}",
                    "school_id": school,
                    "school_ids": [school],
                    "status": status,
                    "archived_at": now if status == "archived" else None,
                    "created_at": now,
                    "updated_at": now,
                }
                for n, (kind, role, status) in enumerate(people)
            ],
        )


def add_activity(district_id: str, seed: int) -> None:
    with get_engine().begin() as connection:
        add_year_of_activity(connection, district_id, ENDING, datetime.now(UTC), seed)


def reset(**parameters: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Run the reset flow; return its state and its reports by district."""
    state = new_school_year_reset(return_state=True, **parameters)
    data = state.result(raise_on_failure=False)
    return state, {report["district_id"]: report for report in data["districts"]}


# The export


def reading_rows(district_id: str) -> dict[tuple[str, str], dict[str, str]]:
    """The district's reading rows of the ending year, by student and book id."""
    with get_engine().connect() as connection:
        rows = connection.execute(
            sa.text(
                "select r.student_id, r.book_id, r.seconds_read "
                "from reading_activity r join users u on u.id = r.student_id "
                "where u.district_id = :d and r.school_year = :y"
            ),
            {"d": district_id, "y": ENDING},
        )
        return {
            (str(row.student_id), row.book_id): {"seconds_read": str(row.seconds_read)}
            for row in rows
        }


def assert_export(folder: Path, district_id: str) -> None:
    """Check the export's files against its manifest and the store's reading."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    store = reading_rows(district_id)
    with (folder / CSV_NAME).open(newline="", encoding="utf-8") as handle:
        csv_rows = list(csv.DictReader(handle))
    parquet = pq.read_table(folder / PARQUET_NAME).to_pylist()
    files = {entry["name"]: entry for entry in manifest["files"]}

    for name in (CSV_NAME, PARQUET_NAME):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert files[name]["sha256"] == digest, name
        assert files[name]["bytes"] == (folder / name).stat().st_size, name
        assert files[name]["rows"] == len(store), name
    assert manifest["store"]["rows"] == len(store)
    assert manifest["store"]["students"] == len({student for student, _ in store})
    assert manifest["school_year"] == ENDING
    parquet_keys = {(str(r["student_id"]), r["book_id"]): r for r in parquet}
    assert set(parquet_keys) == set(store)
    for key, row in store.items():
        assert str(parquet_keys[key]["seconds_read"]) == row["seconds_read"], key
    # In the CSV file a formula-like id starts with "'"; Parquet keeps it as it is.
    csv_keys = {(r["student_id"], r["book_id"].removeprefix("'")) for r in csv_rows}
    assert csv_keys == set(store)
    for row in csv_rows:
        for column, value in row.items():
            assert value[:1] not in ("=", "+", "-", "@"), (column, value)
    guarded = {r["book_id"] for r in csv_rows if r["book_id"].startswith("'")}
    used = {book for _, book in store if book in FORMULA_BOOK_IDS}
    assert guarded == {f"'{book}" for book in used}


# The test


def test_reset_of_three_districts(store_url, tmp_path: Path, monkeypatch):
    from rostersync.settings import get_settings
    from tests.alert_receiver import alert_receiver

    exports = tmp_path / "exports"
    files = register_integrated(tmp_path)
    register_portal_district(PORTAL)
    register_portal_district(BROKEN, students=6)
    for seed, district in enumerate((INTEGRATED, PORTAL, BROKEN)):
        add_activity(district, seed)
    # A file where the broken district's folder should be stops its export.
    blocker = export_folder(exports, BROKEN, ENDING).parent
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    before = snapshot()

    # A dry run reports every district and changes nothing.
    _, preview = reset(dry_run=True, export_dir=str(exports))
    after_preview = snapshot()

    assert {d: r["status"] for d, r in preview.items()} == dict.fromkeys(
        (BROKEN, INTEGRATED, PORTAL), "completed"
    )
    assert_tables(after_preview, before)
    assert sorted(p.name for p in exports.iterdir()) == [BROKEN]
    new_runs = [r for r in after_preview["sync_runs"] if r not in before["sync_runs"]]
    assert [r["dry_run"] for r in new_runs] == ["True"] * 3

    with alert_receiver() as receiver:
        monkeypatch.setenv(
            "ROSTERSYNC_ALERT_URLS", f"json://127.0.0.1:{receiver.port}/alerts"
        )
        get_settings.cache_clear()
        state, reports = reset(export_dir=str(exports))
        alerts = receiver.wait_for(1)
    get_settings.cache_clear()
    after = snapshot()

    # The broken district failed alone, alerted once, and nothing of it changed.
    assert state.is_failed()
    assert reports[BROKEN]["status"] == "failed"
    assert f"{blocker} is a symbolic link or not a folder" in reports[BROKEN]["reason"]
    assert [a.body["type"] for a in alerts] == ["failure"]
    assert BROKEN in alerts[0].body["title"] + alerts[0].body["message"]
    assert reports[INTEGRATED]["status"] == "completed"
    assert reports[PORTAL]["status"] == "completed"
    expected = expected_after(before, {INTEGRATED: True, PORTAL: False})
    assert_tables(changed_marks(before, after), expected)

    # What the dry run counted is what the reset changed.
    for district in (INTEGRATED, PORTAL):
        assert reports[district]["counts"] == preview[district]["counts"], district
    assert reports[PORTAL]["counts"]["students_needs_update"] == 24 - 1
    assert "students_needs_update" not in reports[INTEGRATED]["counts"]
    assert reports[INTEGRATED]["new_year"] == NEW_YEAR

    # Students keep eligibility; integrated ones keep their profile status too.
    students = [r for r in after["users"] if r["kind"] == "student"]
    assert {r["eligibility"] for r in students} == {"eligible"}
    integrated_ids = {
        r["id"] for r in before["users"] if r["district_id"] == INTEGRATED
    }
    assert {r["profile_status"] for r in students if r["id"] in integrated_ids} == {
        "None"
    }

    # Books assigned in the last 14 days are reported, by educator id.
    for district in (INTEGRATED, PORTAL):
        recent = reports[district]["recent_assignments"]
        assert recent["books"] == sum(days <= 14 for days in RECENT_DAYS), district
        assert len(recent["educators"]) == 1, district

    # The ledger and the exports.
    assert ledger() == {
        (district, str(ENDING), step)
        for district in (INTEGRATED, PORTAL)
        for step in ("exported", "reset")
    }
    for district in (INTEGRATED, PORTAL):
        assert_export(export_folder(exports, district, ENDING), district)

    # The artifact lists every district with its result, and no output names a
    # student.
    table, published = _published(state.state_details.flow_run_id)
    assert {row["district_id"]: row["status"] for row in table} == {
        BROKEN: "failed",
        INTEGRATED: "completed",
        PORTAL: "completed",
    }
    exported = "".join(
        (export_folder(exports, district, ENDING) / CSV_NAME).read_text()
        for district in (INTEGRATED, PORTAL)
    )
    personal = _personal_values(after)
    assert len(personal) > 50
    for value in personal:
        assert value not in published, value
        assert value not in exported, value
        assert value not in alerts[0].body["message"], value

    # A second run of each reset district changes nothing, export files included.
    export_bytes = _export_bytes(exports, (INTEGRATED, PORTAL))
    for district in (INTEGRATED, PORTAL):
        _, again = reset(district_id=district, export_dir=str(exports))
        assert again[district]["status"] == "already_reset"
        assert again[district]["counts"] == {}
        assert again[district]["export"] == {}
        assert again[district]["recent_assignments"]["books"] == 0
    assert snapshot() == after
    assert _export_bytes(exports, (INTEGRATED, PORTAL)) == export_bytes

    # Once its folder can be written, the scheduled run resets the broken district
    # alone.
    blocker.unlink()
    _, retried = reset(export_dir=str(exports))
    assert {d: r["status"] for d, r in retried.items()} == {BROKEN: "completed"}
    assert_tables(
        changed_marks(before, snapshot()),
        expected_after(before, {INTEGRATED: True, PORTAL: False, BROKEN: False}),
    )

    # The daily sync after the reset still moves students and changes grades.
    district = regular_district(20)
    district.people["stu-1"].grade = "09"
    district.people["stu-2"].schools = ("sch-b",)
    district.members["sec-a"].remove("stu-2")
    district.members["sec-b"].append("stu-2")
    write_oneroster(files, district)
    result = daily_sync(
        district_id=INTEGRATED, wait_for_approval=False, return_state=True
    ).result(raise_on_failure=False)

    assert result.status == "completed", result.reason
    synced = _users_by_provider_id(INTEGRATED)
    assert synced["stu-1"]["grade"] == "09"
    assert synced["stu-2"]["school"] == "sch-b"
    assert synced["stu-2"]["eligibility"] == "eligible"


def _users_by_provider_id(district_id: str) -> dict[str, dict[str, Any]]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            sa.select(
                User.provider_id, User.grade, User.eligibility, School.provider_id
            )
            .join(School, School.id == User.school_id)
            .where(User.district_id == district_id)
        )
        return {
            provider_id: {"grade": grade, "eligibility": eligibility, "school": school}
            for provider_id, grade, eligibility, school in rows
        }


def _export_bytes(root: Path, districts: tuple[str, ...]) -> dict[str, bytes]:
    return {
        f"{district}/{name}": (
            export_folder(root, district, ENDING) / name
        ).read_bytes()
        for district in districts
        for name in (CSV_NAME, PARQUET_NAME, MANIFEST_NAME)
    }


def _published(flow_run_id: Any) -> tuple[list[dict[str, Any]], str]:
    """Return the run's table artifact, and its artifacts and logs as one text."""
    APILogWorker.drain_all(timeout=5)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    tables = [a for a in artifacts if a.type == "table"]
    assert len(tables) == 1
    data = tables[0].data
    table = json.loads(data) if isinstance(data, str) else data
    text = "\n".join(
        [json.dumps(a.data) for a in artifacts] + [log.message for log in logs]
    )
    return table, text


def _personal_values(state: dict[str, list[dict[str, str]]]) -> set[str]:
    """Every name and email of a user in the store."""
    return {
        row[column]
        for row in state["users"]
        for column in ("given_name", "family_name", "email")
        if row[column] not in ("None", "")
    }


def test_reset_before_august_first_changes_nothing(store_url, tmp_path: Path):
    register_portal_district(PORTAL, students=3)
    with get_engine().begin() as connection:
        connection.execute(
            sa.update(Base.metadata.tables["districts"]).values(school_year=ENDING + 1)
        )
    before = snapshot()

    state, reports = reset(district_id=PORTAL, export_dir=str(tmp_path / "exports"))

    assert state.is_completed()
    assert reports[PORTAL]["status"] == "not_due"
    assert f"{date(ENDING + 2, 7, 31)}" in reports[PORTAL]["reason"]
    assert snapshot() == before
    assert not (tmp_path / "exports").exists()
