"""Tasks that read and write the Educator Portal store."""

from __future__ import annotations

from prefect import task

from rostersync.guard import GuardVerdict
from rostersync.planning import Plan, StoreSnapshot
from rostersync.results import SyncResult
from rostersync.roster import CursorUpdate, Finding
from rostersync.store.apply import apply_plan
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import (
    IntegrationConfig,
    load_integration,
    store_cursor,
)
from rostersync.store.runs import finish_run, start_run, store_plan, utc_now
from rostersync.store.snapshot import load_snapshot
from tasks.options import IO_TASK_OPTIONS, contain_errors


@task(name="start-sync-run", **IO_TASK_OPTIONS)
@contain_errors
def start_sync_run(
    district_id: str, flow_name: str, flow_run_id: str | None, dry_run: bool
) -> str:
    """Record a running run for the district; return the run id."""
    with store_errors():
        return start_run(
            get_engine(),
            district_id,
            flow_name,
            flow_run_id=flow_run_id,
            dry_run=dry_run,
        )


@task(name="load-integration", **IO_TASK_OPTIONS)
@contain_errors
def load_district_integration(district_id: str) -> IntegrationConfig:
    """Read the district's integration settings from the store."""
    with store_errors():
        return load_integration(get_engine(), district_id)


@task(name="read-store", **IO_TASK_OPTIONS)
@contain_errors
def read_store_snapshot(district_id: str) -> StoreSnapshot:
    """Read the district's current roster rows, archived ones included."""
    with store_errors(), get_engine().connect() as connection:
        return load_snapshot(connection, district_id)


@task(name="apply-plan", **IO_TASK_OPTIONS)
@contain_errors
def apply_changes(
    plan: Plan,
    result: SyncResult,
    findings: list[Finding],
    cursor: CursorUpdate | None = None,
) -> None:
    """Apply the plan, move the pull cursor and close the run, in one transaction."""
    with store_errors(), get_engine().begin() as connection:
        apply_plan(connection, plan, result.run_id or "", utc_now())
        if cursor is not None:
            store_cursor(connection, plan.district_id, cursor)
        _finish(connection, result, findings, plan.store_version + 1)


@task(name="hold-plan", **IO_TASK_OPTIONS)
@contain_errors
def hold_changes(
    plan: Plan, result: SyncResult, findings: list[Finding], verdict: GuardVerdict
) -> None:
    """Store the held plan and close the run as held; nothing is applied."""
    with store_errors(), get_engine().begin() as connection:
        store_plan(connection, result.run_id or "", plan)
        _finish(connection, result, findings, plan.store_version)


@task(name="record-result", **IO_TASK_OPTIONS)
@contain_errors
def record_result(result: SyncResult, findings: list[Finding]) -> None:
    """Close a run that wrote no roster change (failed, dry run, skipped)."""
    with store_errors(), get_engine().begin() as connection:
        _finish(connection, result, findings, None)


def _finish(connection, result: SyncResult, findings, store_version) -> None:
    finish_run(
        connection,
        result.run_id or "",
        status=result.status,
        reason=result.reason,
        counts=result.counts,
        findings=findings,
        quarantined=result.quarantined,
        timings=result.timings,
        store_version=store_version,
    )
