"""Task that runs the great-expectations checks on a pull before any write."""

from __future__ import annotations

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
        known_section_ids=set(store.sections["provider_id"].dropna()),
        known_user_ids=set(store.users["provider_id"].dropna()),
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


def _active_school_ids(store: StoreSnapshot) -> set[str]:
    """Return the provider ids of the store's active schools and merged campuses."""
    schools = store.schools
    active = schools.loc[(schools["status"] == ACTIVE).fillna(False), "provider_id"]
    return set(active.dropna()) | set(store.aliases)
