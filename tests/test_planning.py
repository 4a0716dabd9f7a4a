"""Planning compares a pull with the store and lists what changes, per entity."""

from __future__ import annotations

import pandas as pd
import pytest

from rostersync.planning import (
    NEW_SCHOOL_PREFIX,
    StoreSnapshot,
    plan_changes,
    removal_threshold,
)
from rostersync.roster import (
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    USER_COLUMNS,
    Roster,
    frame_from_columns,
)


def student(provider_id: str, **values) -> dict:
    row = {
        "provider_id": provider_id,
        "kind": "student",
        "role": "student",
        "given_name": "Given",
        "family_name": "Family",
        "email": f"{provider_id}@school.invalid",
        "username": provider_id,
        "sis_id": provider_id,
        "grade": "03",
        "school_id": "sch-1",
        "school_ids": ("sch-1",),
        "status": "active",
    }
    row.update(values)
    return row


def frame(rows: list[dict], columns) -> pd.DataFrame:
    return frame_from_columns(
        {name: [row.get(name) for row in rows] for name in columns}, columns
    )


def roster(
    users: list[dict], enrollments: list[dict] | None = None, users_mode: str = "bulk"
) -> Roster:
    return Roster(
        schools=frame(
            [{"provider_id": "sch-1", "name": "One", "status": "active"}],
            SCHOOL_COLUMNS,
        ),
        users=frame(users, USER_COLUMNS),
        sections=frame(
            [{"provider_id": "sec-1", "school_id": "sch-1", "status": "active"}],
            SECTION_COLUMNS,
        ),
        enrollments=frame(enrollments or [], ENROLLMENT_COLUMNS),
        modes={
            "schools": "bulk",
            "users": users_mode,
            "sections": "bulk",
            "enrollments": "bulk",
        },
    )


def snapshot(users: list[dict], enrollments: list[dict] | None = None) -> StoreSnapshot:
    """Return a store that contains school sch-1 as portal school 7 and these users."""
    user_rows = []
    for number, row in enumerate(users, start=1):
        stored = {**row, "id": number, "school_id": "7", "school_ids": ("7",)}
        stored.setdefault("status", "active")
        user_rows.append(stored)
    store_users = frame(user_rows, ("id", *USER_COLUMNS))
    store_users["id"] = pd.array([row["id"] for row in user_rows], dtype="Int64")
    store_users["school_ids"] = pd.Series(
        [row["school_ids"] for row in user_rows], dtype=object
    )
    store_enrollments = frame(enrollments or [], ("id", *ENROLLMENT_COLUMNS))
    store_enrollments["id"] = pd.array(
        range(1, len(store_enrollments) + 1), dtype="Int64"
    )
    schools = frame(
        [{"id": "7", "provider_id": "sch-1", "name": "One", "status": "active"}],
        ("id", *SCHOOL_COLUMNS),
    )
    schools["id"] = pd.array([7], dtype="Int64")
    sections = frame(
        [{"id": "3", "provider_id": "sec-1", "school_id": "7", "status": "active"}],
        ("id", *SECTION_COLUMNS),
    )
    sections["id"] = pd.array([3], dtype="Int64")
    return StoreSnapshot(
        schools=schools,
        mapping={"sch-1": "7"},
        aliases=set(),
        users=store_users,
        sections=sections,
        enrollments=store_enrollments,
        store_version=4,
    )


def actions(plan, entity: str = "users") -> dict[str, str]:
    changes = plan.changes[entity]
    return dict(zip(changes["provider_id"], changes["action"], strict=True))


def test_new_user_is_created_with_new_school_placeholder():
    pulled = roster([student("u1", school_id="sch-2", school_ids=("sch-2",))])
    pulled.schools = frame(
        [{"provider_id": "sch-2", "name": "Two", "status": "active"}], SCHOOL_COLUMNS
    )

    plan = plan_changes("d", pulled, snapshot([]))

    users = plan.changes["users"]
    assert actions(plan) == {"u1": "create"}
    assert users["school_id"].iloc[0] == NEW_SCHOOL_PREFIX + "sch-2"
    assert users["school_ids"].iloc[0] == (NEW_SCHOOL_PREFIX + "sch-2",)


def test_identical_pull_plans_no_change():
    users = [student("u1"), student("u2")]

    plan = plan_changes("d", roster(users), snapshot(users))

    assert plan.is_empty
    assert plan.counts()["students"]["unchanged"] == 2


def test_changed_grade_is_an_update_naming_the_field():
    plan = plan_changes(
        "d", roster([student("u1", grade="04")]), snapshot([student("u1")])
    )

    users = plan.changes["users"]
    assert actions(plan) == {"u1": "update"}
    assert users["changed"].iloc[0] == ("grade",)
    assert users["before_grade"].iloc[0] == "03"


def test_missing_email_on_both_sides_is_unchanged():
    plan = plan_changes(
        "d", roster([student("u1", email=None)]), snapshot([student("u1", email=None)])
    )

    assert plan.is_empty


def test_user_missing_from_bulk_pull_is_archived():
    plan = plan_changes(
        "d", roster([student("u1")]), snapshot([student("u1"), student("u2")])
    )

    assert actions(plan) == {"u2": "archive"}
    assert plan.counts()["students"]["archived"] == 1


def test_user_missing_from_delta_pull_is_kept():
    plan = plan_changes(
        "d",
        roster([student("u1")], users_mode="delta"),
        snapshot([student("u1"), student("u2")]),
    )

    assert actions(plan) == {}


def test_tobedeleted_user_in_delta_pull_is_archived():
    plan = plan_changes(
        "d",
        roster([student("u2", status="tobedeleted")], users_mode="delta"),
        snapshot([student("u1"), student("u2")]),
    )

    assert actions(plan) == {"u2": "archive"}


def test_quarantined_user_is_never_archived():
    plan = plan_changes(
        "d",
        roster([student("u1")]),
        snapshot([student("u1"), student("u2")]),
        quarantined={"users": {"u2"}},
    )

    assert actions(plan) == {}


def test_archived_user_shared_again_is_restored():
    plan = plan_changes(
        "d",
        roster([student("u1")]),
        snapshot([student("u1", status="archived")]),
    )

    users = plan.changes["users"]
    assert actions(plan) == {"u1": "restore"}
    assert users["id"].iloc[0] == 1


def test_school_association_change_is_an_update():
    pulled = roster([student("u1", school_ids=("sch-1", "sch-9"))])
    pulled.schools = frame(
        [
            {"provider_id": "sch-1", "name": "One", "status": "active"},
            {"provider_id": "sch-9", "name": "Nine", "status": "active"},
        ],
        SCHOOL_COLUMNS,
    )

    plan = plan_changes("d", pulled, snapshot([student("u1")]))

    users = plan.changes["users"]
    assert users["changed"].iloc[0] == ("school_ids",)
    assert users["school_ids"].iloc[0] == ("7", NEW_SCHOOL_PREFIX + "sch-9")


def test_removed_enrollment_is_archived():
    enrollment = {"section_id": "sec-1", "user_id": "u1", "role": "student"}
    stored = [enrollment, {"section_id": "sec-1", "user_id": "u2", "role": "student"}]
    for row in stored:
        row["status"] = "active"

    plan = plan_changes(
        "d",
        roster([student("u1"), student("u2")], [{**enrollment, "status": "active"}]),
        snapshot([student("u1"), student("u2")], stored),
    )

    changes = plan.changes["enrollments"]
    assert changes["action"].tolist() == ["archive"]
    assert changes["user_id"].tolist() == ["u2"]
    assert plan.counts()["enrollments"]["unchanged"] == 1


def test_plan_counts_split_users_by_kind():
    teacher = student("t1", kind="educator", role="teacher", grade=None)

    plan = plan_changes("d", roster([student("u1"), teacher]), snapshot([]))

    counts = plan.counts()
    assert counts["students"]["created"] == 1
    assert counts["educators"]["created"] == 1


@pytest.mark.parametrize(
    ("active_users", "district_threshold", "expected"),
    [
        pytest.param(50, None, 10, id="floor-of-10"),
        pytest.param(1_000, None, 50, id="five-percent"),
        pytest.param(1_001, None, 51, id="five-percent-rounded-up"),
        pytest.param(1_000_000, None, 500, id="ceiling-of-500"),
        pytest.param(1_000_000, 3, 3, id="district-threshold-wins"),
        pytest.param(10, 0, 0, id="zero-holds-every-removal"),
    ],
)
def test_removal_threshold(active_users, district_threshold, expected):
    assert removal_threshold(active_users, district_threshold) == expected


def test_archived_user_enrollments_are_archived():
    kept = {
        "section_id": "sec-1",
        "user_id": "u1",
        "role": "student",
        "status": "active",
    }
    orphan = {
        "section_id": "sec-1",
        "user_id": "u2",
        "role": "student",
        "status": "active",
    }

    plan = plan_changes(
        "d",
        roster([student("u1")], [kept]),
        snapshot([student("u1"), student("u2")], [kept, orphan]),
        quarantined={"enrollments": {("sec-1", "u2", "student")}},
    )

    changes = plan.changes["enrollments"]
    assert changes["action"].tolist() == ["archive"]
    assert changes["user_id"].tolist() == ["u2"]


def test_quarantined_enrollment_protects_the_users_stored_enrollments():
    stored = {
        "section_id": "sec-1",
        "user_id": "u1",
        "role": "student",
        "status": "active",
    }

    plan = plan_changes(
        "d",
        roster([student("u1")], []),
        snapshot([student("u1")], [stored]),
        quarantined={"enrollments": {("sec-1", "u1", "wizard")}},
    )

    assert plan.changes["enrollments"].empty


def delta_roster(enrollments: list[dict], listed: frozenset[str]) -> Roster:
    """Return a delta of one section whose enrollments are listed in full."""
    pulled = roster([], enrollments)
    pulled.modes = dict.fromkeys(pulled.modes, "delta")
    pulled.full_enrollment_sections = listed
    return pulled


def stored_enrollments(*user_ids: str) -> list[dict]:
    return [
        {"section_id": "sec-1", "user_id": u, "role": "student", "status": "active"}
        for u in user_ids
    ]


def test_delta_section_listed_in_full_archives_missing_enrollments():
    kept = stored_enrollments("u1")

    plan = plan_changes(
        "d",
        delta_roster(kept, frozenset({"sec-1"})),
        snapshot([student("u1"), student("u2")], stored_enrollments("u1", "u2")),
    )

    changes = plan.changes["enrollments"]
    assert changes["action"].tolist() == ["archive"]
    assert changes["user_id"].tolist() == ["u2"]


def test_delta_section_not_listed_keeps_its_enrollments():
    plan = plan_changes(
        "d",
        delta_roster([], frozenset()),
        snapshot([student("u1"), student("u2")], stored_enrollments("u1", "u2")),
    )

    assert plan.changes["enrollments"].empty


def test_quarantined_section_listed_in_full_keeps_its_enrollments():
    plan = plan_changes(
        "d",
        delta_roster([], frozenset({"sec-1"})),
        snapshot([student("u1")], stored_enrollments("u1")),
        quarantined={"sections": {"sec-1"}},
    )

    assert plan.changes["enrollments"].empty


def test_archived_user_enrollment_not_restored():
    stored = stored_enrollments("u1", "u2")
    stored[1]["status"] = "archived"
    pulled = [{**row, "status": "active"} for row in stored]

    plan = plan_changes(
        "d",
        roster([student("u1")], pulled),
        snapshot([student("u1"), student("u2", status="archived")], stored),
    )

    assert plan.changes["enrollments"].empty
    assert plan.changes["users"].empty


def test_enrollment_of_a_section_leaving_is_not_created():
    pulled = roster([student("u1")], stored_enrollments("u1"))
    pulled.sections["status"] = "tobedeleted"

    plan = plan_changes("d", pulled, snapshot([student("u1")], []))

    assert plan.changes["enrollments"].empty
    assert plan.changes["sections"]["action"].tolist() == ["archive"]


def test_enrollment_follows_archived_user():
    plan = plan_changes(
        "d",
        roster([student("u1")], stored_enrollments("u1", "u2")),
        snapshot([student("u1"), student("u2")], stored_enrollments("u1", "u2")),
    )

    changes = plan.changes["enrollments"]
    assert changes["action"].tolist() == ["archive"]
    assert changes["user_id"].tolist() == ["u2"]
