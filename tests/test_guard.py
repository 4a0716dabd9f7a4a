"""The mass-removal guard holds plans that archive or switch too many users."""

from __future__ import annotations

from rostersync.guard import check_removals
from rostersync.planning import plan_changes
from tests.test_planning import roster, snapshot, student

STORED = [student(f"u{number}") for number in range(1, 7)]


def test_removals_within_threshold_pass():
    plan = plan_changes("d", roster(STORED[:4]), snapshot(STORED))

    verdict = check_removals(plan, active_users=6, district_threshold=2)

    assert verdict.held is False
    assert verdict.counted_users == 2


def test_removals_above_threshold_are_held():
    plan = plan_changes("d", roster(STORED[:3]), snapshot(STORED))

    verdict = check_removals(plan, active_users=6, district_threshold=2)

    assert verdict.held is True
    assert verdict.counted_users == 3
    assert "archives 3 users" in (verdict.reason or "")


def test_expected_removals_do_not_count():
    plan = plan_changes("d", roster(STORED[:3]), snapshot(STORED))

    verdict = check_removals(
        plan,
        active_users=6,
        district_threshold=2,
        expected_removals=frozenset({"u4", "u5"}),
    )

    assert verdict.held is False
    assert verdict.archived_users == 3
    assert verdict.counted_users == 1


def test_students_turned_educators_count_against_threshold():
    teachers = [
        {**row, "kind": "educator", "role": "teacher", "grade": None} for row in STORED
    ]
    plan = plan_changes("d", roster(teachers), snapshot(STORED))

    verdict = check_removals(plan, active_users=6, district_threshold=2)

    assert verdict.held is True
    assert verdict.archived_users == 0
    assert verdict.counted_users == 6
    assert "switches 6 between student and educator" in (verdict.reason or "")


def test_breakdown_names_role_and_school_ids_only():
    plan = plan_changes("d", roster(STORED[:3]), snapshot(STORED))

    verdict = check_removals(plan, active_users=6, district_threshold=2)

    assert verdict.by_role_school == [{"role": "student", "school_id": "7", "users": 3}]
