"""Onboard a district's summer school and switch it to the summer sharing rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.results import SyncResult
from rostersync.roster import (
    TO_BE_DELETED,
    Roster,
    short_id,
    shown_id,
)
from rostersync.rules import check_provider_id
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import IntegrationConfig
from rostersync.store.rules import (
    SUMMER_SET_NAME,
    Onboarded,
    SummerProgram,
    onboard_summer_school,
)
from rostersync.store.runs import utc_now
from tasks.alert import alert_flow_outcome
from tasks.extract import extract_roster
from tasks.options import IO_TASK_OPTIONS, contain_errors
from tasks.store import load_district_integration

FLOW_NAME = "summer-school-onboarding"
# Providers where the district shares a school before the product adds it.
SHARE_FIRST_PROVIDERS = ("oneroster-rest", "oneroster-csv")
# The length of schools.name.
MAX_NAME = 300

Text = Annotated[str, Field(min_length=1, max_length=300, pattern=r"\S")]
Operator = Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")]
SetName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
]


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def summer_school_onboarding(
    district_id: str,
    school_id: Text,
    school_name: Text,
    start_date: date,
    end_date: date,
    by: Operator,
    schools: list[str] | None = None,
    sections: list[str] | None = None,
    summer_roster: str | None = None,
    revert_on: date | None = None,
    rule_set_name: SetName = SUMMER_SET_NAME,
    reason: str = "",
) -> State:
    """Enroll a summer school, share it through a custom rule set, and sync it.

    ``school_id`` is the summer school's provider id. ``schools`` and ``sections``
    are the provider ids the custom set shares besides the summer school; left
    empty, it shares the regular set's schools too. ``summer_roster`` is a
    OneRoster CSV folder or zip with the program's roster, for a district whose SIS
    data is frozen. The custom set is in force from ``start_date`` until the
    revert-sharing-rules flow switches the district back to its regular set, on
    ``revert_on`` (by default the day after ``end_date``). A program that starts
    later than the district's local date is synced from its start date.

    A OneRoster (ClassLink) district must share the summer school before it is
    added; otherwise the run fails and changes nothing. For Clever the school is
    added and a share request is recorded, fulfilled once its data arrives.
    """
    logger = get_run_logger()
    summary: dict[str, Any] = {"district_id": district_id, "school_id": school_id}
    try:
        program = check_program(
            district_id,
            school_id,
            school_name,
            start_date,
            end_date,
            revert_on,
            rule_set_name,
            schools,
            sections,
            summer_roster,
        )
        integration = load_district_integration(district_id)
        if program.extra_source:
            check_summer_roster(program.extra_source, program.school_id)
        if integration.provider in SHARE_FIRST_PROVIDERS:
            check_school_shared(integration, program.school_id)
        onboarded = save_onboarding(program, integration.provider, by, reason)
    except RostersyncError as exc:
        logger.error("district %s: %s", district_id, exc)
        summary["status"] = "failed"
        summary["reason"] = str(exc)
        _publish(summary)
        alert_flow_outcome(district_id, FLOW_NAME, "failed", str(exc))
        return Failed(message=str(exc), data=summary)

    summary.update(
        portal_school_id=onboarded.portal_school_id,
        school_created=onboarded.school_created,
        rule_set=onboarded.rule_set.label,
        window=f"{program.start} to {program.revert_on - timedelta(days=1)}",
        revert_on=program.revert_on.isoformat(),
    )
    today = datetime.now(ZoneInfo(integration.timezone)).date()
    # Before the program starts the regular set is in force, and the next daily
    # sync would archive what a sync under the custom set brought in now.
    sync = _sync_summer_school(district_id, program) if program.start <= today else None
    share = "not needed"
    if onboarded.share_request is not None:
        fulfilled = sync.share_requests.get("fulfilled", []) if sync else []
        share = (
            "fulfilled"
            if program.school_id in fulfilled or onboarded.share_request == "fulfilled"
            else "pending"
        )
    summary.update(
        share_request=share,
        sync_status=sync.status if sync else "not run before the start date",
        sync_run_id=sync.run_id if sync else None,
        sync_reason=sync.reason if sync else None,
        counts=sync.counts if sync else {},
    )
    summary["status"] = "completed" if sync is None else sync.status
    message = _message(program, onboarded, share, sync, integration.timezone)
    summary["reason"] = message
    _publish(summary)
    logger.info("district %s: %s", district_id, message)
    if share == "pending":
        run_id = sync.run_id if sync else None
        alert_flow_outcome(district_id, FLOW_NAME, "share-pending", message, run_id)
    if sync is not None and sync.status == "failed":
        return Failed(message=message, data=summary)
    return Completed(message=message, data=summary)


# Dates outside these years are typing mistakes, and date arithmetic near
# 9999-12-31 overflows.
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)


def check_program(
    district_id: str,
    school_id: str,
    school_name: str,
    start: date,
    end: date,
    revert_on: date | None,
    set_name: str,
    schools: list[str] | None,
    sections: list[str] | None,
    summer_roster: str | None,
) -> SummerProgram:
    """Check the parameters and return the program; raise ConfigurationError.

    A relative ``summer_roster`` path is made absolute here, because every later
    sync reads it, from whatever folder its process runs in.
    """
    school_id = school_id.strip()
    for value in [school_id, *(schools or ()), *(sections or ())]:
        check_provider_id(value)
    name = school_name.strip()
    if not name or len(name) > MAX_NAME:
        raise ConfigurationError(
            f"The summer school's name has {len(name)} characters; give it 1 to "
            f"{MAX_NAME}."
        )
    for label, day in (("start", start), ("end", end), ("revert", revert_on)):
        if day is not None and not EARLIEST <= day <= LATEST:
            raise ConfigurationError(
                f"The {label} date {day} is out of range; use a date from "
                f"{EARLIEST} to {LATEST}."
            )
    if end < start:
        raise ConfigurationError(
            f"The program ends on {end}, before it starts on {start}; pass the start "
            "date first."
        )
    revert = revert_on or end + timedelta(days=1)
    if revert <= start:
        raise ConfigurationError(
            f"The revert date {revert} is not after the program's start {start}; "
            "pick a day after the program ends, such as "
            f"{end + timedelta(days=1)}."
        )
    if set_name == "regular":
        raise ConfigurationError(
            "The custom rule set cannot be named 'regular', which is the school "
            "year's set; use a name such as 'summer'."
        )
    roster = None
    if summer_roster and summer_roster.strip():
        path = Path(summer_roster.strip()).expanduser().resolve()
        if not path.exists():
            raise ConfigurationError(
                f"The summer roster {short_id(str(path))} does not exist; pass the "
                "path of a OneRoster CSV folder or zip."
            )
        roster = str(path)
    return SummerProgram(
        district_id=district_id,
        school_id=school_id,
        school_name=name,
        start=start,
        end=end,
        revert_on=revert,
        set_name=set_name,
        school_ids=frozenset(s.strip() for s in schools or ()),
        section_ids=frozenset(s.strip() for s in sections or ()),
        extra_source=roster,
    )


@task(name="check-summer-roster", **IO_TASK_OPTIONS)
@contain_errors
def check_summer_roster(source: str, school_id: str) -> None:
    """Read the summer roster file; raise unless it has users of the school."""
    from rostersync.readers.oneroster_csv import read_oneroster_csv

    roster = read_oneroster_csv(source)
    users = roster.users["school_ids"].map(
        lambda ids: isinstance(ids, tuple) and school_id in ids
    )
    if not bool(users.any()):
        raise ConfigurationError(
            f"The summer roster has no users of school {shown_id(school_id)}; check "
            "that its orgSourcedIds name the summer school's provider id. Nothing "
            "was changed."
        )


@task(name="check-school-shared", **IO_TASK_OPTIONS)
@contain_errors
def check_school_shared(integration: IntegrationConfig, school_id: str) -> None:
    """Raise unless the provider already shares the school (ClassLink order)."""
    roster = extract_roster.fn(integration, True)
    if not _has_school(roster, school_id):
        raise ConfigurationError(
            f"ClassLink does not share school {shown_id(school_id)} with the product "
            f"yet, so district {integration.district_id} was not changed. Ask the "
            "district to share the summer school with the product in ClassLink "
            "first, then run the onboarding again."
        )


def _has_school(roster: Roster, school_id: str) -> bool:
    schools = roster.schools
    present = schools[(schools["status"] != TO_BE_DELETED).fillna(True)]
    return bool((present["provider_id"] == school_id).any())


@task(name="save-onboarding", **IO_TASK_OPTIONS)
@contain_errors
def save_onboarding(
    program: SummerProgram, provider: str, by: str, reason: str
) -> Onboarded:
    """Write the summer school, its mapping, the custom set and a share request."""
    with store_errors(), get_engine().begin() as connection:
        return onboard_summer_school(
            connection,
            program,
            provider=provider,
            changed_by=by,
            reason=reason or None,
            now=utc_now(),
        )


def _sync_summer_school(district_id: str, program: SummerProgram) -> SyncResult:
    from flows.daily_sync import daily_sync

    state = daily_sync(
        district_id=district_id,
        full_pull=True,
        wait_for_approval=False,
        limit_to_schools=[program.school_id],
        rule_set=program.set_name,
        return_state=True,
    )
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, SyncResult):
        return outcome
    return SyncResult(
        district_id=district_id,
        status="failed",
        reason=f"The summer school's sync ended in state {state.type.value}.",
    )


def _message(
    program: SummerProgram,
    onboarded: Onboarded,
    share: str,
    sync: SyncResult | None,
    timezone: str,
) -> str:
    school = short_id(program.school_id)
    if onboarded.school_created:
        enrolled = (
            f"Summer school {school} was enrolled as portal school "
            f"{onboarded.portal_school_id}."
        )
    else:
        enrolled = (
            f"Portal school {onboarded.portal_school_id}, to which school {school} "
            "maps, was flagged as a summer school."
        )
    parts = [
        enrolled,
        f"Rule set {onboarded.rule_set.label} shares {_shared(onboarded)}, and is in "
        f"force from {program.start} ({timezone}) until the district reverts on "
        f"{program.revert_on}.",
    ]
    if sync is None:
        parts.append(
            "The school's records arrive with the first daily sync on or after "
            f"{program.start}, when the rule set comes into force."
        )
    else:
        reason = (sync.reason or "").rstrip()
        if reason and not reason.endswith("."):
            reason += "."
        parts.append(f"The school's sync ended {sync.status}. {reason}".rstrip())
    if share == "pending":
        parts.append(
            f"The share request for school {short_id(program.school_id)} is pending: "
            "ask the district to share it with the product in Clever; the daily "
            "sync marks it fulfilled when its data arrives."
        )
    return " ".join(parts)


def _shared(onboarded: Onboarded) -> str:
    """Describe what the custom set shares, by ids."""
    rule_set = onboarded.rule_set
    schools = (
        f"schools {', '.join(short_id(s) for s in sorted(rule_set.school_ids))}"
        if rule_set.school_ids
        else "every school"
    )
    if not rule_set.section_ids:
        return schools
    sections = ", ".join(short_id(s) for s in sorted(rule_set.section_ids))
    return f"{schools} and sections {sections}"


def _publish(summary: dict[str, Any]) -> None:
    lines = [f"# Summer school onboarding of district {summary['district_id']}", ""]
    lines += [
        f"- **{key}**: {value}" for key, value in summary.items() if key != "counts"
    ]
    counts = summary.get("counts") or {}
    if counts:
        lines += [
            "",
            "| entity | created | updated | archived | restored | unchanged |",
            "|---|---|---|---|---|---|",
        ]
        for entity, figures in counts.items():
            actions = ("created", "updated", "archived", "restored", "unchanged")
            values = " | ".join(str(figures.get(action, 0)) for action in actions)
            lines.append(f"| {entity} | {values} |")
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        description=f"Summer school onboarding of district {summary['district_id']}",
    )
