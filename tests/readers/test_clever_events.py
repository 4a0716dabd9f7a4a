"""Clever Events API pages applied by the Clever builder as a delta roster."""

from __future__ import annotations

import pytest

from rostersync.errors import RosterSourceError
from rostersync.readers.clever import CleverRosterBuilder


def student(user_id: str, school: str = "sch-1", grade: str = "3") -> dict:
    return {
        "id": user_id,
        "district": "d-1",
        "email": f"{user_id}@example.org",
        "name": {"first": "A", "last": "B"},
        "roles": {"student": {"school": school, "schools": [school], "grade": grade}},
    }


def section(section_id: str, students: list[str], teacher: str = "t-1") -> dict:
    return {
        "id": section_id,
        "district": "d-1",
        "school": "sch-1",
        "name": "Reading",
        "students": students,
        "teachers": [teacher],
    }


def event(event_id: str, kind: str, record: dict) -> dict:
    return {
        "data": {
            "id": event_id,
            "type": kind,
            "created": "2026-12-01T10:00:00.000Z",
            "data": {"object": record},
        },
        "uri": f"/v3.0/events/{event_id}",
    }


def apply(*events: dict):
    builder = CleverRosterBuilder()
    builder.add_events_page({"data": list(events), "links": []}, "GET /v3.0/events")
    return builder, builder.build("clever", delta=True)


def test_events_roster_is_a_delta():
    _, roster = apply(event("e1", "users.created", student("u1")))

    assert set(roster.modes.values()) == {"delta"}


def test_later_event_of_a_record_wins():
    _, roster = apply(
        event("e1", "users.created", student("u1", grade="3")),
        event("e2", "users.updated", student("u1", grade="4")),
    )

    assert roster.users["provider_id"].tolist() == ["u1"]
    assert roster.users["grade"].tolist() == ["04"]


def test_deleted_user_is_marked_to_be_deleted():
    _, roster = apply(event("e1", "users.deleted", student("u1")))

    assert roster.users["status"].tolist() == ["tobedeleted"]
    assert roster.users["kind"].tolist() == ["student"]


def test_deleted_user_without_roles_is_still_removed():
    _, roster = apply(event("e1", "users.deleted", {"id": "u1"}))

    assert roster.users["provider_id"].tolist() == ["u1"]
    assert roster.users["status"].tolist() == ["tobedeleted"]


def test_user_who_becomes_a_contact_leaves():
    contact = {"id": "u1", "roles": {"contact": {"phone": None}}}

    _, roster = apply(
        event("e1", "users.created", student("u1")),
        event("e2", "users.updated", contact),
    )

    assert roster.users["status"].tolist() == ["tobedeleted"]


def test_new_contact_is_not_stored():
    contact = {"id": "p1", "roles": {"contact": {}}}

    _, roster = apply(event("e1", "users.created", contact))

    assert roster.users.empty


def test_updated_section_lists_all_its_enrollments():
    _, roster = apply(event("e1", "sections.updated", section("s1", ["u1", "u2"])))

    pairs = set(
        zip(roster.enrollments["user_id"], roster.enrollments["role"], strict=True)
    )
    assert pairs == {("u1", "student"), ("u2", "student"), ("t-1", "teacher")}
    assert roster.full_enrollment_sections == frozenset({"s1"})


def test_deleted_section_has_no_enrollments():
    _, roster = apply(
        event("e1", "sections.updated", section("s1", ["u1"])),
        event("e2", "sections.deleted", section("s1", ["u1"])),
    )

    assert roster.sections["status"].tolist() == ["tobedeleted"]
    assert roster.enrollments.empty


def test_deleted_school_is_marked_to_be_deleted():
    _, roster = apply(event("e1", "schools.deleted", {"id": "sch-1", "name": "S"}))

    assert roster.schools["status"].tolist() == ["tobedeleted"]


def test_other_event_types_are_counted_not_applied():
    builder, roster = apply(
        event("e1", "terms.updated", {"id": "term-1"}),
        event("e2", "districts.updated", {"id": "d-1"}),
        event("e3", "Not A Type!", {"id": "x"}),
    )

    [finding] = [f for f in roster.findings if f.check == "events_not_applied"]
    assert "1 terms.updated" in finding.message
    assert "1 districts.updated" in finding.message
    assert "1 (other types)" in finding.message
    assert "Not A Type" not in finding.message


def test_last_event_is_remembered():
    builder, _ = apply(
        event("e1", "users.created", student("u1")),
        event("e2", "terms.created", {"id": "term"}),
    )

    assert builder.last_event == ("e2", "2026-12-01T10:00:00.000Z")


def test_event_without_object_id_is_an_error():
    builder = CleverRosterBuilder()

    with pytest.raises(RosterSourceError, match="data.object has no id"):
        builder.add_events_page(
            {"data": [event("e1", "users.updated", {"name": {}})]}, "GET /events"
        )


def test_events_applied_twice_same_roster():
    events = [
        event("e1", "users.created", student("u1")),
        event("e2", "sections.created", section("s1", ["u1"])),
        event("e3", "users.deleted", student("u2")),
    ]
    builder = CleverRosterBuilder()
    builder.add_events_page({"data": events}, "page")
    once = builder.build("clever", delta=True)
    builder.add_events_page({"data": events}, "page again")
    twice = builder.build("clever", delta=True)

    assert once.users.equals(twice.users)
    assert once.enrollments.equals(twice.enrollments)


def test_update_without_roles_is_not_applied():
    _, roster = apply(event("e1", "users.updated", {"id": "u1", "email": "x@y.org"}))

    [finding] = [f for f in roster.findings if f.check == "event_without_roles"]
    assert roster.users.empty
    assert finding.provider_id == "u1"
