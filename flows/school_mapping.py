"""Change a district's school mapping: add a new school, or merge campuses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.alerts import Alert
from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.roster import UNSAFE_ID_CHARACTERS, shown_id
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import load_integration
from rostersync.store.mapping import AddedSchool, add_school, apply_merge, plan_merge
from rostersync.store.runs import finish_run, start_run, utc_now
from tasks.alert import send_alert_task
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
        _check_ids([school_id or "", *(merge_school_ids or ())], action)
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
                    _flow_run_id(),
                )
            )
    except RostersyncError as exc:
        summary.update(status="failed", reason=str(exc))
        logger.error("district %s: %s", district_id, exc)
        _publish(summary)
        send_alert_task(
            Alert(
                district_id=district_id,
                flow_name=FLOW_NAME,
                status="failed",
                reason=str(exc),
                flow_run_id=_flow_run_id(),
            )
        )
        return Failed(message=str(exc), data=summary)
    _publish(summary)
    logger.info("district %s: %s", district_id, summary["reason"])
    return Completed(message=summary["reason"], data=summary)


def _check_ids(ids: list[str], action: str) -> None:
    if not ids[0].strip():
        option = "the surviving school" if action == MERGE else "the new school"
        raise ConfigurationError(
            f"Name {option}'s provider id with school_id (--school on the command "
            "line)."
        )
    for value in ids:
        if len(value) > 300 or UNSAFE_ID_CHARACTERS.search(value):
            raise ConfigurationError(
                f"Provider school id {shown_id(value)!r} is invalid; use the id the "
                "provider shows, 1 to 300 characters without control characters."
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
        counts = plan.counts()
        moved = (
            f"{counts['students']} students, {counts['educators']} educators and "
            f"{counts['sections']} sections of {counts['schools']} schools"
        )
        summary: dict[str, Any] = {
            "school_id": plan.into_school_id,
            "portal_school_id": plan.into_portal_id,
            "merged": plan.merged,
            "moved": counts,
        }
        if dry_run:
            summary.update(
                status="completed",
                reason=(
                    f"Dry run: merging into school {shown_id(plan.into_school_id)} "
                    f"(portal school {plan.into_portal_id}) would move {moved}; "
                    "nothing was written."
                ),
            )
            return summary
        run_id = start_run(engine, district_id, FLOW_NAME, flow_run_id=flow_run_id)
        message = (
            f"Merged into school {shown_id(plan.into_school_id)} (portal school "
            f"{plan.into_portal_id}): moved {moved}; nobody was archived. Undo with "
            f"`rostersync runs undo {run_id} --by NAME --reason TEXT`."
        )
        try:
            with engine.begin() as connection:
                now = utc_now()
                apply_merge(
                    connection,
                    plan,
                    run_id,
                    changed_by=by,
                    reason=reason or None,
                    now=now,
                )
                finish_run(
                    connection,
                    run_id,
                    status="completed",
                    reason=message,
                    counts=_run_counts(counts),
                    findings=[],
                    quarantined=0,
                    timings={},
                    store_version=None,
                )
        except Exception:
            with engine.begin() as connection:
                finish_run(
                    connection,
                    run_id,
                    status="failed",
                    reason="The merge failed and was rolled back; nothing moved.",
                    counts={},
                    findings=[],
                    quarantined=0,
                    timings={},
                    store_version=None,
                )
            raise
        summary.update(status="completed", run_id=run_id, reason=message)
        return summary


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


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
