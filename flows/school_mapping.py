"""Change a district's school mapping: add a new school, or merge campuses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.roster import shown_id
from rostersync.rules import check_provider_id
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import load_integration
from rostersync.store.mapping import (
    AddedSchool,
    MergePlan,
    add_school,
    apply_merge,
    lock_district,
    plan_merge,
)
from rostersync.store.runs import finish_run, start_run, utc_now
from tasks.alert import alert_flow_outcome, current_flow_run_id
from tasks.options import IO_TASK_OPTIONS, contain_errors

FLOW_NAME = "update-school-mapping"
ADD_SCHOOL = "add-school"
MERGE = "merge-campuses"
Operator = Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")]


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def update_school_mapping(
    district_id: str,
    action: Literal["add-school", "merge-campuses"],
    by: Operator,
    school_id: str | None = None,
    portal_school_id: Annotated[int, Field(gt=0)] | None = None,
    school_name: str | None = None,
    merge_school_ids: list[str] | None = None,
    dry_run: bool = False,
    reason: str = "",
) -> State:
    """Add a school to the mapping, or merge campuses into one portal school.

    ``add-school``: map provider school ``school_id`` to a new portal school named
    ``school_name``, or to the existing ``portal_school_id``, and add it to a
    regular rule set that lists its schools.

    ``merge-campuses``: move the students, educators and sections of the
    ``merge_school_ids`` schools to the portal school of ``school_id``, in one
    transaction. No account is archived or recreated, and history stays with each
    person and section. The merged provider ids stay mapped, as aliases. A dry
    run reports what would move; `rostersync runs undo RUN_ID` undoes a merge.
    """
    logger = get_run_logger()
    summary: dict[str, Any] = {
        "district_id": district_id,
        "action": action,
        "dry_run": dry_run,
    }
    try:
        check_mapping_change(action, school_id, merge_school_ids)
        if action == ADD_SCHOOL:
            if dry_run:
                raise ConfigurationError(
                    "Adding a school has no dry run; it changes only the mapping and "
                    "the rules, and the next sync shows its people."
                )
            added = save_new_school(
                district_id, school_id or "", portal_school_id, school_name, by, reason
            )
            summary.update(
                status="completed",
                school_id=added.provider_school_id,
                portal_school_id=added.portal_school_id,
                created=added.created,
                rule_set=added.rule_set,
                reason=_added_message(district_id, added),
            )
        else:
            summary.update(
                merge_campuses(
                    district_id,
                    merge_school_ids or [],
                    school_id or "",
                    by,
                    reason,
                    dry_run,
                    current_flow_run_id(),
                )
            )
    except RostersyncError as exc:
        summary.update(status="failed", reason=str(exc))
        logger.error("district %s: %s", district_id, exc)
        _publish(summary)
        alert_flow_outcome(district_id, FLOW_NAME, "failed", str(exc))
        return Failed(message=str(exc), data=summary)
    _publish(summary)
    logger.info("district %s: %s", district_id, summary["reason"])
    return Completed(message=summary["reason"], data=summary)


def check_mapping_change(
    action: str, school_id: str | None, merge_school_ids: list[str] | None
) -> None:
    """Raise ConfigurationError for a missing or invalid provider school id."""
    if not (school_id or "").strip():
        option = "the surviving school" if action == MERGE else "the new school"
        raise ConfigurationError(
            f"Name {option}'s provider id with school_id (--school or --into on the "
            "command line)."
        )
    for value in [school_id or "", *(merge_school_ids or ())]:
        check_provider_id(value)
    if action == MERGE and not [pid for pid in merge_school_ids or () if pid.strip()]:
        raise ConfigurationError(
            "Name at least one provider school id to merge; pass --merge ID."
        )


@task(name="add-school-mapping", **IO_TASK_OPTIONS)
@contain_errors
def save_new_school(
    district_id: str,
    school_id: str,
    portal_school_id: int | None,
    school_name: str | None,
    by: str,
    reason: str,
) -> AddedSchool:
    """Map the new provider school id and add it to the regular rules; audited."""
    with store_errors():
        load_integration(get_engine(), district_id)
        with get_engine().begin() as connection:
            return add_school(
                connection,
                district_id,
                school_id.strip(),
                portal_school_id=portal_school_id,
                name=school_name,
                changed_by=by,
                reason=reason or None,
                now=utc_now(),
            )


def _added_message(district_id: str, added: AddedSchool) -> str:
    target = (
        f"new portal school {added.portal_school_id}"
        if added.created
        else f"portal school {added.portal_school_id}"
    )
    rules = (
        f"added to rule set {added.rule_set}"
        if added.added_to_rules
        else f"shared by rule set {added.rule_set}, which shares every school"
    )
    return (
        f"School {shown_id(added.provider_school_id)} of district {district_id} maps "
        f"to {target} and is {rules}; the next sync brings its people."
    )


@task(name="merge-campuses", **IO_TASK_OPTIONS)
@contain_errors
def merge_campuses(
    district_id: str,
    merge_school_ids: list[str],
    into_school_id: str,
    by: str,
    reason: str,
    dry_run: bool,
    flow_run_id: str | None,
) -> dict[str, Any]:
    """Plan the merge and, unless a dry run, apply it as one run; return its summary."""
    engine = get_engine()
    with store_errors():
        load_integration(engine, district_id)
        with engine.connect() as connection:
            plan = plan_merge(
                connection, district_id, merge_school_ids, into_school_id.strip()
            )
        if dry_run:
            return _merge_summary(
                plan,
                f"Dry run: merging into school {shown_id(plan.into_school_id)} "
                f"(portal school {plan.into_portal_id}) would move "
                f"{_moved(plan.counts())}; nothing was written.",
            )
        run_id = start_run(engine, district_id, FLOW_NAME, flow_run_id=flow_run_id)
        try:
            with engine.begin() as connection:
                # Planned again under the district's lock, so that a merge that
                # committed in the meantime is seen.
                lock_district(connection, district_id)
                plan = plan_merge(
                    connection, district_id, merge_school_ids, into_school_id.strip()
                )
                message = (
                    f"Merged into school {shown_id(plan.into_school_id)} (portal "
                    f"school {plan.into_portal_id}): moved {_moved(plan.counts())}, "
                    "and no account was archived. Undo with `rostersync runs undo "
                    f"{run_id} --by NAME --reason TEXT`."
                )
                apply_merge(
                    connection,
                    plan,
                    run_id,
                    changed_by=by,
                    reason=reason or None,
                    now=utc_now(),
                )
                _finish(connection, run_id, "completed", message, plan.counts())
        except Exception as exc:
            failure = (
                str(exc)
                if isinstance(exc, RostersyncError)
                else "The merge failed and was rolled back; nothing moved."
            )
            with engine.begin() as connection:
                _finish(connection, run_id, "failed", failure, None)
            raise
        summary = _merge_summary(plan, message)
        summary["run_id"] = run_id
        return summary


def _merge_summary(plan: MergePlan, message: str) -> dict[str, Any]:
    return {
        "status": "completed",
        "school_id": plan.into_school_id,
        "portal_school_id": plan.into_portal_id,
        "merged": plan.merged,
        "moved": plan.counts(),
        "reason": message,
    }


def _moved(counts: dict[str, int]) -> str:
    return (
        f"{_count(counts['students'], 'student')}, "
        f"{_count(counts['educators'], 'educator')} and "
        f"{_count(counts['sections'], 'section')} of "
        f"{_count(counts['schools'], 'school')}"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _finish(
    connection: Any,
    run_id: str,
    status: str,
    message: str,
    counts: dict[str, int] | None,
) -> None:
    finish_run(
        connection,
        run_id,
        status=status,
        reason=message,
        counts=_run_counts(counts) if counts else {},
        findings=[],
        quarantined=0,
        timings={},
        store_version=None,
    )


def _run_counts(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Return a merge's figures in a sync run's shape: per entity and action."""
    return {
        "students": {"updated": counts["students"]},
        "educators": {"updated": counts["educators"]},
        "sections": {"updated": counts["sections"]},
        "schools": {"archived": counts["schools"]},
    }


def _publish(summary: dict[str, Any]) -> None:
    title = f"School mapping change of district {summary['district_id']}"
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in summary.items()]
    create_markdown_artifact(markdown="\n".join(lines) + "\n", description=title)
