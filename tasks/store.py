"""Tasks that read and write the Educator Portal store."""

from __future__ import annotations

from datetime import date

from prefect import task
from sqlalchemy import select, update

from rostersync.alerts import Alert, send_alert
from rostersync.guard import GuardVerdict
from rostersync.planning import Plan, StoreSnapshot
from rostersync.results import SyncResult
from rostersync.roster import CursorUpdate, Finding
from rostersync.store.apply import apply_plan
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import (
    IntegrationConfig,
    PullState,
    claim_contract_warning,
    load_integration,
    load_pull_state,
    store_cursor,
    store_pull_state,
    suspend_integration,
)
from rostersync.store.locks import check_sync_lock
from rostersync.store.models import District, SyncRun
from rostersync.store.rules import record_applied_rule_set
from rostersync.store.runs import finish_run, start_run, store_plan, utc_now
from rostersync.store.snapshot import load_snapshot
from tasks.options import IO_TASK_OPTIONS, contain_errors


@task(name="start-sync-run", **IO_TASK_OPTIONS)
@contain_errors
def start_sync_run(
    district_id: str,
    flow_name: str,
    flow_run_id: str | None,
    dry_run: bool,
    run_id: str | None = None,
) -> str:
    """Record a running run for the district; return the run id.

    A retry after a lost response finds the row of ``run_id`` already written.
    """
    with store_errors():
        return start_run(
            get_engine(),
            district_id,
            flow_name,
            flow_run_id=flow_run_id,
            dry_run=dry_run,
            run_id=run_id,
        )


@task(name="list-districts", **IO_TASK_OPTIONS)
@contain_errors
def list_district_ids() -> list[str]:
    """Read the ids of every registered district, sorted."""
    with store_errors(), get_engine().connect() as connection:
        return list(
            connection.execute(select(District.id).order_by(District.id)).scalars()
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
    fingerprint: str | None = None,
    rule_set: str | None = None,
) -> None:
    """Apply the plan, move the pull cursor and close the run, in one transaction.

    ``fingerprint`` is the full pull's, None for a delta; a delta that changes
    anything clears the stored one, since the roster then differs from it.
    ``rule_set`` names the sharing rule set of a full pull, kept so that a sync
    under another set pulls in full.
    """
    now = utc_now()
    with store_errors(), get_engine().begin() as connection:
        check_sync_lock(connection, plan.district_id, result.run_id or "")
        apply_plan(connection, plan, result.run_id or "", now)
        if cursor is not None:
            store_cursor(connection, plan.district_id, cursor)
        if rule_set is not None:
            record_applied_rule_set(connection, plan.district_id, rule_set)
        changed = fingerprint is not None or not plan.is_empty
        if changed:
            store_pull_state(
                connection, plan.district_id, fingerprint, changed=True, now=now
            )
        _finish(connection, result, findings, plan.store_version + 1)


@task(name="warn-contract-ending", **IO_TASK_OPTIONS)
@contain_errors
def warn_contract_ending(result: SyncResult, end: date, days_left: int | None) -> None:
    """Alert operators once per contract end date that the contract ends soon."""
    with store_errors():
        first = claim_contract_warning(get_engine(), result.district_id, end)
    if not first:
        return
    send_alert(
        Alert(
            district_id=result.district_id,
            flow_name="daily-sync",
            status="contract-ending",
            reason=(
                f"The contract of district {result.district_id} ends on {end}, in "
                f"{days_left} days. After that day the district is no longer synced "
                "and its accounts stay as they are."
            ),
            counts={},
            run_id=result.run_id,
            flow_run_id=result.flow_run_id,
        )
    )


@task(name="read-pull-state", **IO_TASK_OPTIONS)
@contain_errors
def read_pull_state(district_id: str) -> PullState:
    """Read the fingerprint of the last applied full pull and its date."""
    with store_errors():
        return load_pull_state(get_engine(), district_id)


@task(name="suspend-integration", **IO_TASK_OPTIONS)
@contain_errors
def suspend_district(result: SyncResult, findings: list[Finding], reason: str) -> None:
    """Suspend the district's integration and close the run as suspended."""
    with store_errors():
        with get_engine().begin() as connection:
            check_sync_lock(connection, result.district_id, result.run_id or "")
        suspend_integration(get_engine(), result.district_id, reason, "daily-sync")
        with get_engine().begin() as connection:
            _finish(connection, result, findings, None)


@task(name="hold-plan", **IO_TASK_OPTIONS)
@contain_errors
def hold_changes(
    plan: Plan,
    result: SyncResult,
    findings: list[Finding],
    verdict: GuardVerdict,
    fingerprint: str | None = None,
) -> None:
    """Store the held plan and close the run as held; nothing is applied.

    ``fingerprint`` is the held full pull's, which approval records as the last
    applied pull.
    """
    with store_errors(), get_engine().begin() as connection:
        check_sync_lock(connection, result.district_id, result.run_id or "")
        store_plan(connection, result.run_id or "", plan)
        _finish(connection, result, findings, plan.store_version)
        connection.execute(
            update(SyncRun)
            .where(SyncRun.id == (result.run_id or ""))
            .values(pull_fingerprint=fingerprint)
        )


@task(name="record-result", **IO_TASK_OPTIONS)
@contain_errors
def record_result(
    result: SyncResult,
    findings: list[Finding],
    cursor: CursorUpdate | None = None,
    rule_set: str | None = None,
    locked: bool = True,
) -> None:
    """Close a run that wrote no roster change (failed, dry run, skipped, unchanged).

    ``cursor`` moves the incremental cursor of an unchanged full pull, so that the
    next pull reads only the changes again, and ``rule_set`` names that pull's
    sharing rule set. With ``locked`` (the run still holds the district's lock)
    the lock is checked first, and a run that lost it records nothing.
    """
    with store_errors(), get_engine().begin() as connection:
        if locked:
            check_sync_lock(connection, result.district_id, result.run_id or "")
        if cursor is not None:
            store_cursor(connection, result.district_id, cursor)
        if rule_set is not None:
            record_applied_rule_set(connection, result.district_id, rule_set)
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
