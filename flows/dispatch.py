"""The hourly dispatcher: start a daily sync of each district whose hour has come."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.settings import get_settings
from rostersync.store.schedule import DISPATCH, STOPPED_REASON, decide
from tasks.alert import alert_flow_outcome, current_flow_run_id
from tasks.dispatch import (
    QueuedSyncs,
    close_stopped_syncs,
    find_deployment,
    prepare_provider_queues,
    read_clocks,
    read_live_syncs,
    read_queued_syncs,
    start_daily_syncs,
)
from tasks.options import log_crash

FLOW_NAME = "sync-due-districts"
DAILY_SYNC_DEPLOYMENT = "daily-sync/daily-sync"
ALL_DISTRICTS = "all"
# Flow runs started per task call, so that the log shows progress.
BATCH = 200
# Rows of the artifact's table; the counts cover every district.
MAX_TABLE_ROWS = 1_000


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def sync_due_districts(
    at: datetime | None = None,
    dry_run: bool = False,
    deployment: str = DAILY_SYNC_DEPLOYMENT,
    max_syncs_per_provider: Annotated[int | None, Field(ge=1, le=10_000)] = None,
) -> State:
    """Start one daily-sync flow run per district whose local sync hour has come.

    A district is due when its integration is active, its contract is current,
    its local hour has reached its sync hour and no daily sync of it finished on
    its local date. A run whose process stopped is closed as stopped, alerted,
    and its district synced again. Runs go to one work queue per provider,
    limited to ``max_syncs_per_provider`` runs at once (default
    ROSTERSYNC_MAX_SYNCS_PER_PROVIDER). ``dry_run`` decides and starts nothing,
    and with it ``at`` decides as if it were that time (UTC when it has no
    zone).
    """
    log = get_run_logger()
    now = _as_utc(at) if at else datetime.now(UTC)
    settings = get_settings()
    limit = max_syncs_per_provider or settings.max_syncs_per_provider
    try:
        if at is not None and not dry_run:
            # A dispatch at a pretended time would start syncs that are not due.
            raise ConfigurationError(
                "The parameter at previews a dispatch at another time; set dry_run "
                "with it. A real dispatch always decides at the current time."
            )
        summary = _dispatch(now, dry_run, deployment, limit)
    except RostersyncError as exc:
        log.error("the dispatch failed: %s", exc)
        alert_flow_outcome(ALL_DISTRICTS, FLOW_NAME, "failed", str(exc))
        return Failed(message=str(exc))
    except Exception as exc:  # noqa: BLE001 - alerted and failed, without the message
        log_crash(log, ALL_DISTRICTS, "dispatch", exc)
        reason = (
            f"The dispatch crashed with {type(exc).__name__}; no further sync was "
            "started. The flow run's logs have the stack."
        )
        alert_flow_outcome(ALL_DISTRICTS, FLOW_NAME, "failed", reason)
        return Failed(message=reason)
    return Completed(message=_headline(summary), data=summary)


def _dispatch(now: datetime, dry_run: bool, deployment: str, limit: int) -> dict:
    log = get_run_logger()
    settings = get_settings()
    stopped = [] if dry_run else close_stopped_syncs()
    for run in stopped:
        log.warning(
            "district %s: run %s had stopped; closed as stopped",
            run.district_id,
            run.run_id,
        )
        alert_flow_outcome(
            run.district_id, FLOW_NAME, "stopped", STOPPED_REASON, run.run_id
        )

    clocks = read_clocks()
    live = read_live_syncs()
    try:
        target = find_deployment(deployment)
    except ConfigurationError as exc:
        if not dry_run:
            raise
        # A preview still decides; it cannot see the flow runs already queued.
        log.warning("%s Queued daily syncs were not read.", exc)
        target = None

    grace = settings.district_wait_seconds + settings.sync_lease_seconds
    stopped_flow_runs = frozenset(run.flow_run_id for run in stopped if run.flow_run_id)
    queued = (
        read_queued_syncs(
            target.id, live, stopped_flow_runs, grace, crash_stopped=not dry_run
        )
        if target is not None
        else QueuedSyncs(frozenset(), ())
    )

    decisions = [
        decide(
            clock,
            now,
            locked=clock.district_id in live.districts,
            queued=clock.district_id in queued.districts,
        )
        for clock in clocks
    ]
    due = [(d.district_id, d.provider) for d in decisions if d.decision == DISPATCH]
    started: dict[str, str] = {}
    if due and not dry_run and target is not None:
        queues = prepare_provider_queues(
            target.work_pool_name, [provider for _, provider in due], limit
        )
        key = f"{FLOW_NAME}:{current_flow_run_id() or now.isoformat()}"
        for first in range(0, len(due), BATCH):
            started.update(
                start_daily_syncs(target.id, due[first : first + BATCH], queues, key)
            )
            log.info("started %d of %d daily syncs", len(started), len(due))

    counts = Counter(d.decision for d in decisions)
    summary: dict[str, Any] = {
        "at": now.isoformat(),
        "dry_run": dry_run,
        "districts": len(decisions),
        "decisions": dict(sorted(counts.items())),
        "started": len(started),
        "stopped_runs_closed": len(stopped),
        "flow_runs_crashed": len(queued.crashed),
        "max_syncs_per_provider": limit,
        "flow_runs": started,
        "deployment_found": target is not None,
        "decided": [asdict(d) for d in decisions],
    }
    log.info("%s", _headline(summary))
    _publish(summary, decisions, started)
    return summary


def _headline(summary: dict[str, Any]) -> str:
    verb = "would start" if summary["dry_run"] else "started"
    return (
        f"{summary['districts']} districts: {verb} "
        f"{summary['decisions'].get(DISPATCH, 0)} daily syncs; "
        + ", ".join(f"{key} {value}" for key, value in summary["decisions"].items())
    )


def _publish(summary: dict[str, Any], decisions, started: dict[str, str]) -> None:
    rows = [
        {
            "district": d.district_id,
            "provider": d.provider,
            "local time": d.local_time,
            "decision": d.decision,
            "flow run": started.get(d.district_id, ""),
            "reason": d.reason,
        }
        for d in decisions[:MAX_TABLE_ROWS]
    ]
    create_table_artifact(
        key=FLOW_NAME,
        table=rows,
        description=f"Dispatch at {summary['at']}: one row per district.",
    )
    lines = [
        f"# Dispatch at {summary['at']}",
        "",
        _headline(summary) + ".",
        "",
        "- runs closed because their process stopped: "
        f"{summary['stopped_runs_closed']}",
        f"- flow runs marked Crashed: {summary['flow_runs_crashed']}",
        f"- at most {summary['max_syncs_per_provider']} syncs per provider at once",
    ]
    if len(decisions) > MAX_TABLE_ROWS:
        lines.append(
            f"- the table lists the first {MAX_TABLE_ROWS:,} of "
            f"{len(decisions):,} districts"
        )
    create_markdown_artifact(key=f"{FLOW_NAME}-summary", markdown="\n".join(lines))


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
