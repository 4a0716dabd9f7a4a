"""How the reset treats an export that an earlier, stopped run recorded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from rostersync.export import CSV_NAME, MANIFEST_NAME, export_folder
from rostersync.store.database import get_engine
from rostersync.store.models import ReadingActivity, SyncRun, User
from rostersync.store.reset import EXPORTED, record_step
from tasks.reset import FLOW_NAME
from tests.flows.test_reset import (
    ENDING,
    add_activity,
    assert_export,
    register_portal_district,
    reset,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

DISTRICT = "res"


@pytest.fixture
def exports(store_url, tmp_path: Path) -> Path:
    """A district whose export a stopped run wrote and recorded, not yet reset."""
    from rostersync.export import export_reading_history

    register_portal_district(DISTRICT, students=9)
    add_activity(DISTRICT, seed=5)
    from rostersync.export import PARQUET_NAME, file_sha256

    root = tmp_path / "exports"
    folder = export_folder(root, DISTRICT, ENDING)
    with get_engine().begin() as connection:
        export_reading_history(connection, DISTRICT, ENDING, folder)
        checked = {
            name: file_sha256(folder / name)
            for name in (CSV_NAME, PARQUET_NAME, MANIFEST_NAME)
        }
        record_step(
            connection,
            DISTRICT,
            ENDING,
            EXPORTED,
            datetime.now(UTC),
            detail={"sha256": checked},
        )
    return root


def manifest(root: Path) -> dict:
    folder = export_folder(root, DISTRICT, ENDING)
    return json.loads((folder / MANIFEST_NAME).read_text())


def insert_reading(book_id: str) -> None:
    """Commit one reading row of the ending year for a student of the district."""
    with get_engine().begin() as connection:
        student = (
            connection.execute(
                sa.select(User.id).where(
                    User.district_id == DISTRICT, User.kind == "student"
                )
            )
            .scalars()
            .first()
        )
        connection.execute(
            sa.insert(ReadingActivity).values(
                student_id=student,
                book_id=book_id,
                school_year=ENDING,
                seconds_read=30,
                last_read_at=datetime.now(UTC),
            )
        )


def test_recorded_export_that_still_holds_is_kept(exports: Path):
    written = manifest(exports)["exported_at"]

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is True
    assert manifest(exports)["exported_at"] == written


def test_recorded_export_whose_file_changed_is_written_again(exports: Path):
    path = export_folder(exports, DISTRICT, ENDING) / CSV_NAME
    path.write_text(path.read_text()[:-200])

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is False
    assert_export(export_folder(exports, DISTRICT, ENDING), DISTRICT)


def test_reading_after_a_recorded_export_is_exported_too(exports: Path):
    insert_reading("late-book")

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is False
    folder = export_folder(exports, DISTRICT, ENDING)
    assert "late-book" in (folder / CSV_NAME).read_text()
    assert_export(folder, DISTRICT)


def test_stopped_run_is_closed_as_failed(exports: Path):
    stopped = str(uuid.uuid4())
    with get_engine().begin() as connection:
        connection.execute(
            sa.insert(SyncRun).values(
                id=stopped,
                district_id=DISTRICT,
                flow_name=FLOW_NAME,
                status="running",
                counts={},
                findings=[],
                timings={},
                started_at=datetime.now(UTC),
            )
        )

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    with get_engine().connect() as connection:
        status, reason = connection.execute(
            sa.select(SyncRun.status, SyncRun.reason).where(SyncRun.id == stopped)
        ).one()
    assert status == "failed"
    assert reason == (
        "The run stopped before it finished; run "
        f"{reports[DISTRICT]['run_id']} resumed it."
    )


def test_reading_during_the_reset_is_exported_after_it(exports, monkeypatch):
    import flows.new_school_year as flow_module

    reset_task = flow_module.reset_in_store

    def reset_then_read(*args, **kwargs):
        counts = reset_task(*args, **kwargs)
        insert_reading("during-reset")
        return counts

    monkeypatch.setattr(flow_module, "reset_in_store", reset_then_read)

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["refreshed"] is True
    folder = export_folder(exports, DISTRICT, ENDING)
    assert "during-reset" in (folder / CSV_NAME).read_text()
    assert_export(folder, DISTRICT)
    with get_engine().connect() as connection:
        counts = connection.execute(
            sa.select(SyncRun.counts).where(SyncRun.id == reports[DISTRICT]["run_id"])
        ).scalar_one()
    assert counts["export"]["rows"] == reports[DISTRICT]["export"]["rows"]


def test_reading_during_the_export_gets_a_second_export(exports, monkeypatch):
    import flows.new_school_year as flow_module
    from rostersync.store.reset import ExportOutdatedError

    export_task = flow_module.export_history
    calls = []

    def changed_once(*args, **kwargs):
        calls.append(kwargs.get("force", False))
        if len(calls) == 1:
            raise ExportOutdatedError("the reading changed while it was exported")
        return export_task(*args, **kwargs)

    monkeypatch.setattr(flow_module, "export_history", changed_once)

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert calls == [False, True]


def test_kept_export_that_fails_its_checks_is_written_again(exports):
    from tests.test_export import rewrite_csv

    folder = export_folder(exports, DISTRICT, ENDING)
    recorded = manifest(exports)
    first_student = None

    def drop_first_student(rows):
        nonlocal first_student
        first_student = rows[0]["student_id"]
        return [row for row in rows if row["student_id"] != first_student]

    rewrite_csv(folder, recorded, drop_first_student)
    (folder / MANIFEST_NAME).write_text(json.dumps(recorded))

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is False
    assert_export(folder, DISTRICT)


def test_reset_while_another_runs_is_busy(exports, monkeypatch):
    import fcntl

    from rostersync.settings import get_settings
    from tests.alert_receiver import alert_receiver
    from tests.flows.test_reset import snapshot

    lock = export_folder(exports, DISTRICT, ENDING).parent / ".reset.lock"
    before = snapshot()
    with alert_receiver() as receiver, lock.open("a") as handle:
        monkeypatch.setenv(
            "ROSTERSYNC_ALERT_URLS", f"json://127.0.0.1:{receiver.port}/alerts"
        )
        get_settings.cache_clear()
        fcntl.flock(handle, fcntl.LOCK_EX)
        _, reports = reset(district_id=DISTRICT, export_dir=str(exports))
        alerts = receiver.wait_for(1)
    get_settings.cache_clear()

    assert reports[DISTRICT]["status"] == "busy"
    assert snapshot() == before
    assert len(alerts) == 1
    assert str(lock) in alerts[0].body["message"]


def test_bad_time_zone_fails_its_district_alone(exports):
    register_portal_district("other", students=3)
    with get_engine().begin() as connection:
        connection.execute(
            sa.text("update districts set timezone = 'Not/AZone' where id = :d"),
            {"d": DISTRICT},
        )

    state, reports = reset(export_dir=str(exports))

    assert state.is_failed()
    assert reports[DISTRICT]["status"] == "failed"
    assert "'Not/AZone', which is not a known IANA zone" in reports[DISTRICT]["reason"]
    assert reports["other"]["status"] == "completed"


def test_kept_export_must_be_the_checked_one(exports):
    """Files rewritten with a matching manifest are not the files the ledger holds."""
    import pyarrow.parquet as pq

    from rostersync.export import PARQUET_NAME, file_sha256

    folder = export_folder(exports, DISTRICT, ENDING)
    table = pq.read_table(folder / PARQUET_NAME)
    pages = table.schema.get_field_index("pages_read")
    changed = table.set_column(
        pages, "pages_read", pa.array([4242] * table.num_rows, pa.int64())
    )
    pq.write_table(changed, folder / PARQUET_NAME)
    recorded = manifest(exports)
    for entry in recorded["files"]:
        entry["bytes"] = (folder / entry["name"]).stat().st_size
        entry["sha256"] = file_sha256(folder / entry["name"])
    (folder / MANIFEST_NAME).write_text(json.dumps(recorded))

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["export"]["reused"] is False
    assert 4242 not in pq.read_table(folder / PARQUET_NAME)["pages_read"].to_pylist()
