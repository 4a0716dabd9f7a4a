"""The mass-removal guard: a sudden large drop is held for a person to decide."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from rostersync.planning import Plan, removal_threshold
from rostersync.roster import ACTIVE, TO_BE_DELETED, Roster


@dataclass(frozen=True)
class GuardVerdict:
    """Whether a plan may be applied, and the figures behind the decision."""

    held: bool
    archived_users: int
    counted_users: int
    threshold: int
    reason: str | None = None
    by_role_school: list[dict[str, object]] = field(default_factory=list)


def check_removals(
    plan: Plan,
    *,
    active_users: int,
    district_threshold: int | None,
    expected_removals: frozenset[str] = frozenset(),
) -> GuardVerdict:
    """Hold the plan when it archives more users than the district's threshold.

    Users in ``expected_removals`` (provider ids a flow declared as leaving, such as
    summer-only students) do not count against the threshold. A user who changes
    between student and educator counts too, because a swapped column can turn
    every student into a teacher as silently as a lost file archives them.
    """
    archived = plan.archived_users()
    counted = archived[~archived["provider_id"].isin(expected_removals)]
    switched = plan.kind_changes()
    threshold = removal_threshold(active_users, district_threshold)
    breakdown = _by_role_and_school(counted)
    total = len(counted) + len(switched)
    if total <= threshold:
        return GuardVerdict(False, len(archived), total, threshold, None, breakdown)
    reason = (
        f"The plan archives {len(counted)} users and switches {len(switched)} "
        f"between student and educator, {total} in all, more than the threshold of "
        f"{threshold} for {active_users} active users, so nothing was written and "
        "the plan is stored. Check the district's shared data, then approve the "
        "plan if the removals are expected, or reject it, in the Prefect UI or "
        "with `rostersync runs approve RUN_ID --by NAME --reason TEXT` (or `runs "
        "reject`); `rostersync runs list --status held` gives RUN_ID."
    )
    return GuardVerdict(True, len(archived), total, threshold, reason, breakdown)


def _by_role_and_school(archived) -> list[dict[str, object]]:
    if archived.empty:
        return []
    school = archived["school_id"].astype("string").fillna("none")
    grouped = archived.assign(school=school).groupby(["role", "school"]).size()
    return [
        {"role": role, "school_id": school_id, "users": int(count)}
        for (role, school_id), count in grouped.items()
    ]


def data_manager_missing(
    roster: Roster, data_manager_id: str | None, store_users: pd.DataFrame
) -> bool:
    """Return True when the pull shows that the data manager is no longer shared.

    A full pull must contain the data manager as an active user. A delta names
    only the users who changed, so there the data manager is missing when the
    delta removes them, or when they are neither in it nor active in the store.
    """
    if not data_manager_id:
        return False
    users = roster.users
    rows = users[users["provider_id"] == data_manager_id]
    removed = (rows["status"] == TO_BE_DELETED).fillna(False)
    present = bool(len(rows)) and not bool(removed.all())
    if roster.modes.get("users", "bulk") == "bulk" or present or bool(removed.any()):
        return not present
    stored = store_users[store_users["provider_id"] == data_manager_id]
    return not bool((stored["status"] == ACTIVE).fillna(False).any())
