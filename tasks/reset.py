"""Tasks of the New School Year reset: read, export, check, reset, record."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from sqlalchemy import select, update

from rostersync.errors import RostersyncError
from rostersync.export import (
    CSV_NAME,
    MANIFEST_NAME,
    PARQUET_NAME,
    export_folder,
    export_reading_history,
    file_problems,
    file_sha256,
    manifest_summary,
    prepare_folder,
    read_manifest,
)
from rostersync.store.database import get_engine, store_errors
from rostersync.store.models import SyncRun
from rostersync.store.reset import (
    EXPORTED,
    ResetTarget,
    count_changes,
    due_district_ids,
    read_ledger,
    read_target,
    reading_per_student,
    reading_summary,
    recent_assignments,
    record_step,
    reset_district,
    step_detail,
    year_label,
)
from rostersync.store.runs import RUNNING, finish_run, utc_now
from tasks.options import IO_TASK_OPTIONS, TASK_OPTIONS, contain_errors

if TYPE_CHECKING:
    from rostersync.export_checks import ExportCheck

FLOW_NAME = "new-school-year-reset"


class ExportCheckError(RostersyncError):
    """The reading-history export does not match the store."""


class ExportWriteError(RostersyncError):
    """The reading-history export cannot be written to its folder."""


@dataclass(frozen=True)
class ResetState:
    """The state of one district before its reset, and what the reset would change."""

    target: ResetTarget
    counts: dict[str, int]
    recent: list[dict[str, Any]]
    reading: dict[str, Any]


@dataclass(frozen=True)
class Export:
    """A finished export: its folder, manifest, and whether an earlier run wrote it."""

    folder: Path
    manifest: dict[str, Any]
    reused: bool


@task(name="find-due-resets", **IO_TASK_OPTIONS)
@contain_errors
def list_due_districts(now: datetime) -> list[str]:
    """Return the districts due for the reset at ``now``, in their own time zones."""
    with store_errors(), get_engine().connect() as connection:
        return due_district_ids(connection, now)


@task(name="read-reset-state", **IO_TASK_OPTIONS)
@contain_errors
def read_reset_state(district_id: str, now: datetime) -> ResetState:
    """Read the district's years, what the reset would change and recent assignments."""
    with store_errors(), get_engine().connect() as connection:
        target = read_target(connection, district_id, now)
        year = target.ending_year
        return ResetState(
            target=target,
            counts=count_changes(connection, district_id, year, target.integrated),
            recent=recent_assignments(connection, district_id, year, now),
            reading=reading_summary(connection, district_id, year).as_dict(),
        )


@task(name="export-reading-history", **IO_TASK_OPTIONS)
@contain_errors
def export_history(
    district_id: str, school_year: int, root: Path, force: bool = False
) -> Export:
    """Write the year's export, or keep the one an earlier run wrote.

    An earlier export is kept when the ledger records it, its files match its
    manifest, and the store's reading figures still equal the manifest's. A kept
    export is checked again like a new one. Raises ExportWriteError when the
    folder cannot be written, and ExportOutdatedError when reading changed
    during the export.
    """
    logger = get_run_logger()
    folder = export_folder(root, district_id, school_year)
    with store_errors(), get_engine().connect() as connection:
        done = EXPORTED in read_ledger(connection, district_id, school_year)
        if done and not force:
            reason = _outdated_reason(connection, folder, district_id, school_year)
            if reason is None:
                manifest = read_manifest(folder) or {}
                logger.info(
                    "district %s: keeping the export of %s written at %s",
                    district_id,
                    year_label(school_year),
                    manifest.get("exported_at"),
                )
                return Export(folder, manifest, reused=True)
            logger.warning(
                "district %s: the recorded export cannot be kept (%s); writing it "
                "again",
                district_id,
                reason,
            )

        def progress(rows: int) -> None:
            logger.info("district %s: %d reading rows exported", district_id, rows)

        try:
            prepare_folder(root, district_id, school_year)
            manifest = export_reading_history(
                connection, district_id, school_year, folder, progress=progress
            )
        except OSError as exc:
            raise ExportWriteError(
                f"District {district_id}: the export cannot be written to {folder} "
                f"({exc.strerror or type(exc).__name__}); nothing was reset. Check "
                "that the folder is writable and has free space, or pass another "
                "export folder."
            ) from None
    logger.info(
        "district %s: exported %d reading rows of %d students to %s",
        district_id,
        manifest["store"]["rows"],
        manifest["store"]["students"],
        folder,
    )
    return Export(folder, manifest, reused=False)


@task(name="check-export", **IO_TASK_OPTIONS)
@contain_errors
def check_and_record_export(
    district_id: str, school_year: int, export: Export
) -> ExportCheck:
    """Check the export with Great Expectations and record it in the ledger.

    Returns the check, with the rows and students counted in the CSV file.
    Raises ExportCheckError, naming each failed check, when the files do not
    match the store.
    """
    from rostersync.export_checks import check_export

    with store_errors(), get_engine().connect() as connection:
        store = reading_per_student(connection, district_id, school_year)
    check = check_export(export.folder, export.manifest, store)
    if not check.passed:
        raise ExportCheckError(
            f"District {district_id}: the reading-history export in "
            f"{export.folder} failed its checks, so the reset did not run: "
            + "; ".join(check.problems)
        )
    checked = {
        name: file_sha256(export.folder / name)
        for name in (CSV_NAME, PARQUET_NAME, MANIFEST_NAME)
    }
    with store_errors(), get_engine().begin() as connection:
        record_step(
            connection,
            district_id,
            school_year,
            EXPORTED,
            utc_now(),
            detail={"sha256": checked},
        )
    return check


@task(name="compare-export-with-store", **IO_TASK_OPTIONS)
@contain_errors
def export_is_current(district_id: str, school_year: int, export: Export) -> bool:
    """Return whether the store's reading figures still equal the export's."""
    with store_errors(), get_engine().connect() as connection:
        current = reading_summary(connection, district_id, school_year)
    return current == manifest_summary(export.manifest)


@task(name="reset-district", **IO_TASK_OPTIONS)
@contain_errors
def reset_in_store(
    district_id: str,
    school_year: int,
    export: Export,
    run_id: str,
    report_counts: dict[str, Any],
) -> dict[str, int] | None:
    """Reset the district and close its run, in one transaction.

    Returns the rows changed, or None when the year was reset already.
    """
    now = utc_now()
    with store_errors(), get_engine().begin() as connection:
        counts = reset_district(
            connection,
            district_id,
            school_year,
            now,
            export_summary=manifest_summary(export.manifest),
        )
        finish_run(
            connection,
            run_id,
            status="completed",
            reason=None if counts is not None else "The year was reset already.",
            counts={**report_counts, "reset": counts or {}},
            findings=[],
            quarantined=0,
            timings={},
        )
    return counts


@task(name="record-reset-run", **IO_TASK_OPTIONS)
@contain_errors
def record_reset_run(
    run_id: str, status: str, reason: str | None, counts: dict[str, Any]
) -> None:
    """Close a district's reset run with its status, reason and counts."""
    with store_errors(), get_engine().begin() as connection:
        finish_run(
            connection,
            run_id,
            status=status,
            reason=reason,
            counts=counts,
            findings=[],
            quarantined=0,
            timings={},
        )


@task(name="record-reset-outcome", **IO_TASK_OPTIONS)
@contain_errors
def record_run_outcome(
    run_id: str, status: str, reason: str | None, export: dict[str, int] | None
) -> None:
    """Set the status and reason of a closed reset run, and its export counts."""
    with store_errors(), get_engine().begin() as connection:
        counts = connection.execute(
            select(SyncRun.counts).where(SyncRun.id == run_id)
        ).scalar_one()
        if export is not None:
            counts = {**counts, "export": export}
        connection.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(status=status, reason=reason, counts=counts)
        )


@task(name="close-stopped-resets", **TASK_OPTIONS)
@contain_errors
def close_stopped_runs(district_id: str, run_id: str) -> int:
    """Mark the district's earlier reset runs still "running" as failed.

    Such a run stopped without closing its row, for example when its process was
    killed. Its export and reset steps are in the ledger, so this run resumes it.
    """
    with store_errors(), get_engine().begin() as connection:
        return connection.execute(
            update(SyncRun)
            .where(
                SyncRun.district_id == district_id,
                SyncRun.flow_name == FLOW_NAME,
                SyncRun.status == RUNNING,
                SyncRun.id != run_id,
            )
            .values(
                status="failed",
                reason=f"The run stopped before it finished; run {run_id} resumed it.",
                finished_at=utc_now(),
            )
        ).rowcount


@contextmanager
def district_reset_lock(
    root: Path, district_id: str, school_year: int
) -> Iterator[bool]:
    """Hold the district's reset lock while the block runs.

    Yields False, and takes nothing, when another process has the lock. The lock
    is an advisory lock (flock) on ``.reset.lock`` in the district's export
    folder, so the system releases it when its process ends, killed or not.
    Resets that write to different export roots do not see each other's locks.
    """
    try:
        folder = prepare_folder(root, district_id, school_year)
    except OSError as exc:
        raise ExportWriteError(
            f"District {district_id}: the export folder "
            f"{export_folder(root, district_id, school_year)} cannot be created "
            f"({exc.strerror or type(exc).__name__}); nothing was reset. Check that "
            "the folder is writable, or pass another export folder."
        ) from None
    path = folder.parent / ".reset.lock"
    try:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, flags, 0o644)
    except OSError as exc:
        raise ExportWriteError(
            f"District {district_id}: the lock file {path} cannot be opened "
            f"({exc.strerror or type(exc).__name__}); nothing was reset. It must "
            "be a regular file: remove what is there, and run the reset again."
        ) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def _outdated_reason(
    connection: Any, folder: Path, district_id: str, school_year: int
) -> str | None:
    """Return why a recorded export cannot be kept, or None when it can."""
    manifest = read_manifest(folder)
    if manifest is None:
        return f"no readable manifest in {folder}"
    if (
        manifest.get("district_id") != district_id
        or manifest.get("school_year") != school_year
    ):
        return f"the manifest in {folder} belongs to another district or year"
    problems = file_problems(folder, manifest)
    if problems:
        return problems[0]
    detail = step_detail(connection, district_id, school_year, EXPORTED) or {}
    checked = detail.get("sha256") or {}
    for name in (CSV_NAME, PARQUET_NAME, MANIFEST_NAME):
        if checked.get(name) != file_sha256(folder / name):
            return f"{name} differs from the file that was checked"
    try:
        recorded = manifest_summary(manifest)
    except (KeyError, TypeError, ValueError):
        return "the manifest has no store figures"
    if recorded != reading_summary(connection, district_id, school_year):
        return "the store's reading data changed after the export"
    return None
