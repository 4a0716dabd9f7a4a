"""How the reset treats an export that an earlier, stopped run recorded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

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
    root = tmp_path / "exports"
    with get_engine().begin() as connection:
        export_reading_history(
            connection, DISTRICT, ENDING, export_folder(root, DISTRICT, ENDING)
        )
        record_step(connection, DISTRICT, ENDING, EXPORTED, datetime.now(UTC))
    return root


def manifest(root: Path) -> dict:
    folder = export_folder(root, DISTRICT, ENDING)
    return json.loads((folder / MANIFEST_NAME).read_text())


def test_a_recorded_export_that_still_holds_is_kept(exports: Path):
    written = manifest(exports)["exported_at"]

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is True
    assert manifest(exports)["exported_at"] == written


def test_a_recorded_export_whose_file_changed_is_written_again(exports: Path):
    path = export_folder(exports, DISTRICT, ENDING) / CSV_NAME
    path.write_text(path.read_text()[:-200])

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is False
    assert_export(export_folder(exports, DISTRICT, ENDING), DISTRICT)


def test_reading_after_a_recorded_export_is_exported_too(exports: Path):
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
                book_id="late-book",
                school_year=ENDING,
                seconds_read=30,
                last_read_at=datetime.now(UTC),
            )
        )

    _, reports = reset(district_id=DISTRICT, export_dir=str(exports))

    assert reports[DISTRICT]["status"] == "completed"
    assert reports[DISTRICT]["export"]["reused"] is False
    folder = export_folder(exports, DISTRICT, ENDING)
    assert "late-book" in (folder / CSV_NAME).read_text()
    assert_export(folder, DISTRICT)


def test_the_stopped_run_is_closed_as_failed(exports: Path):
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
