"""Sharing rules on a pull, a pull limited to schools, and a second source."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from rostersync.planning import StoreSnapshot
from rostersync.roster import (
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    TO_BE_DELETED,
    USER_COLUMNS,
    Roster,
    frame_from_columns,
)
from rostersync.rules import (
    CUSTOM,
    REGULAR,
    RuleSet,
    apply_sharing_rules,
    limit_to_schools,
    merge_second_source,
    set_in_force,
)


def roster(
    schools: list[str],
    users: list[tuple[str, str, tuple[str, ...], str]],
    sections: list[tuple[str, str]],
    enrollments: list[tuple[str, str, str]],
    mode: str = "bulk",
) -> Roster:
    """A roster from (id, kind, schools, grade) users and (id, school) sections."""
    built = Roster(
        schools=frame_from_columns(
            {"provider_id": schools, "name": [f"School {s}" for s in schools],
             "status": ["active"] * len(schools)},
            SCHOOL_COLUMNS,
        ),
        users=frame_from_columns(
            {"provider_id": [u[0] for u in users], "kind": [u[1] for u in users],
             "role": [u[1] for u in users], "school_id": [u[2][0] for u in users],
             "school_ids": [u[2] for u in users], "grade": [u[3] for u in users],
             "given_name": [f"G{u[0]}" for u in users],
             "status": ["active"] * len(users)},
            USER_COLUMNS,
        ),
        sections=frame_from_columns(
            {"provider_id": [s[0] for s in sections],
             "school_id": [s[1] for s in sections],
             "status": ["active"] * len(sections)},
            SECTION_COLUMNS,
        ),
        enrollments=frame_from_columns(
            {"section_id": [e[0] for e in enrollments],
             "user_id": [e[1] for e in enrollments],
             "role": [e[2] for e in enrollments],
             "status": ["active"] * len(enrollments)},
            ENROLLMENT_COLUMNS,
        ),
    )  # fmt: skip
    built.modes = dict.fromkeys(built.modes, mode)
    return built


def summer_roster(mode: str = "bulk") -> Roster:
    return roster(
        ["a", "b", "s"],
        [
            ("u-a", "student", ("a",), "03"),
            ("u-b", "student", ("b",), "04"),
            ("u-s", "student", ("s",), "05"),
            ("u-as", "student", ("a", "s"), "06"),
            ("t-s", "educator", ("s",), ""),
        ],
        [("sec-a", "a"), ("sec-s", "s")],
        [
            ("sec-a", "u-a", "student"),
            ("sec-s", "u-s", "student"),
            ("sec-s", "u-as", "student"),
            ("sec-s", "t-s", "teacher"),
        ],
        mode,
    )


def ids(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["provider_id"])


REGULAR_EVERY = RuleSet("regular", 1)


def test_regular_set_leaves_out_summer_only_users():
    kept, _ = apply_sharing_rules(summer_roster(), REGULAR_EVERY, {"s"})

    assert ids(kept.users) == ["u-a", "u-as", "u-b"]


def test_regular_set_drops_summer_school_of_user():
    kept, _ = apply_sharing_rules(summer_roster(), REGULAR_EVERY, {"s"})

    both = kept.users[kept.users["provider_id"] == "u-as"].iloc[0]
    assert both["school_ids"] == ("a",)


def test_regular_set_drops_summer_sections():
    kept, rules = apply_sharing_rules(summer_roster(), REGULAR_EVERY, {"s"})

    assert ids(kept.sections) == ["sec-a"]
    assert len(kept.enrollments) == 1
    assert rules.left_out == {"schools": 1, "users": 2, "sections": 1, "enrollments": 3}


def test_custom_set_keeps_summer_school():
    custom = RuleSet("summer", 1, kind=CUSTOM)

    kept, _ = apply_sharing_rules(summer_roster(), custom, {"s"})

    assert ids(kept.users) == ["t-s", "u-a", "u-as", "u-b", "u-s"]


def test_listed_schools_share_only_those():
    listed = RuleSet("regular", 2, school_ids=frozenset({"b"}))

    kept, rules = apply_sharing_rules(summer_roster(), listed, set())

    assert ids(kept.users) == ["u-b"]
    assert rules.shared_school_ids == frozenset({"b"})


def test_shared_section_brings_members_only():
    listed = RuleSet("summer", 1, kind=CUSTOM, school_ids=frozenset({"b"}),
                     section_ids=frozenset({"sec-s"}))  # fmt: skip

    kept, _ = apply_sharing_rules(summer_roster(), listed, set())

    assert ids(kept.users) == ["t-s", "u-as", "u-b", "u-s"]


def test_delta_marks_outside_records_deleted():
    kept, _ = apply_sharing_rules(summer_roster("delta"), REGULAR_EVERY, {"s"})

    removed = kept.users[kept.users["status"] == TO_BE_DELETED]
    assert ids(removed) == ["t-s", "u-s"]


def test_user_without_school_stays():
    pulled = roster(["a"], [("u-x", "student", ("zz",), "03")], [], [])

    kept, _ = apply_sharing_rules(pulled, REGULAR_EVERY, set())

    assert ids(kept.users) == ["u-x"]


def test_custom_set_in_force_inside_its_window():
    custom = RuleSet("summer", 1, kind=CUSTOM, valid_from=date(2026, 6, 20),
                     valid_to=date(2026, 7, 31))  # fmt: skip

    chosen = set_in_force([REGULAR_EVERY, custom], date(2026, 7, 31))

    assert chosen.label == "summer@1"


def test_custom_set_past_its_window_stays_until_reverted():
    custom = RuleSet("summer", 1, kind=CUSTOM, valid_from=date(2026, 6, 20),
                     valid_to=date(2026, 7, 31))  # fmt: skip

    chosen = set_in_force([REGULAR_EVERY, custom], date(2026, 8, 3))

    assert (chosen.label, chosen.is_overdue(date(2026, 8, 3))) == ("summer@1", True)


def test_regular_set_after_reversion():
    custom = RuleSet("summer", 2, kind=CUSTOM, valid_from=date(2026, 6, 20),
                     reverted_at=datetime(2026, 8, 1, tzinfo=UTC))  # fmt: skip

    chosen = set_in_force([REGULAR_EVERY, custom], date(2026, 7, 1))

    assert chosen.kind == REGULAR


def test_regular_set_in_force_before_the_window():
    custom = RuleSet("summer", 1, kind=CUSTOM, valid_from=date(2026, 6, 20))

    chosen = set_in_force([REGULAR_EVERY, custom], date(2026, 6, 19))

    assert chosen.kind == REGULAR


# Limited pulls


def snapshot(users: list[tuple[str, tuple[str, ...]]], sections: list[tuple[str, str]]):
    mapping = {"a": "1", "b": "2", "s": "3"}
    return StoreSnapshot(
        schools=pd.DataFrame(columns=["id", "provider_id", "name", "sis_id", "status"]),
        mapping=mapping,
        aliases=set(),
        users=pd.DataFrame(
            {"provider_id": [u[0] for u in users], "status": ["active"] * len(users),
             "school_ids": [tuple(mapping[s] for s in u[1]) for u in users]}
        ),
        sections=pd.DataFrame(
            {"provider_id": [s[0] for s in sections],
             "school_id": [mapping[s[1]] for s in sections],
             "status": ["active"] * len(sections)}
        ),
        enrollments=pd.DataFrame(columns=["section_id", "user_id", "role", "status"]),
    )  # fmt: skip


def test_limited_pull_keeps_the_schools_users_only():
    store = snapshot([], [])

    limited = limit_to_schools(summer_roster(), store, ["s"])

    assert ids(limited.users) == ["t-s", "u-as", "u-s"]
    assert set(limited.modes.values()) == {"delta"}


def test_limited_pull_marks_departed_users():
    store = snapshot([("u-gone", ("s",)), ("u-a", ("a",))], [("sec-old", "s")])

    limited = limit_to_schools(summer_roster(), store, ["s"])

    removed = limited.users[limited.users["status"] == TO_BE_DELETED]
    assert ids(removed) == ["u-gone"]
    removed_sections = limited.sections[limited.sections["status"] == TO_BE_DELETED]
    assert ids(removed_sections) == ["sec-old"]


def test_limited_pull_carries_no_cursor():
    pulled = summer_roster()
    pulled.cursor = object()  # type: ignore[assignment]

    limited = limit_to_schools(pulled, snapshot([], []), ["s"])

    assert limited.cursor is None


def test_limited_pull_lists_full_enrollments_of_its_sections():
    limited = limit_to_schools(summer_roster(), snapshot([], []), ["s"])

    assert limited.full_enrollment_sections == frozenset({"sec-s"})


# A second source


def extra_roster() -> Roster:
    return roster(
        ["s"],
        [("x-1", "student", ("s",), "07"), ("u-a", "student", ("s",), "09")],
        [("sec-x", "s")],
        [("sec-x", "x-1", "student"), ("sec-x", "u-a", "student")],
    )


def test_second_source_adds_its_users():
    merged, _ = merge_second_source(summer_roster(), extra_roster(), "s", "Summer")

    assert "x-1" in set(merged.users["provider_id"])


def test_second_source_conflict_keeps_the_providers_value():
    merged, findings = merge_second_source(
        summer_roster(), extra_roster(), "s", "Summer"
    )

    user = merged.users[merged.users["provider_id"] == "u-a"].iloc[0]
    assert user["grade"] == "03"
    conflicts = [f for f in findings if f.check == "second_source_conflict"]
    assert [(f.provider_id, "grade" in f.message) for f in conflicts] == [("u-a", True)]


def test_second_source_adds_school_to_user():
    merged, _ = merge_second_source(summer_roster(), extra_roster(), "s", "Summer")

    user = merged.users[merged.users["provider_id"] == "u-a"].iloc[0]
    assert user["school_ids"] == ("a", "s")


def test_second_source_brings_missing_school():
    provider = roster(["a"], [("u-a", "student", ("a",), "03")], [], [])

    merged, _ = merge_second_source(provider, extra_roster(), "s", "Summer")

    assert ids(merged.schools) == ["a", "s"]


def test_conflict_messages_name_no_values():
    _, findings = merge_second_source(summer_roster(), extra_roster(), "s", "Summer")

    text = " ".join(f.message for f in findings)
    assert "09" not in text
    assert "Gu-a" not in text
