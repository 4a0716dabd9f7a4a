"""The OneRoster 1.1 REST reader: saved responses and pages built inline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rostersync.errors import RosterFileError, RosterSourceError
from rostersync.readers.oneroster_rest import (
    OneRosterRestBuilder,
    read_oneroster_rest_files,
)
from tests.conftest import REAL_INPUT

ONEEDTECH = REAL_INPUT / "1edtech-or11-rest" / "1574845678"


def ref(sourced_id: str, kind: str = "org") -> dict:
    return {"href": f"/x/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def school(sourced_id: str, **fields) -> dict:
    return {
        "sourcedId": sourced_id,
        "status": "active",
        "name": "S",
        "type": "school",
        **fields,
    }


def user(sourced_id: str, role: str = "student", orgs=("sch-1",), **fields) -> dict:
    return {
        "sourcedId": sourced_id,
        "status": "active",
        "enabledUser": "true",
        "role": role,
        "orgs": [ref(org) for org in orgs],
        "givenName": "G",
        "familyName": "F",
        **fields,
    }


def built(**collections) -> OneRosterRestBuilder:
    builder = OneRosterRestBuilder()
    for name in ("orgs", "academicSessions", "users", "classes", "enrollments"):
        if name in collections:
            builder.add_page(name, {name: collections[name]}, f"GET /{name}")
    return builder


@pytest.fixture
def oneedtech_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "or11"
    shutil.copytree(ONEEDTECH, folder)
    # The set's enrollments.json is missing upstream; the reader needs the file.
    (folder / "enrollments.json").write_text('{"enrollments": []}', encoding="utf-8")
    return folder


@pytest.mark.real_input
def test_oneedtech_set_counts_match_the_raw_files(oneedtech_copy):
    raw_users = json.loads((oneedtech_copy / "users.json").read_text())["users"]
    raw_orgs = json.loads((oneedtech_copy / "orgs.json").read_text())["orgs"]
    raw_classes = json.loads((oneedtech_copy / "classes.json").read_text())["classes"]
    students = sum(1 for u in raw_users if u["role"] == "student")
    teachers = sum(1 for u in raw_users if u["role"] == "teacher")
    parents = sum(1 for u in raw_users if u["role"] == "parent")

    roster = read_oneroster_rest_files(oneedtech_copy)

    kinds = roster.users["kind"].value_counts().to_dict()
    assert len(roster.schools) == sum(1 for o in raw_orgs if o["type"] == "school")
    assert kinds["student"] == students
    assert kinds["educator"] == teachers
    assert len(roster.users) == students + teachers
    assert len(roster.sections) == len(raw_classes)
    assert [f.message for f in roster.findings if f.check == "contacts_not_stored"] == [
        f"{parents} users with role parent/guardian/relative are not stored."
    ]


@pytest.mark.real_input
def test_oneedtech_grades_and_schools_are_normalised(oneedtech_copy):
    raw_users = json.loads((oneedtech_copy / "users.json").read_text())["users"]
    first_student = next(u for u in raw_users if u["role"] == "student")

    roster = read_oneroster_rest_files(oneedtech_copy)

    row = roster.users.set_index("provider_id").loc[first_student["sourcedId"]]
    assert row["grade"] == first_student["grades"][0]
    assert row["school_id"] == first_student["orgs"][0]["sourcedId"]
    assert row["school_ids"] == (first_student["orgs"][0]["sourcedId"],)


def test_missing_required_file_names_it(tmp_path):
    (tmp_path / "orgs.json").write_text('{"orgs": []}')

    with pytest.raises(RosterFileError, match="users.json: The file is missing"):
        read_oneroster_rest_files(tmp_path)


def test_body_without_envelope_is_an_error():
    builder = OneRosterRestBuilder()

    with pytest.raises(RosterSourceError, match='no "users" list'):
        builder.add_page("users", {"data": []}, "GET /users")


def test_repeated_id_on_page_fails():
    builder = OneRosterRestBuilder()

    with pytest.raises(RosterSourceError, match="same sourcedId u1"):
        builder.add_page("users", {"users": [user("u1"), user("u1")]}, "GET /users")


def test_record_repeated_on_a_later_page_counts_once():
    builder = built(orgs=[school("sch-1")])
    builder.add_page("users", {"users": [user("u1", givenName="A")]}, "page 1")
    builder.add_page("users", {"users": [user("u1", givenName="B")]}, "page 2")

    roster = builder.build("test")

    assert roster.users["provider_id"].tolist() == ["u1"]
    assert roster.users["given_name"].tolist() == ["B"]
    assert builder.distinct_records("users") == 1


def test_department_resolves_to_its_school():
    orgs = [
        school("sch-1"),
        {
            "sourcedId": "dep-1",
            "type": "department",
            "name": "D",
            "parent": ref("sch-1"),
        },
    ]

    roster = built(orgs=orgs, users=[user("u1", orgs=("dep-1",))]).build("test")

    assert roster.users["school_id"].tolist() == ["sch-1"]


def test_tobedeleted_status_is_kept_for_archiving():
    roster = built(
        orgs=[school("sch-1")], users=[user("u1", status="tobedeleted")]
    ).build("t")

    assert roster.users["status"].tolist() == ["tobedeleted"]


def test_contacts_and_their_enrollments_are_not_stored():
    enrollments = [
        {
            "sourcedId": "e1",
            "role": "parent",
            "user": ref("p1", "user"),
            "class": ref("c1", "class"),
        },
        {
            "sourcedId": "e2",
            "role": "student",
            "user": ref("u1", "user"),
            "class": ref("c1", "class"),
        },
    ]

    roster = built(
        orgs=[school("sch-1")],
        users=[user("u1"), user("p1", role="parent")],
        enrollments=enrollments,
    ).build("t")

    assert roster.users["provider_id"].tolist() == ["u1"]
    assert roster.enrollments["user_id"].tolist() == ["u1"]


def test_v1p2_roles_give_primary_role():
    record = user("u1", role=None, orgs=())
    del record["role"]
    record["roles"] = [
        {"roleType": "secondary", "role": "teacher", "org": ref("sch-2")},
        {"roleType": "primary", "role": "teacher", "org": ref("sch-1")},
    ]

    roster = built(orgs=[school("sch-1"), school("sch-2")], users=[record]).build("t")

    assert roster.users["role"].tolist() == ["teacher"]
    assert roster.users["school_id"].tolist() == ["sch-1"]
    assert roster.users["school_ids"].tolist() == [("sch-1", "sch-2")]


def test_boolean_and_number_fields_become_text():
    record = user("u1", enabledUser=True, identifier=12345)

    roster = built(orgs=[school("sch-1")], users=[record]).build("t")

    assert roster.users["sis_id"].tolist() == ["12345"]


def test_object_where_text_belongs_names_the_field():
    record = user("u1", email={"address": "x"})

    with pytest.raises(RosterSourceError, match="email is a JSON object"):
        built(orgs=[school("sch-1")], users=[record])


def test_restart_forgets_a_collection():
    builder = built(orgs=[school("sch-1")], users=[user("u1"), user("u2")])

    builder.restart("users")
    builder.add_page("users", {"users": [user("u3")]}, "again")

    assert builder.build("t").users["provider_id"].tolist() == ["u3"]
    assert builder.distinct_records("users") == 1


def test_delta_contact_marked_tobedeleted():
    builder = built(orgs=[school("sch-1")], users=[user("u1", role="parent")])

    roster = builder.build("t", {"users": "delta"})

    assert roster.users["provider_id"].tolist() == ["u1"]
    assert roster.users["status"].tolist() == ["tobedeleted"]


def test_contact_in_a_bulk_pull_is_left_out():
    roster = built(orgs=[school("sch-1")], users=[user("u1", role="parent")]).build("t")

    assert roster.users.empty


@pytest.mark.parametrize(
    "removed_first", [True, False], ids=["removed-first", "active-first"]
)
def test_active_enrollment_beats_removal(removed_first):
    active = {"sourcedId": "e-new", "role": "student", "status": "active",
              "user": ref("u1", "user"), "class": ref("c1", "class")}  # fmt: skip
    removed = {**active, "sourcedId": "e-old", "status": "tobedeleted"}
    pages = [removed, active] if removed_first else [active, removed]

    roster = built(orgs=[school("sch-1")], enrollments=pages).build("t")

    assert roster.enrollments["status"].tolist() == ["active"]
