"""The daily sync: pull a district's shared roster, check it, plan, guard, apply."""

from __future__ import annotations

import time
import traceback
from contextlib import contextmanager

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from rostersync.errors import BlockingCheckError, RostersyncError
from rostersync.report import total_findings
from rostersync.results import SyncResult, empty_counts
from rostersync.roster import Finding, cursor_to_store
from rostersync.store.districts import IntegrationConfig
from rostersync.store.runs import MAX_FINDINGS_ON_RUN
from tasks.extract import extract_roster
from tasks.plan import guard_removals, plan_roster_changes
from tasks.report import publish_report
from tasks.store import (
    apply_changes,
    hold_changes,
    load_district_integration,
    read_store_snapshot,
    record_result,
    start_sync_run,
)
from tasks.validate import validate_roster


@flow(
    name="daily-sync", log_prints=False, validate_parameters=True, persist_result=False
)
def daily_sync(
    district_id: str, dry_run: bool = False, full_pull: bool = False
) -> State:
    """Sync one district's roster into the store; return its SyncResult as state.

    ``full_pull`` reads everything from a provider even when the integration could
    pull only the changes since the last sync.
    """
    result = SyncResult(
        district_id=district_id,
        status="failed",
        dry_run=dry_run,
        flow_run_id=_flow_run_id(),
    )
    findings: list[Finding] = []
    try:
        integration = load_district_integration(district_id)
        result.run_id = start_sync_run(
            district_id, "daily-sync", result.flow_run_id, dry_run
        )
        _run_steps(result, integration, findings, full_pull)
    except RostersyncError as exc:
        if exc.pull is not None:
            result.pull = exc.pull
        _fail(result, findings, str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash must not leave the run open
        # The message of an unexpected error may quote record values, so the log
        # gets the class and the stack without it.
        get_run_logger().error(
            "district %s: the sync crashed with %s at\n%s",
            district_id,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        _fail(
            result,
            findings,
            f"The sync crashed with {type(exc).__name__}; nothing was written. The "
            "flow run's logs have the details.",
        )

    publish_report(result)
    if result.status == "failed":
        return Failed(message=result.reason, data=result)
    return Completed(message=result.status, data=result)


def _run_steps(
    result: SyncResult,
    integration: IntegrationConfig,
    findings: list[Finding],
    full_pull: bool,
) -> None:
    timings = result.timings
    district_id = result.district_id

    with _timed(timings, "extract"):
        roster = extract_roster(integration, full_pull)
        result.pull = roster.pull.as_dict()
        store = read_store_snapshot(district_id)
    with _timed(timings, "validate"):
        report = validate_roster(roster, integration, store)
        findings.extend(report.findings)
        result.quarantined = report.quarantined_count
    if report.blocking:
        raise BlockingCheckError(_blocking_reason(report.blocking))
    with _timed(timings, "plan"):
        plan = plan_roster_changes(district_id, report.clean, store, report.quarantined)
        result.counts = plan.counts()
    with _timed(timings, "guard"):
        verdict = guard_removals(plan, integration, store)
        result.guard = {
            "held": verdict.held,
            "archived_users": verdict.archived_users,
            "counted_users": verdict.counted_users,
            "threshold": verdict.threshold,
            "by_role_school": verdict.by_role_school,
        }

    with _timed(timings, "apply"):
        if verdict.held and result.dry_run:
            # A dry run stores no plan, so there is nothing for an operator to approve.
            result.status, result.reason = "held", f"Dry run: {verdict.reason}"
            _close(result, findings)
            record_result(result, findings)
        elif verdict.held:
            result.status, result.reason = "held", verdict.reason
            _close(result, findings)
            hold_changes(plan, result, findings, verdict)
        elif result.dry_run:
            result.status, result.reason = "completed", "Dry run: nothing written."
            _close(result, findings)
            record_result(result, findings)
        else:
            result.status = "completed"
            _close(result, findings)
            cursor = cursor_to_store(roster, report.quarantined_count)
            apply_changes(plan, result, findings, cursor)
    get_run_logger().info("district %s: %s", district_id, result.status)


def _fail(result: SyncResult, findings: list[Finding], reason: str) -> None:
    """Close the run as failed; a failure to record it is logged, not raised."""
    result.status = "failed"
    result.reason = reason
    # Nothing was applied, whatever the plan contained.
    result.counts = empty_counts()
    _close(result, findings)
    if result.run_id is None:
        return
    try:
        record_result(result, findings)
    except RostersyncError as exc:
        get_run_logger().error(
            "district %s: run %s could not be recorded as failed: %s",
            result.district_id,
            result.run_id,
            exc,
        )


def _blocking_reason(blocking: list[Finding]) -> str:
    first = blocking[0]
    more = f" ({len(blocking) - 1} more blocking findings)" if len(blocking) > 1 else ""
    return f"Blocking data check failed, nothing was written: {first.message}{more}"


def _close(result: SyncResult, findings: list[Finding]) -> None:
    result.findings = [f.as_dict() for f in findings[:MAX_FINDINGS_ON_RUN]]
    result.finding_totals = total_findings(findings)


@contextmanager
def _timed(timings: dict[str, float], step: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(time.perf_counter() - started, 3)


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
