"""The fingerprint that distinguishes an unchanged full pull from a changed one."""

from __future__ import annotations

import pandas as pd

from rostersync.fingerprint import roster_fingerprint
from rostersync.roster import USER_COLUMNS, Roster, empty_roster, frame_from_columns


def roster_of(user_ids: list[str], grades: list[str] | None = None) -> Roster:
    roster = empty_roster()
    roster.users = frame_from_columns(
        {
            "provider_id": user_ids,
            "kind": ["student"] * len(user_ids),
            "role": ["student"] * len(user_ids),
            "grade": grades or ["05"] * len(user_ids),
            "school_ids": [("s1",)] * len(user_ids),
        },
        USER_COLUMNS,
    )
    return roster


def test_page_order_does_not_change_the_fingerprint():
    assert roster_fingerprint(roster_of(["a", "b"])) == roster_fingerprint(
        roster_of(["b", "a"])
    )


def test_changed_grade_changes_the_fingerprint():
    assert roster_fingerprint(roster_of(["a"], ["05"])) != roster_fingerprint(
        roster_of(["a"], ["06"])
    )


def test_other_sharing_rules_change_the_fingerprint():
    roster = roster_of(["a"])

    assert roster_fingerprint(roster, frozenset({"s1"})) != roster_fingerprint(roster)


def test_delta_pull_has_no_fingerprint():
    roster = roster_of(["a"])
    roster.modes = {**roster.modes, "users": "delta"}

    assert roster_fingerprint(roster) is None


def test_missing_value_differs_from_empty_text():
    roster = roster_of(["a"])
    other = roster_of(["a"])
    other.users["email"] = pd.Series(["x"], dtype="string")

    assert roster_fingerprint(roster) != roster_fingerprint(other)
