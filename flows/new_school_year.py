"""The August 1 New School Year reset, after each district's reading-history export."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from rostersync.errors import RostersyncError
from rostersync.export import export_folder
from rostersync.roster import shown_id
from rostersync.settings import get_settings
from rostersync.store.reset import (
    COUNT_KEYS,
    RECENT_ASSIGNMENT_DAYS,
    ExportOutdatedError,
    year_label,
)
from rostersync.store.runs import utc_now
from tasks.alert import alert_flow_outcome, current_flow_run_id
from tasks.options import log_crash
from tasks.reset import (
    FLOW_NAME,
    ExportCheckError,
    check_and_record_export,
    close_stopped_runs,
    district_reset_lock,
    export_history,
    export_is_current,
    list_due_districts,
    read_reset_state,
    record_reset_run,
    record_run_outcome,
    reset_in_store,
)
from tasks.store import list_district_ids, start_sync_run

# Statuses of one district in a reset run.
COMPLETED = "completed"
ALREADY_RESET = "already_reset"
NOT_DUE = "not_due"
BUSY = "busy"
# The district was reset, but reading that arrived during the reset is not in
# its export. Counted as a failure, so that the run fails and alerts.
EXPORT_STALE = "export_stale"
FAILED = "failed"
FAILURES = frozenset({FAILED, EXPORT_STALE})

# Educators listed per district in the recent-assignments artifact.
MAX_LISTED_EDUCATORS = 200

DESCRIPTION = (
    "Roll districts over to the new school year on August 1 in their own time "
    "zones. Per district: export the ending year's reading history to CSV and "
    "Parquet with a manifest of row counts and SHA-256 checksums, check the export "
    "against the store with Great Expectations, then in one transaction move the "
    "year's book assignments to Last School Year, clear bookshelves, My Books, "
    "book requests and My Students, move students of districts without an "
    "integration to Needs Update, and advance the school year. A ledger makes a "
    "second run do nothing and lets a stopped run resume. Without a district id it "
    "resets every district whose August 1 has come (a dry run covers every "
    "district). One district's failure is alerted and does not stop the others."
)


@flow(
    name=FLOW_NAME,
    description=DESCRIPTION,
    log_prints=False,
    validate_parameters=True,
    persist_result=False,
)
def new_school_year_reset(
    district_id: str | None = None,
    dry_run: bool = False,
    export_dir: str | None = None,
) -> State:
    """Export and reset one district, or every district due for its reset.

    Returns Completed, or Failed when any district failed. The state's data is
    ``{"districts": [...]}`` with one report per district; see ``_new_report``.
    """
    logger = get_run_logger()
    now = utc_now()
    root = Path(export_dir) if export_dir else get_settings().export_dir
    root = root.expanduser().resolve()
    try:
        if district_id is not None:
            district_ids = [district_id]
        elif dry_run:
            district_ids = list_district_ids()
        else:
            district_ids = list_due_districts(now)
    except RostersyncError as exc:
        logger.error("the districts could not be read: %s", exc)
        return Failed(message=f"No district was reset: {exc}", data={"districts": []})
    logger.info(
        "%d districts to %s; exports go under %s",
        len(district_ids),
        "preview (dry run)" if dry_run else "reset",
        root,
    )
    reports = []
    for number, district in enumerate(district_ids, start=1):
        report = _reset_one(district, dry_run, root, now)
        reports.append(report)
        logger.info(
            "district %s (%d of %d): %s",
            district,
            number,
            len(district_ids),
            report["status"],
        )
    try:
        _publish(reports, dry_run)
    except Exception as exc:  # noqa: BLE001 - the resets are committed; report them
        logger.error("the reset report could not be published: %s", type(exc).__name__)
    data = {"districts": reports}
    failed = [r["district_id"] for r in reports if r["status"] in FAILURES]
    if failed:
        return Failed(
            message=f"The reset failed in {len(failed)} of {len(reports)} districts: "
            f"{', '.join(shown_id(d) for d in failed)}.",
            data=data,
        )
    return Completed(message=_summary_message(reports, dry_run), data=data)


def _new_report(district_id: str, dry_run: bool) -> dict[str, Any]:
    """Return a district's report before anything is known.

    Keys:

    - district_id, dry_run, integrated, run_id and reason;
    - status: COMPLETED, ALREADY_RESET, NOT_DUE, BUSY, EXPORT_STALE or FAILED;
    - ending_year and new_year, as "2025-26";
    - counts, keyed by COUNT_KEYS: what changed, or for a dry run what would
      change. Empty for any other outcome;
    - export: the folder, and the rows and students counted in its files.
      ``reused`` is True when an earlier run wrote it, ``refreshed`` when reading
      that arrived during the reset was exported, and ``stale`` when it could not
      be;
    - recent_assignments: the books of the last 14 days and, per educator, the
      ids and the number of books.
    """
    return {
        "district_id": district_id,
        "status": FAILED,
        "dry_run": dry_run,
        "integrated": None,
        "ending_year": None,
        "new_year": None,
        "run_id": None,
        "counts": {},
        "export": {},
        "recent_assignments": {"books": 0, "educators": []},
        "reason": None,
    }


def _reset_one(
    district_id: str, dry_run: bool, root: Path, now: datetime
) -> dict[str, Any]:
    """Export and reset one district; record any failure in its report."""
    report = _new_report(district_id, dry_run)
    logger = get_run_logger()
    try:
        _run_reset(report, dry_run, root, now)
    except RostersyncError as exc:
        _fail(report, str(exc))
    except Exception as exc:  # noqa: BLE001 - one district's crash must not stop the rest
        log_crash(logger, district_id, "reset", exc)
        _fail(
            report,
            f"The reset crashed with {type(exc).__name__}; its transaction was "
            "rolled back. The flow run's logs have the details.",
        )
    return report


def _run_reset(
    report: dict[str, Any], dry_run: bool, root: Path, now: datetime
) -> None:
    logger = get_run_logger()
    district_id = report["district_id"]
    state = read_reset_state(district_id, now)
    target = state.target
    year = target.ending_year
    report.update(
        integrated=target.integrated,
        ending_year=year_label(year),
        new_year=year_label(target.new_year),
        recent_assignments={
            "books": sum(row["books"] for row in state.recent),
            "educators": state.recent,
        },
    )
    if not target.due and not dry_run:
        _not_due(report, target)
        return
    if state.recent:
        logger.warning(
            "district %s: %d books were assigned in the last %d days by %d "
            "educators; the reset moves them to Last School Year",
            district_id,
            report["recent_assignments"]["books"],
            RECENT_ASSIGNMENT_DAYS,
            len(state.recent),
        )
    if dry_run:
        report["run_id"] = start_sync_run(
            district_id, FLOW_NAME, current_flow_run_id(), True
        )
        report["status"] = COMPLETED
        report["counts"] = state.counts
        report["export"] = {"rows": state.reading["rows"]}
        report["reason"] = (
            f"Dry run: nothing was exported or changed. The reset of "
            f"{year_label(year)} would make the changes counted, and export "
            f"{state.reading['rows']} reading rows."
        )
        record_reset_run(
            report["run_id"],
            COMPLETED,
            report["reason"],
            {"reset": state.counts, "export": {"rows": state.reading["rows"]}},
        )
        return
    with district_reset_lock(root, district_id, year) as held:
        if not held:
            report["status"] = BUSY
            lock = export_folder(root, district_id, year).parent / ".reset.lock"
            report["reason"] = (
                "Another reset of this district is running, or a process still "
                f"holds the lock on {lock}; nothing was done. A district that stays "
                "busy past August 2 stays in its old school year."
            )
            logger.warning("district %s: %s", district_id, report["reason"])
            alert_flow_outcome(district_id, FLOW_NAME, BUSY, report["reason"])
            return
        report["run_id"] = start_sync_run(
            district_id, FLOW_NAME, current_flow_run_id(), False
        )
        stopped = close_stopped_runs(district_id, report["run_id"])
        if stopped:
            logger.warning(
                "district %s: resuming %d reset runs that stopped before they finished",
                district_id,
                stopped,
            )
        _export_and_reset(report, state, root)


def _export_and_reset(report: dict[str, Any], state: Any, root: Path) -> None:
    """Export, check and reset one due district; write the outcome in its report."""
    logger = get_run_logger()
    district_id = report["district_id"]
    year = state.target.ending_year
    recent = {"books": report["recent_assignments"]["books"]}

    export, check = _checked_export(district_id, year, root)
    report["export"] = _export_report(export, check)
    run_counts = {"export": _run_export_counts(check), "recent_assignments": recent}
    try:
        counts = reset_in_store(district_id, year, export, report["run_id"], run_counts)
    except ExportOutdatedError as exc:
        # Reading arrived between the export and the reset: export once more.
        logger.warning("district %s: %s", district_id, exc)
        export, check = _checked_export(district_id, year, root, force=True)
        report["export"] = _export_report(export, check)
        run_counts["export"] = _run_export_counts(check)
        counts = reset_in_store(district_id, year, export, report["run_id"], run_counts)
    if counts is None:
        report["status"] = ALREADY_RESET
        report["reason"] = f"{year_label(year)} was reset already; nothing changed."
        return

    report["status"] = COMPLETED
    report["counts"] = counts
    logger.info(
        "district %s: reset from %s to %s: %s",
        district_id,
        year_label(year),
        year_label(year + 1),
        ", ".join(f"{counts[key]} {key}" for key in COUNT_KEYS if key in counts),
    )
    _refresh_after_reset(report, export, root)


def _checked_export(
    district_id: str, year: int, root: Path, force: bool = False
) -> tuple[Any, Any]:
    """Write (or keep) the export and check it; try a second export once.

    A change of the reading while it was exported, or an export that fails its
    checks, gets one more export. A second failure raises.
    """
    logger = get_run_logger()
    try:
        export = export_history(district_id, year, root, force=force)
        return export, check_and_record_export(district_id, year, export)
    except (ExportOutdatedError, ExportCheckError) as exc:
        logger.warning("district %s: %s; exporting once more", district_id, exc)
    export = export_history(district_id, year, root, force=True)
    return export, check_and_record_export(district_id, year, export)


def _refresh_after_reset(report: dict[str, Any], export: Any, root: Path) -> None:
    """Export the ending year again when reading arrived during the reset.

    The reset leaves the ending year's reading rows as they are, so an export
    written after it is as valid as one written before.
    """
    logger = get_run_logger()
    district_id = report["district_id"]
    year = export.manifest["school_year"]
    try:
        if export_is_current(district_id, year, export):
            return
        logger.warning(
            "district %s: reading of %s arrived during the reset; exporting again",
            district_id,
            year_label(year),
        )
        export, check = _checked_export(district_id, year, root, force=True)
    except RostersyncError as exc:
        report["status"] = EXPORT_STALE
        report["export"]["stale"] = True
        report["reason"] = (
            f"The district was reset, but reading of {year_label(year)} that "
            "arrived during the reset is not in the export, because exporting it "
            f"again failed with {type(exc).__name__}. The flow run's logs have the "
            "details."
        )
        logger.error(
            "district %s: the export after the reset failed: %s", district_id, exc
        )
        alert_flow_outcome(
            district_id, FLOW_NAME, EXPORT_STALE, report["reason"], report["run_id"]
        )
        record_run_outcome(report["run_id"], EXPORT_STALE, report["reason"], None)
        return
    report["export"] = {**_export_report(export, check), "refreshed": True}
    record_run_outcome(
        report["run_id"],
        COMPLETED,
        None,
        {"rows": check.rows, "students": check.students},
    )


def _run_export_counts(check: Any) -> dict[str, int]:
    return {"rows": check.rows, "students": check.students}


def _not_due(report: dict[str, Any], target: Any) -> None:
    """Report a district whose August 1 has not come, or that was reset already."""
    if target.previous_reset_at is not None:
        report["status"] = ALREADY_RESET
        # Books assigned since then belong to the new year and stay where they are.
        report["recent_assignments"] = {"books": 0, "educators": []}
        report["ending_year"] = year_label(target.ending_year - 1)
        report["new_year"] = year_label(target.ending_year)
        report["counts"] = {}
        report["reason"] = (
            f"{year_label(target.ending_year - 1)} was reset on "
            f"{target.previous_reset_at:%Y-%m-%d}; nothing to do."
        )
        return
    report["status"] = NOT_DUE
    report["reason"] = (
        f"The district is in school year {year_label(target.ending_year)} until "
        f"{date(target.new_year, 7, 31)}, and its local date is {target.local_date}; "
        "the reset runs from August 1. Nothing changed. A dry run shows what the "
        "reset would change."
    )


def _export_report(export: Any, check: Any) -> dict[str, Any]:
    """Return the export's folder, and its rows and students counted in its files."""
    return {
        "folder": str(export.folder),
        "rows": check.rows,
        "students": check.students,
        "reused": export.reused,
    }


def _fail(report: dict[str, Any], reason: str) -> None:
    """Mark the district failed, alert the operators and close its run."""
    logger = get_run_logger()
    report["status"] = FAILED
    report["reason"] = reason
    logger.error("district %s: the reset failed: %s", report["district_id"], reason)
    alert_flow_outcome(
        report["district_id"], FLOW_NAME, FAILED, reason, report["run_id"]
    )
    if report["run_id"] is None:
        return
    try:
        record_reset_run(report["run_id"], FAILED, reason, {})
    except RostersyncError as exc:
        logger.error(
            "district %s: run %s could not be recorded as failed: %s",
            report["district_id"],
            report["run_id"],
            exc,
        )


# Report

_TABLE_COLUMNS = (
    "district_id",
    "status",
    "ending_year",
    "new_year",
    "integrated",
    "run_id",
)


def _publish(reports: list[dict[str, Any]], dry_run: bool) -> None:
    """Publish a table of every district's result, and the recent assignments."""
    title = "New School Year reset" + (" (dry run)" if dry_run else "")
    rows = []
    for report in reports:
        row = {column: report.get(column) for column in _TABLE_COLUMNS}
        row["exported_rows"] = report["export"].get("rows")
        row.update({key: report["counts"].get(key) for key in COUNT_KEYS})
        row["books_assigned_last_14_days"] = report["recent_assignments"]["books"]
        row["reason"] = report["reason"]
        rows.append(row)
    failed = sum(report["status"] in FAILURES for report in reports)
    create_table_artifact(
        table=rows
        or [{"district_id": None, "status": "no district due", "reason": None}],
        key="new-school-year-reset",
        description=f"{title}: {len(reports)} districts, {failed} failed",
    )
    create_markdown_artifact(
        markdown=_recent_markdown(reports, title),
        key="new-school-year-recent-assignments",
        description=f"{title}: books assigned in the last "
        f"{RECENT_ASSIGNMENT_DAYS} days",
    )


def _recent_markdown(reports: list[dict[str, Any]], title: str) -> str:
    lines = [
        f"# {title}: books assigned in the last {RECENT_ASSIGNMENT_DAYS} days",
        "",
        "These books move to Last School Year at the reset. Ask their educators to "
        "assign books for the new year after August 1.",
        "",
    ]
    listed = [r for r in reports if r["recent_assignments"]["educators"]]
    if not listed:
        return "\n".join([*lines, "No book was assigned in that time."]) + "\n"
    lines += [
        "| district | educator id | educator provider id | school provider id "
        "| books |",
        "|---|---|---|---|---|",
    ]
    for report in listed:
        educators = report["recent_assignments"]["educators"]
        for row in educators[:MAX_LISTED_EDUCATORS]:
            lines.append(
                f"| {_cell(report['district_id'])} | {row['educator_id']} | "
                f"{_cell(row['educator_provider_id'])} | "
                f"{_cell(row['school_provider_id'] or '-')} | {row['books']} |"
            )
        if len(educators) > MAX_LISTED_EDUCATORS:
            lines.append(
                f"| {_cell(report['district_id'])} | ... | "
                f"{len(educators) - MAX_LISTED_EDUCATORS} more educators | | |"
            )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Shorten an id and escape what would end a markdown table cell."""
    return shown_id(text).replace("|", "\\|").replace("\n", " ")


def _summary_message(reports: list[dict[str, Any]], dry_run: bool) -> str:
    if not reports:
        return "No district was due for the New School Year reset."
    counts: dict[str, int] = {}
    for report in reports:
        counts[report["status"]] = counts.get(report["status"], 0) + 1
    parts = ", ".join(f"{number} {status}" for status, number in sorted(counts.items()))
    prefix = (
        "Dry run of the New School Year reset" if dry_run else "New School Year reset"
    )
    return f"{prefix}: {len(reports)} districts ({parts})."
