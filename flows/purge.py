"""Purge archived users once their district's retention period has passed."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from rostersync.alerts import Alert
from rostersync.errors import RostersyncError
from rostersync.store.database import get_engine, store_errors
from rostersync.store.decisions import expire_stale_plans
from rostersync.store.purge import (
    COUNT_KEYS,
    purge_archived_users,
    read_retention_days,
)
from rostersync.store.runs import finish_run, utc_now
from tasks.alert import send_alert_task
from tasks.options import IO_TASK_OPTIONS, contain_errors, log_crash
from tasks.store import list_district_ids, start_sync_run

FLOW_NAME = "purge-archived-users"
COMPLETED = "completed"
FAILED = "failed"

DESCRIPTION = (
    "Delete the users that have been archived for longer than their district's "
    "retention period (districts.retention_days, 365 days unless changed), with "
    "their enrollments, book assignments, bookshelf items, book requests, reading "
    "activity, My Students rows and change log entries. Runs for the district "
    "given, or for every registered district when none is given. Each district is "
    "purged in its own transaction and recorded as a sync run; a dry run only "
    "counts."
)


# Tasks


@task(name="read-retention", **IO_TASK_OPTIONS)
@contain_errors
def read_district_retention(district_id: str) -> int:
    """Read the district's retention period in days, or raise if it is unknown."""
    with store_errors(), get_engine().connect() as connection:
        return read_retention_days(connection, district_id)


@task(name="purge-district", **IO_TASK_OPTIONS)
@contain_errors
def purge_district(district_id: str, run_id: str, dry_run: bool) -> dict[str, int]:
    """Purge one district and close its run as completed, in one transaction."""
    started = time.perf_counter()
    with store_errors(), get_engine().begin() as connection:
        now = utc_now()
        counts = purge_archived_users(connection, district_id, now, dry_run=dry_run)
        if not dry_run:
            stale = expire_stale_plans(connection, district_id, now)
            if stale:
                get_run_logger().info(
                    "district %s: %d held plans could no longer apply and were dropped",
                    district_id,
                    stale,
                )
        finish_run(
            connection,
            run_id,
            status=COMPLETED,
            reason="Dry run: nothing was deleted." if dry_run else None,
            counts=run_counts(counts),
            findings=[],
            quarantined=0,
            timings={"purge": round(time.perf_counter() - started, 3)},
        )
    return counts


@task(name="record-purge-failure", **IO_TASK_OPTIONS)
@contain_errors
def record_purge_failure(run_id: str, reason: str) -> None:
    """Close a district's purge run as failed after its transaction rolled back."""
    with store_errors(), get_engine().begin() as connection:
        finish_run(
            connection,
            run_id,
            status=FAILED,
            reason=reason,
            counts={},
            findings=[],
            quarantined=0,
            timings={},
        )


@task(name="publish-purge-report", **IO_TASK_OPTIONS)
@contain_errors
def publish_purge_report(summaries: list[dict[str, Any]], dry_run: bool) -> None:
    """Publish each district's status and counts as a markdown artifact."""
    failed = sum(summary["status"] == FAILED for summary in summaries)
    create_markdown_artifact(
        markdown=render_purge_markdown(summaries, dry_run),
        key="purge-archived-users",
        description=(
            f"Purge of archived users in {len(summaries)} districts, {failed} failed"
        ),
    )


# Flow


@flow(
    name=FLOW_NAME,
    description=DESCRIPTION,
    log_prints=False,
    validate_parameters=True,
    persist_result=False,
)
def purge_archived_users_flow(
    district_id: str | None = None, dry_run: bool = False
) -> State:
    """Purge archived users past retention in one district, or in every district.

    Returns Completed, or Failed when any district failed. The state's data is a
    list with one dict per district, with these keys:

    - district_id
    - status: "completed" or "failed"
    - dry_run
    - run_id: the sync_runs row, or None when no run could be recorded
    - counts: keyed by ``rostersync.store.purge.COUNT_KEYS``, empty on failure
    - reason: None unless the purge failed or was a dry run
    """
    logger = get_run_logger()
    if district_id is not None:
        district_ids = [district_id]
    else:
        try:
            district_ids = list_district_ids()
        except RostersyncError as exc:
            logger.error("the registered districts could not be read: %s", exc)
            return Failed(message=f"No district was purged: {exc}", data=[])

    summaries = [_purge_one(district, dry_run) for district in district_ids]

    try:
        publish_purge_report(summaries, dry_run)
    except RostersyncError as exc:
        # The purges are committed, so the state reports them even without a report.
        logger.error("the purge report could not be published: %s", exc)
    failed = [s["district_id"] for s in summaries if s["status"] == FAILED]
    if failed:
        return Failed(
            message=f"The purge failed in {len(failed)} of {len(summaries)} "
            f"districts: {', '.join(failed)}.",
            data=summaries,
        )
    users = sum(summary["counts"]["users"] for summary in summaries)
    verb = "would be purged (dry run)" if dry_run else "purged"
    return Completed(
        message=f"{users} users {verb} in {len(summaries)} districts.",
        data=summaries,
    )


def _purge_one(district_id: str, dry_run: bool) -> dict[str, Any]:
    """Purge one district and return its summary, recording a failure in it."""
    summary: dict[str, Any] = {
        "district_id": district_id,
        "status": FAILED,
        "dry_run": dry_run,
        "run_id": None,
        "counts": {},
        "reason": None,
    }
    logger = get_run_logger()
    try:
        retention_days = read_district_retention(district_id)
        summary["run_id"] = start_sync_run(
            district_id, FLOW_NAME, _flow_run_id(), dry_run
        )
        logger.info(
            "district %s: purging users archived more than %d days ago%s",
            district_id,
            retention_days,
            " (dry run)" if dry_run else "",
        )
        summary["counts"] = purge_district(district_id, summary["run_id"], dry_run)
    except RostersyncError as exc:
        _fail(summary, str(exc))
        return summary
    except Exception as exc:  # noqa: BLE001 - one district's crash must not stop the rest
        log_crash(logger, district_id, "purge", exc)
        _fail(
            summary,
            f"The purge crashed with {type(exc).__name__}; nothing was deleted. The "
            "flow run's logs have the details.",
        )
        return summary

    summary["status"] = COMPLETED
    if dry_run:
        summary["reason"] = "Dry run: nothing was deleted."
    logger.info(
        "district %s: %s%s (run %s)",
        district_id,
        "dry run, would purge " if dry_run else "purged ",
        describe_counts(summary["counts"]),
        summary["run_id"],
    )
    return summary


def _fail(summary: dict[str, Any], reason: str) -> None:
    """Mark the district failed, alert the operators and close its run."""
    logger = get_run_logger()
    summary["status"] = FAILED
    summary["reason"] = reason
    logger.error("district %s: the purge failed: %s", summary["district_id"], reason)
    send_alert_task(
        Alert(
            district_id=summary["district_id"],
            flow_name=FLOW_NAME,
            status=FAILED,
            reason=reason,
            run_id=summary["run_id"],
            flow_run_id=_flow_run_id(),
        )
    )
    if summary["run_id"] is None:
        return
    try:
        record_purge_failure(summary["run_id"], reason)
    except RostersyncError as exc:
        logger.error(
            "district %s: run %s could not be recorded as failed: %s",
            summary["district_id"],
            summary["run_id"],
            exc,
        )


# Counts and report


def run_counts(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Return purge counts in the nested shape of sync_runs.counts.

    Each table gets {"purged": n}; book_requests also gets "unlinked", the decided
    requests kept with educator_id set to NULL.
    """
    nested = {
        key: {"purged": value}
        for key, value in counts.items()
        if key != "book_requests_unlinked"
    }
    nested["book_requests"]["unlinked"] = counts["book_requests_unlinked"]
    return nested


def describe_counts(counts: dict[str, int]) -> str:
    """Return counts as "3 users, 5 enrollments, ..." in ``COUNT_KEYS`` order."""
    return ", ".join(f"{counts[key]} {key}" for key in COUNT_KEYS)


def render_purge_markdown(summaries: list[dict[str, Any]], dry_run: bool) -> str:
    """Return one table row per district with its run id, status and counts.

    Failure reasons are left out of the artifact. The run row (sync_runs.reason)
    and the flow run's log contain them.
    """
    lines = ["# Purge of archived users", ""]
    if dry_run:
        lines += [
            "Dry run: nothing was deleted; the counts are what a purge deletes.",
            "",
        ]
    if not summaries:
        return "\n".join([*lines, "No district is registered."])
    lines += [
        "| district | run | status | " + " | ".join(COUNT_KEYS) + " |",
        "|---" * (len(COUNT_KEYS) + 3) + "|",
    ]
    for summary in summaries:
        counts = summary["counts"]
        values = " | ".join(str(counts.get(key, "-")) for key in COUNT_KEYS)
        district = _table_cell(summary["district_id"])
        run_id = summary["run_id"] or "-"
        lines.append(f"| {district} | {run_id} | {summary['status']} | {values} |")
    return "\n".join(lines)


def _table_cell(text: str) -> str:
    """Escape the characters that would end a markdown table cell or row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
