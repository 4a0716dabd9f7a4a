"""Tasks that plan the changes and guard against mass removal."""

from __future__ import annotations

from prefect import get_run_logger, task

from rostersync.guard import GuardVerdict, check_removals
from rostersync.planning import Plan, StoreSnapshot, plan_changes
from rostersync.roster import Roster
from rostersync.store.districts import IntegrationConfig
from tasks.options import TASK_OPTIONS, contain_errors


@task(name="plan-changes", **TASK_OPTIONS)
@contain_errors
def plan_roster_changes(
    district_id: str,
    roster: Roster,
    store: StoreSnapshot,
    quarantined: dict[str, set],
) -> Plan:
    """Compare the checked roster with the store; return the plan."""
    plan = plan_changes(district_id, roster, store, quarantined)
    counts = plan.counts()
    get_run_logger().info(
        "district %s: plan %s",
        district_id,
        "; ".join(
            f"{entity} +{c['created']} ~{c['updated']} -{c['archived']} "
            f"^{c['restored']} ={c['unchanged']}"
            for entity, c in counts.items()
        ),
    )
    return plan


@task(name="guard-removals", **TASK_OPTIONS)
@contain_errors
def guard_removals(
    plan: Plan,
    integration: IntegrationConfig,
    store: StoreSnapshot,
    expected_removals: frozenset[str] = frozenset(),
) -> GuardVerdict:
    """Hold the plan when it archives more users than the district allows."""
    verdict = check_removals(
        plan,
        active_users=store.active_users,
        district_threshold=integration.removal_threshold,
        expected_removals=expected_removals,
    )
    get_run_logger().info(
        "district %s: %d users to archive (%d counted), threshold %d, %s",
        integration.district_id,
        verdict.archived_users,
        verdict.counted_users,
        verdict.threshold,
        "held" if verdict.held else "allowed",
    )
    return verdict
