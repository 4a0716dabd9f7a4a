"""Tasks that pull a district's roster from its provider."""

from __future__ import annotations

from prefect import get_run_logger, task

from rostersync.roster import Roster
from rostersync.sources import read_roster
from rostersync.store.districts import IntegrationConfig
from tasks.options import IO_TASK_OPTIONS, contain_errors


@task(name="extract-roster", **IO_TASK_OPTIONS)
@contain_errors
def extract_roster(integration: IntegrationConfig, full_pull: bool = False) -> Roster:
    """Pull the district's shared roster into a Roster of column frames."""
    roster = read_roster(integration, full_pull=full_pull)
    get_run_logger().info(
        "district %s: pulled %d schools, %d users, %d sections, %d enrollments "
        "(%s); %s pull, %d requests, %d retries",
        integration.district_id,
        len(roster.schools),
        len(roster.users),
        len(roster.sections),
        len(roster.enrollments),
        ", ".join(f"{name} {mode}" for name, mode in roster.modes.items()),
        roster.pull.mode,
        roster.pull.requests,
        roster.pull.retries,
    )
    return roster
