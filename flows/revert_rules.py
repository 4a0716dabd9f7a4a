"""Switch districts back from a custom sharing rule set to their regular one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State
from pydantic import Field
from sqlalchemy import select

from rostersync.errors import RostersyncError
from rostersync.results import SyncResult
from rostersync.roster import shown_id
from rostersync.rules import REGULAR_SET_NAME
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import load_integration, local_date
from rostersync.store.models import District
from rostersync.store.rules import (
    Reversion,
    custom_set_to_revert,
    revert_to_regular,
    unfinished_reversion,
)
from rostersync.store.runs import utc_now
from tasks.alert import alert_flow_outcome
from tasks.options import IO_TASK_OPTIONS, contain_errors

FLOW_NAME = "revert-sharing-rules"
Operator = Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")]


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def revert_sharing_rules(
    district_id: str | None = None,
    by: Operator = FLOW_NAME,
    reason: str = "",
    dry_run: bool = False,
) -> State:
    """Switch a district from its custom sharing rules back to the regular set.

    With ``district_id``, that district's custom set is reverted now. Without it
    (the daily schedule), every district whose custom set's revert date has come,
    on its local date, is reverted. Per district, the users whose every school
    leaves with the custom set are declared as expected removals. The custom set
    ends, its summer school is deactivated, and a sync under the regular set
    archives exactly those users. A user in both sets keeps the account. One
    district's failure is alerted and does not stop the others.
    """
    logger = get_run_logger()
    districts = [district_id] if district_id else due_districts()
    reports: list[dict[str, Any]] = []
    for district in districts:
        report = _revert_one(
            district, by, reason, dry_run=dry_run, due_only=district_id is None
        )
        reports.append(report)
        logger.info("district %s: reversion %s", district, report["status"])
    _publish(reports, dry_run)
    failed = [r for r in reports if r["status"] == "failed"]
    summary = {"districts": reports}
    message = (
        "Reversion: "
        + ", ".join(f"district {r['district_id']} {r['status']}" for r in reports)
        if reports
        else "No district's custom sharing rules were due for reversion."
    )
    if failed:
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


@task(name="find-due-reversions", **IO_TASK_OPTIONS)
@contain_errors
def due_districts() -> list[str]:
    """Return the districts whose custom set's revert date has come locally."""
    engine = get_engine()
    with store_errors():
        with engine.connect() as connection:
            ids = list(
                connection.execute(select(District.id).order_by(District.id)).scalars()
            )
        due = []
        now = datetime.now(UTC)
        for district in ids:
            integration = load_integration(engine, district)
            with engine.connect() as connection:
                if custom_set_to_revert(
                    connection, district, local_date(integration, now), due_only=True
                ):
                    due.append(district)
        return due


def _revert_one(
    district_id: str, by: str, reason: str, *, dry_run: bool, due_only: bool
) -> dict[str, Any]:
    report: dict[str, Any] = {"district_id": district_id, "dry_run": dry_run}
    try:
        reversion = switch_to_regular(district_id, by, reason, dry_run, due_only)
    except RostersyncError as exc:
        report.update(status="failed", reason=str(exc))
        alert_flow_outcome(district_id, FLOW_NAME, "failed", str(exc))
        return report
    if reversion is None:
        report.update(
            status="completed",
            reason=(
                f"District {district_id} has no custom sharing rule set to revert; "
                "nothing was changed."
            ),
        )
        return report
    report.update(
        custom_set=reversion.custom.name if dry_run else reversion.custom.label,
        regular_set=reversion.regular.label,
        summer_school=reversion.summer_school_id,
        deactivated_portal_school=reversion.deactivated_school,
        leaving_students=reversion.leaving_counts["students"],
        leaving_educators=reversion.leaving_counts["educators"],
        kept_in_both_sets=reversion.staying_in_both,
    )
    sync = _sync_regular(district_id, reversion, dry_run)
    # A dry run rolled the new version back, so it names the set without a version.
    custom_label = reversion.custom.name if dry_run else reversion.custom.label
    archived = {
        kind: sync.counts.get(kind, {}).get("archived", 0)
        for kind in ("students", "educators")
    }
    report.update(
        sync_status=sync.status,
        sync_run_id=sync.run_id,
        archived_students=archived["students"],
        archived_educators=archived["educators"],
    )
    if sync.status == "completed" and dry_run:
        report.update(
            status="completed",
            reason=(
                f"Dry run: district {district_id} would go back to its regular rule "
                f"set, and {archived['students']} students and "
                f"{archived['educators']} educators would leave with "
                f"{custom_label}. {reversion.staying_in_both} users of the summer "
                "school would keep their accounts through another school. Nothing "
                "was written."
            ),
        )
    elif sync.status == "completed":
        report.update(
            status="completed",
            reason=(
                f"District {district_id} is back on rule set "
                f"{reversion.regular.label}: {archived['students']} students and "
                f"{archived['educators']} educators left with {custom_label}. "
                f"{reversion.staying_in_both} users of the summer school kept their "
                "accounts through another school."
            ),
        )
    elif sync.status == "held":
        # Nothing was archived: the plan waits for an operator.
        report.update(
            status="held",
            archived_students=0,
            archived_educators=0,
            planned_students=archived["students"],
            planned_educators=archived["educators"],
            reason=(
                f"District {district_id} switched to rule set "
                f"{reversion.regular.label}, but its sync was held: {sync.reason} "
                f"Approve or reject run {sync.run_id} with `rostersync runs "
                "approve|reject RUN_ID`; nobody is archived until then."
            ),
        )
    else:
        report.update(
            status=sync.status,
            archived_students=0,
            archived_educators=0,
            reason=(
                f"District {district_id} switched to rule set "
                f"{reversion.regular.label}, but its sync ended {sync.status}: "
                f"{sync.reason} Run `rostersync rules revert {district_id}` again "
                "once the sync can complete."
            ),
        )
        alert_flow_outcome(
            district_id, FLOW_NAME, sync.status, report["reason"], sync.run_id
        )
    return report


@task(name="switch-to-regular-rules", **IO_TASK_OPTIONS)
@contain_errors
def switch_to_regular(
    district_id: str, by: str, reason: str, dry_run: bool, due_only: bool
) -> Reversion | None:
    """End the custom set and deactivate its summer school; a dry run rolls back.

    Returns None when the district has no custom set to revert. Run by hand, a
    set reverted already whose sync has not completed since is not reverted
    twice: its users who leave are named again for another sync.
    """
    engine = get_engine()
    with store_errors():
        integration = load_integration(engine, district_id)
        now = utc_now()
        today = local_date(integration, now)
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                custom = custom_set_to_revert(
                    connection, district_id, today, due_only=due_only
                )
                if custom is None and not due_only:
                    custom = unfinished_reversion(connection, district_id)
                if custom is None:
                    return None
                reversion = revert_to_regular(
                    connection,
                    district_id,
                    custom,
                    changed_by=by,
                    reason=reason or None,
                    today=today,
                    now=now,
                )
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        return reversion


def _sync_regular(district_id: str, reversion: Reversion, dry_run: bool) -> SyncResult:
    from flows.daily_sync import daily_sync

    state = daily_sync(
        district_id=district_id,
        dry_run=dry_run,
        full_pull=True,
        expected_removals=reversion.leaving_user_ids,
        wait_for_approval=False,
        rule_set=REGULAR_SET_NAME,
        return_state=True,
    )
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, SyncResult):
        return outcome
    return SyncResult(
        district_id=district_id,
        status="failed",
        reason=f"The sync ended in state {state.type.value}.",
    )


_COLUMNS = (
    "district_id",
    "status",
    "custom_set",
    "regular_set",
    "summer_school",
    "leaving_students",
    "leaving_educators",
    "kept_in_both_sets",
    "archived_students",
    "archived_educators",
    "sync_run_id",
)


def _publish(reports: list[dict[str, Any]], dry_run: bool) -> None:
    rows = [{column: report.get(column) for column in _COLUMNS} for report in reports]
    title = "Sharing rule reversion" + (" (dry run)" if dry_run else "")
    create_table_artifact(table=rows, description=title)
    lines = [f"# {title}", ""]
    lines += [
        f"- **{report['district_id']}** {report['status']}: "
        f"{shown_id(str(report.get('reason') or ''))}"
        for report in reports
    ] or ["No district was due."]
    create_markdown_artifact(markdown="\n".join(lines) + "\n", description=title)
