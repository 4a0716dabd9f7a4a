"""The mass-removal guard: a sudden large drop is held for a person to decide."""

from __future__ import annotations

from dataclasses import dataclass, field

from rostersync.planning import Plan, removal_threshold


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
        f"{threshold} for {active_users} active users, so nothing was written. "
        "Check the district's shared data; when the removals are expected, raise "
        "the threshold for one run with `rostersync district update ID "
        "--removal-threshold N` and set it back with `--removal-threshold default`."
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
