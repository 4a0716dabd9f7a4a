"""The undo-run flow on a generated Clever district, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.undo_run import UndoResult, undo_run
from rostersync.cli import run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.errors import StoreError
from rostersync.results import SyncResult
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.models import ChangeLogEntry, SyncRun, User
from rostersync.store.undo import start_undo_run, undo_changes
from tests import datasets

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROSTER_TABLES = ("schools", "school_mappings", "users", "sections", "enrollments")
# 40 students in 2 schools: 4 sections per school and 1 teacher per school. The
# default removal threshold is then 10 users, so archiving 3 students is applied.
SIZE = DemoSize(students=40, schools=2, students_per_section=10)
ARCHIVED_STUDENTS = {"demo-stu-1", "demo-stu-2", "demo-stu-3"}
NEW_STUDENT = "demo-stu-new"
NEW_SECTION = "demo-sch-1-cls-new"

Rows = dict[str, dict[Any, dict[str, str]]]


# Store and files


def register(folder: Path, **options: Any) -> None:
    add_district(
        get_engine(),
        "d",
        name="Undo test district",
        provider="clever",
        source=str(folder),
        **options,
    )


def roster_rows() -> Rows:
    """Every row of the roster tables by id, as text, without updated_at."""
    rows: Rows = {}
    with get_engine().connect() as connection:
        for table in ROSTER_TABLES:
            result = connection.execute(sa.text(f"select * from {table}")).mappings()
            rows[table] = {
                row["id"]: {
                    column: str(value)
                    for column, value in row.items()
                    if column != "updated_at"
                }
                for row in result
            }
    return rows


def query(sql: str, **parameters: Any) -> list[sa.Row]:
    with get_engine().connect() as connection:
        return connection.execute(sa.text(sql), parameters).all()


def user_id(provider_id: str) -> int:
    rows = query("select id from users where provider_id = :p", p=provider_id)
    return rows[0].id


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")


def edit_users(folder: Path, edits: dict[str, Any]) -> None:
    """Call ``edits[id](user)`` on each listed user of users.json and save it."""
    document = read_json(folder / "users.json")
    for record in document["data"]:
        edit = edits.get(record["data"]["id"])
        if edit is not None:
            edit(record["data"])
    write_json(folder / "users.json", document)


def set_grade(grade: str):
    def edit(user: dict) -> None:
        user["roles"]["student"]["grade"] = grade

    return edit


def set_schools(primary: str, schools: list[str]):
    def edit(user: dict) -> None:
        user["roles"]["student"]["school"] = primary
        user["roles"]["student"]["schools"] = schools

    return edit


def add_student_and_section(folder: Path) -> None:
    """Share a new student and a new section with the new student and demo-stu-10."""
    users = read_json(folder / "users.json")
    model = next(r for r in users["data"] if r["data"]["id"] == "demo-stu-10")
    student = json.loads(json.dumps(model["data"]))
    student["id"] = NEW_STUDENT
    student["email"] = "new.student@demo.invalid"
    student["roles"]["student"].update(sis_id="9001", student_number="9001")
    student["roles"]["student"]["credentials"] = {"district_username": "new.student"}
    users["data"].append({"data": student, "uri": f"/v3.0/users/{NEW_STUDENT}"})
    write_json(folder / "users.json", users)

    sections = read_json(folder / "sections.json")
    first = next(r for r in sections["data"] if r["data"]["id"] == "demo-sch-1-cls-1")
    first["data"]["students"].append(NEW_STUDENT)
    section = json.loads(json.dumps(first["data"]))
    section.update(
        id=NEW_SECTION,
        name="Reading new",
        sis_id="RN",
        section_number="99",
        students=[NEW_STUDENT, "demo-stu-10"],
    )
    sections["data"].append({"data": section, "uri": f"/v3.0/sections/{NEW_SECTION}"})
    write_json(folder / "sections.json", sections)


def rename(folder: Path, entity: str, record_id: str, name: str) -> None:
    document = read_json(folder / f"{entity}.json")
    for record in document["data"]:
        if record["data"]["id"] == record_id:
            record["data"]["name"] = name
    write_json(folder / f"{entity}.json", document)


def change_roster(folder: Path) -> None:
    """Archive 3 students, change 6 records, and add a student and a section."""
    datasets.remove_clever_users(folder, ARCHIVED_STUDENTS)
    edit_users(
        folder,
        {
            "demo-stu-4": set_grade("12"),
            "demo-stu-6": set_grade("Kindergarten"),
            # Odd students attend demo-sch-2.
            "demo-stu-5": set_schools("demo-sch-1", ["demo-sch-1"]),
            "demo-stu-7": set_schools("demo-sch-2", ["demo-sch-1", "demo-sch-2"]),
        },
    )
    rename(folder, "schools", "demo-sch-1", "Demo School One")
    rename(folder, "sections", "demo-sch-2-cls-1", "Reading 1 renamed")
    add_student_and_section(folder)


def undo(run_id: str, by: str = "ops@example.invalid") -> UndoResult:
    state = undo_run(
        run_id=run_id, by=by, reason="Wrong roster file", return_state=True
    )
    outcome = state.result(raise_on_failure=False)
    assert isinstance(outcome, UndoResult)
    return outcome


def sync() -> SyncResult:
    result = run_sync("d")
    assert result.status == "completed", result.reason
    return result


@dataclass
class ChangedRun:
    """A district synced once, then synced again from changed files."""

    folder: Path
    first: Rows
    run: SyncResult
    after_run: Rows


@pytest.fixture
def changed_run(store_url: str, tmp_path: Path) -> ChangedRun:
    folder = write_demo_district(tmp_path / "clever", SIZE, format="clever")
    register(folder)
    sync()
    first = roster_rows()
    change_roster(folder)
    run = sync()
    return ChangedRun(folder, first, run, roster_rows())


# Reverting


def test_undo_gives_back_first_state(changed_run):
    result = undo(changed_run.run.run_id)

    after = roster_rows()
    assert result.status == "completed", result.reason
    for table in ROSTER_TABLES:
        old_rows = {
            key: row
            for key, row in after[table].items()
            if key in changed_run.first[table]
        }
        assert old_rows == changed_run.first[table], table
    created = {
        table: [
            row
            for key, row in after[table].items()
            if key not in changed_run.first[table]
        ]
        for table in ("users", "sections", "enrollments")
    }
    assert len(created["users"]) == 1
    assert len(created["sections"]) == 1
    # The new student in demo-sch-1-cls-1, and the new section's teacher, new
    # student and demo-stu-10.
    assert len(created["enrollments"]) == 4
    for table, rows in created.items():
        assert {row["status"] for row in rows} == {"archived"}, table
        assert all(row["archived_at"] != "None" for row in rows), table

    assert result.counts["schools"] == {
        "reverted": 1, "restored": 0, "archived": 0, "skipped": 0
    }  # fmt: skip
    # 4 updated students, 3 archived students, 1 new student.
    assert result.counts["users"] == {
        "reverted": 4, "restored": 3, "archived": 1, "skipped": 0
    }  # fmt: skip
    assert result.counts["sections"] == {
        "reverted": 1, "restored": 0, "archived": 1, "skipped": 0
    }  # fmt: skip
    archived = changed_run.run.counts["enrollments"]["archived"]
    assert result.counts["enrollments"] == {
        "reverted": 0, "restored": archived, "archived": 4, "skipped": 0
    }  # fmt: skip


def test_undo_is_recorded_and_reported(changed_run):
    version_before = query("select store_version from districts")[0].store_version

    result = undo(changed_run.run.run_id, by="ops@example.invalid")

    row = query("select * from sync_runs where id = :r", r=result.run_id)[0]
    logged = query("select count(*) from change_log where run_id = :r", r=result.run_id)
    version = query("select store_version from districts")[0].store_version
    changed = sum(
        figures[key]
        for figures in result.counts.values()
        for key in ("reverted", "restored", "archived")
    )
    assert row.flow_name == "undo-run"
    assert row.status == "completed"
    assert row.undoes_run_id == changed_run.run.run_id
    assert row.decided_by == "ops@example.invalid"
    assert row.decision_reason == "Wrong roster file"
    assert row.decided_at is not None
    assert logged[0][0] == changed
    assert version == version_before + 1
    assert result.store_version == version_before + 1

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[result.flow_run_id])
            )
        )
    report = {artifact.key: artifact for artifact in artifacts}["undo-d"]
    assert report.type == "markdown"
    assert "| users | 4 | 3 | 1 | 0 |" in report.data
    assert "Wrong roster file" not in report.data


def test_undo_of_undo_gives_back_run_state(changed_run):
    first_undo = undo(changed_run.run.run_id)

    result = undo(first_undo.run_id)

    after = roster_rows()
    assert result.status == "completed", result.reason
    for table in ROSTER_TABLES:
        assert after[table] == changed_run.after_run[table], table


def test_row_changed_by_later_run_is_skipped(changed_run):
    edit_users(changed_run.folder, {"demo-stu-4": set_grade("11")})
    sync()
    student = user_id("demo-stu-4")

    result = undo(changed_run.run.run_id)

    grade = query("select grade from users where id = :i", i=student)[0].grade
    assert result.status == "completed", result.reason
    assert result.counts["users"]["skipped"] == 1
    assert result.counts["users"]["reverted"] == 3
    assert grade == "11"


def test_undo_of_restoring_run_archives_again(store_url, tmp_path):
    folder = write_demo_district(tmp_path / "clever", SIZE, format="clever")
    register(folder)
    sync()
    datasets.remove_clever_users(folder, {"demo-stu-8"})
    sync()
    after_archive = roster_rows()
    write_demo_district(folder, SIZE, format="clever")
    edit_users(folder, {"demo-stu-8": set_grade("12")})
    restoring = sync()

    result = undo(restoring.run_id)

    after = roster_rows()
    assert restoring.counts["students"]["restored"] == 1
    assert result.counts["users"]["archived"] == 1
    for table in ROSTER_TABLES:
        assert after[table] == after_archive[table], table


def test_undone_restore_archived_at_fallbacks(store_url, tmp_path):
    """A restore entry's logged archived_at wins, and ``now`` is the last resort."""
    register(write_demo_district(tmp_path / "clever", SIZE, format="clever"))
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    logged_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    engine = get_engine()
    with engine.begin() as connection:
        users = [
            {"provider_id": "p-logged", "grade": "12"},
            {"provider_id": "p-none", "grade": "12"},
        ]
        ids = [
            connection.execute(
                sa.insert(User)
                .values(
                    district_id="d", kind="student", role="student", school_ids=[],
                    status="active", created_at=now, updated_at=now, **user,
                )
                .returning(User.id)
            ).scalar_one()
            for user in users
        ]  # fmt: skip
        connection.execute(
            sa.insert(SyncRun).values(
                id="run-r", district_id="d", flow_name="daily-sync",
                status="completed", started_at=now,
            )
        )  # fmt: skip
        befores = [
            {"status": "archived", "grade": "05", "archived_at": logged_at.isoformat()},
            {"status": "archived", "grade": "05"},
        ]
        for entity_id, before in zip(ids, befores, strict=True):
            connection.execute(
                sa.insert(ChangeLogEntry).values(
                    run_id="run-r", district_id="d", entity="users",
                    entity_id=entity_id, action="restore", before=before,
                    after={"status": "active", "grade": "12"}, changed_at=now,
                )
            )  # fmt: skip

    with engine.begin() as connection:
        start_undo_run(
            connection, undo_run_id="run-u", run_id="run-r", district_id="d",
            by="ops", reason="test", flow_run_id=None, now=now,
        )  # fmt: skip
        counts = undo_changes(connection, "run-r", "run-u", now)

    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(User.id, User.status, User.grade, User.archived_at)
        ).all()
    rows = {row.id: row for row in stored}
    logged, fallback = rows[ids[0]], rows[ids[1]]
    assert counts["users"]["archived"] == 2
    assert logged.status == "archived"
    assert logged.grade == "05"
    assert as_utc(logged.archived_at) == logged_at
    assert fallback.status == "archived"
    assert as_utc(fallback.archived_at) == now


def as_utc(value: datetime) -> datetime:
    """Return a stored time in UTC; SQLite returns it without its zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# Rejections


@pytest.fixture
def first_run(store_url: str, tmp_path: Path) -> tuple[Path, SyncResult]:
    """A district synced once: its first run created every record."""
    folder = write_demo_district(tmp_path / "clever", SIZE, format="clever")
    register(folder)
    return folder, sync()


def test_second_undo_of_run_is_rejected(first_run):
    _, run = first_run
    first_undo = undo(run.run_id or "")
    before = roster_rows()

    result = undo(run.run_id or "")

    assert first_undo.status == "completed"
    assert result.status == "failed"
    assert result.reason == (
        f"Run {run.run_id} was already undone by run {first_undo.run_id}, so "
        f"nothing was changed. To bring back its changes, undo run "
        f"{first_undo.run_id} instead."
    )
    assert roster_rows() == before


def test_failed_undo_is_recorded_and_retryable(first_run, monkeypatch):
    _, run = first_run
    before = roster_rows()

    def fail(*args: Any) -> None:
        raise StoreError("The store rejected a statement: test", transient=False)

    monkeypatch.setattr("flows.undo_run.undo_changes", fail)
    failed = undo(run.run_id or "")
    monkeypatch.undo()
    row = query("select * from sync_runs where id = :r", r=failed.run_id)[0]
    after_failure = roster_rows()
    retried = undo(run.run_id or "")

    assert failed.status == "failed"
    assert row.status == "failed"
    assert row.undoes_run_id == run.run_id
    assert row.reason == "The store rejected a statement: test"
    assert after_failure == before
    assert retried.status == "completed", retried.reason


def test_runs_that_applied_nothing_are_rejected(first_run):
    folder, _ = first_run
    unchanged = sync()
    dry = run_sync("d", dry_run=True)
    with get_engine().begin() as connection:
        connection.execute(sa.text("update districts set removal_threshold = 0"))
    datasets.remove_clever_users(folder, {"demo-stu-1"})
    held = run_sync("d")
    (folder / "users.json").unlink()
    failed = run_sync("d")
    before = roster_rows()

    expected = {
        held.run_id: (
            f"Run {held.run_id} is held, not completed, so it applied no changes and "
            "there is nothing to undo. Only a completed run can be undone."
        ),
        failed.run_id: (
            f"Run {failed.run_id} is failed, not completed, so it applied no changes "
            "and there is nothing to undo. Only a completed run can be undone."
        ),
        dry.run_id: (
            f"Run {dry.run_id} was a dry run and wrote no changes, so there is "
            "nothing to undo."
        ),
        unchanged.run_id: (
            f"Run {unchanged.run_id} logged no changes, so there is nothing to undo."
        ),
    }
    for run_id, message in expected.items():
        result = undo(run_id or "")
        assert result.status == "failed", run_id
        assert result.reason == message
    assert [held.status, failed.status, dry.status] == ["held", "failed", "completed"]
    assert roster_rows() == before


def test_unknown_run_is_rejected(store_url):
    result = undo("no-such-run")

    assert result.status == "failed"
    assert result.run_id is None
    assert result.reason == (
        "Run 'no-such-run' was not found, so there is nothing to undo. Use the run "
        "id that the sync reported (the id of its sync_runs row)."
    )


def test_blank_operator_is_rejected(store_url):
    result = undo("any-run", by="  ")

    assert result.status == "failed"
    assert result.reason == (
        "The undo of run any-run is missing who decided it, so nothing was changed. "
        "Pass --by NAME."
    )
