"""Task that runs the great-expectations checks on a pull before any write."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from rostersync.checks import CheckReport, check_roster
from rostersync.planning import StoreSnapshot
from rostersync.roster import ACTIVE, Roster
from rostersync.store.districts import IntegrationConfig
from tasks.options import TASK_OPTIONS, contain_errors


@task(name="validate-roster", **TASK_OPTIONS)
@contain_errors
def validate_roster(
    roster: Roster, integration: IntegrationConfig, store: StoreSnapshot
) -> CheckReport:
    """Check the pull; return the findings and the pull without quarantined records."""
    shared = integration.shared_school_ids
    report = check_roster(
        roster,
        store_active_users=store.active_users,
        shared_school_ids=set(shared) if shared else None,
        known_section_ids=_known_ids(roster, "sections", store.sections),
        known_user_ids=_known_ids(roster, "users", store.users),
        known_school_ids=_active_school_ids(store),
        store_active=store.active_counts(),
    )
    get_run_logger().info(
        "district %s: %d blocking findings, %d records quarantined, %d warnings",
        integration.district_id,
        len(report.blocking),
        report.quarantined_count,
        sum(1 for f in report.findings if f.level == "warning"),
    )
    return report


def _known_ids(roster: Roster, entity: str, stored: pd.DataFrame) -> set[str]:
    """Return the stored ids an enrollment of the pull may name besides the pull's.

    A delta carries only what changed, so its enrollments may name the store's
    active sections and users. A bulk pull carries every shared record, so an
    enrollment naming one it lacks is missing its section or user.
    """
    if roster.modes.get(entity, "bulk") == "bulk":
        return set()
    active = stored.loc[(stored["status"] == ACTIVE).fillna(False), "provider_id"]
    return set(active.dropna())


def _active_school_ids(store: StoreSnapshot) -> set[str]:
    """Return the provider ids of the store's active schools and merged campuses."""
    schools = store.schools
    active = schools.loc[(schools["status"] == ACTIVE).fillna(False), "provider_id"]
    return set(active.dropna()) | set(store.aliases)
