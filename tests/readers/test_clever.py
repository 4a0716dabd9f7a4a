"""Tests of the Clever v3.0 reader on Clever's demo district and on inline responses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rostersync.errors import RosterFileError, RosterSourceError
from rostersync.readers.clever import CleverRosterBuilder, read_clever_files
from rostersync.roster import Roster

REAL_INPUT = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "real-input"
).resolve()

pytestmark = pytest.mark.real_input
DEMO_FILES = (
    REAL_INPUT / "clever-go-mocks" / "districts.json",
    REAL_INPUT / "clever-go-mocks" / "users.json",
    REAL_INPUT / "clever-go-mocks" / "sections.json",
    REAL_INPUT / "clever-demo-schools" / "schools.json",
)
DISTRICT = "d-1"


# Clever's demo district


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clever-demo")
    for path in DEMO_FILES:
        shutil.copyfile(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def demo(demo_folder: Path) -> Roster:
    return read_clever_files(demo_folder)


@pytest.fixture(scope="module")
def raw_users(demo_folder: Path) -> list[dict]:
    body = json.loads((demo_folder / "users.json").read_text(encoding="utf-8"))
    return [record["data"] for record in body["data"]]


@pytest.fixture(scope="module")
def raw_sections(demo_folder: Path) -> list[dict]:
    body = json.loads((demo_folder / "sections.json").read_text(encoding="utf-8"))
    return [record["data"] for record in body["data"]]


def _raw_with_role(raw_users: list[dict], role: str) -> list[dict]:
    return [user for user in raw_users if role in user["roles"]]


def _user_row(roster: Roster, provider_id: str) -> pd.Series:
    rows = roster.users[roster.users["provider_id"] == provider_id]
    assert len(rows) == 1
    return rows.iloc[0]


def test_demo_students_are_counted(demo: Roster, raw_users: list[dict]) -> None:
    expected = len(_raw_with_role(raw_users, "student"))

    assert expected == 1_004
    assert (demo.users["kind"] == "student").sum() == expected


def test_demo_teachers_are_educators(demo: Roster, raw_users: list[dict]) -> None:
    expected = len(_raw_with_role(raw_users, "teacher"))
    teachers = demo.users[demo.users["role"] == "teacher"]

    assert expected == 89
    assert len(teachers) == expected
    assert (teachers["kind"] == "educator").all()


def test_demo_district_admins_are_educators(
    demo: Roster, raw_users: list[dict]
) -> None:
    expected = len(_raw_with_role(raw_users, "district_admin"))
    admins = demo.users[demo.users["role"] == "district_admin"]

    assert expected == 3
    assert len(admins) == expected
    assert (admins["kind"] == "educator").all()


def test_demo_district_admins_have_no_school(demo: Roster) -> None:
    admins = demo.users[demo.users["role"] == "district_admin"]

    assert admins["school_id"].isna().all()
    assert all(school_ids == () for school_ids in admins["school_ids"])


def test_demo_schools_are_read(demo: Roster, demo_folder: Path) -> None:
    body = json.loads((demo_folder / "schools.json").read_text(encoding="utf-8"))
    expected = {record["data"]["id"] for record in body["data"]}

    assert len(expected) == 5
    assert set(demo.schools["provider_id"]) == expected
    assert len(demo.schools) == len(expected)


def test_demo_school_columns(demo: Roster) -> None:
    school = demo.schools.set_index("provider_id").loc["5a25ff950a5f621109000004"]

    assert school["name"] == "Demo Elementary School"
    assert school["sis_id"] == "101"


def test_demo_sections_are_read(demo: Roster, raw_sections: list[dict]) -> None:
    expected = {section["id"] for section in raw_sections}

    assert len(expected) == 378
    assert set(demo.sections["provider_id"]) == expected
    assert len(demo.sections) == len(expected)


def test_demo_section_columns(demo: Roster, raw_sections: list[dict]) -> None:
    raw = raw_sections[0]
    section = demo.sections.set_index("provider_id").loc[raw["id"]]

    assert section["school_id"] == raw["school"]
    assert section["name"] == raw["name"]
    assert section["sis_id"] == raw["sis_id"]


def test_demo_enrollments_match_sections(
    demo: Roster, raw_sections: list[dict]
) -> None:
    expected = set()
    for section in raw_sections:
        expected.update(
            (section["id"], user, "student") for user in section["students"]
        )
        expected.update(
            (section["id"], user, "teacher") for user in section["teachers"]
        )
    rows = demo.enrollments[["section_id", "user_id", "role"]]
    actual = list(rows.itertuples(index=False, name=None))

    assert len(actual) == len(expected)
    assert set(actual) == expected


def test_demo_contacts_are_counted_not_stored(
    demo: Roster, raw_users: list[dict]
) -> None:
    contact_ids = {
        user["id"] for user in raw_users if set(user["roles"]) == {"contact"}
    }
    contact_findings = [f for f in demo.findings if f.check == "contacts_not_stored"]

    assert len(contact_ids) == 1_002
    assert len(contact_findings) == 1
    assert contact_findings[0].entity == "users"
    assert contact_findings[0].level == "warning"
    assert contact_findings[0].message == f"{len(contact_ids)} contacts are not stored"
    assert contact_findings[0].provider_id is None
    assert contact_ids.isdisjoint(demo.users["provider_id"])


def test_demo_has_no_other_findings(demo: Roster) -> None:
    checks = [finding.check for finding in demo.findings]

    assert checks == ["contacts_not_stored"]


@pytest.mark.parametrize(
    ("clever_grade", "grade"),
    [("Kindergarten", "KG"), ("1", "01"), ("PreKindergarten", "PK"), ("12", "12")],
)
def test_demo_grades_are_normalised(
    demo: Roster, raw_users: list[dict], clever_grade: str, grade: str
) -> None:
    ids = {
        user["id"]
        for user in _raw_with_role(raw_users, "student")
        if user["roles"]["student"]["grade"] == clever_grade
    }
    grades = demo.users.set_index("provider_id").loc[sorted(ids), "grade"]

    assert ids
    assert (grades == grade).all()


def test_demo_student_without_dob_is_kept(demo: Roster, raw_users: list[dict]) -> None:
    students = _raw_with_role(raw_users, "student")
    without_dob = [
        user["id"] for user in students if "dob" not in user["roles"]["student"]
    ]

    assert len(without_dob) == 1
    assert without_dob[0] in set(demo.users["provider_id"])


def test_demo_users_keep_every_school(demo: Roster, raw_users: list[dict]) -> None:
    expected = {}
    for user in raw_users:
        for role in user["roles"].values():
            if len(role.get("schools", [])) > 1:
                expected[user["id"]] = tuple(sorted({*role["schools"], role["school"]}))
    school_ids = demo.users.set_index("provider_id")["school_ids"]

    assert len(expected) == 288
    assert {user_id: school_ids[user_id] for user_id in expected} == expected


def test_demo_student_columns(demo: Roster, raw_users: list[dict]) -> None:
    raw = _raw_with_role(raw_users, "student")[0]
    student = _user_row(demo, raw["id"])

    assert student["given_name"] == raw["name"]["first"]
    assert student["family_name"] == raw["name"]["last"]
    assert student["email"] == raw["email"]
    assert (
        student["username"]
        == raw["roles"]["student"]["credentials"]["district_username"]
    )
    assert student["sis_id"] == raw["roles"]["student"]["sis_id"]
    assert student["school_id"] == raw["roles"]["student"]["school"]


def test_demo_teacher_columns(demo: Roster, raw_users: list[dict]) -> None:
    raw = _raw_with_role(raw_users, "teacher")[0]
    teacher = _user_row(demo, raw["id"])

    assert (
        teacher["username"]
        == raw["roles"]["teacher"]["credentials"]["district_username"]
    )
    assert teacher["sis_id"] == raw["roles"]["teacher"]["sis_id"]
    assert teacher["school_id"] == raw["roles"]["teacher"]["school"]
    assert pd.isna(teacher["grade"])


def test_demo_records_are_active(demo: Roster) -> None:
    for frame in (demo.schools, demo.users, demo.sections, demo.enrollments):
        assert (frame["status"] == "active").all()


def test_demo_roster_is_bulk_from_folder(demo: Roster, demo_folder: Path) -> None:
    assert demo.source == str(demo_folder)
    assert set(demo.modes.values()) == {"bulk"}


def test_districts_file_is_optional(
    demo_folder: Path, tmp_path: Path, raw_users: list[dict]
) -> None:
    stored_roles = {"student", "teacher", "staff", "district_admin"}
    expected = sum(1 for user in raw_users if stored_roles & set(user["roles"]))
    for name in ("schools.json", "users.json", "sections.json"):
        shutil.copyfile(demo_folder / name, tmp_path / name)

    roster = read_clever_files(tmp_path)

    assert len(roster.users) == expected


def test_terms_file_is_not_read(demo_folder: Path, tmp_path: Path) -> None:
    for name in ("schools.json", "users.json", "sections.json"):
        shutil.copyfile(demo_folder / name, tmp_path / name)
    (tmp_path / "terms.json").write_text("not json", encoding="utf-8")

    roster = read_clever_files(tmp_path)

    assert len(roster.sections) == 378


# Inline responses


def _page(*records: dict, next_uri: str | None = None) -> dict:
    links = [{"rel": "self", "uri": "/v3.0/things"}]
    if next_uri is not None:
        links.append({"rel": "next", "uri": next_uri})
    return {
        "data": [
            {"data": record, "uri": f"/v3.0/x/{record['id']}"} for record in records
        ],
        "links": links,
    }


def _school(school_id: str, name: str = "North School") -> dict:
    return {"id": school_id, "district": DISTRICT, "name": name, "sis_id": "7"}


def _user(user_id: str, roles: dict, **fields: object) -> dict:
    user = {
        "id": user_id,
        "district": DISTRICT,
        "email": f"{user_id}@example.org",
        "name": {"first": "Ada", "last": "Quill"},
        "roles": roles,
    }
    user.update(fields)
    return user


def _student(grade: str = "3", school: str = "s-1", **fields: object) -> dict:
    role = {
        "grade": grade,
        "school": school,
        "schools": [school],
        "sis_id": "sis-1",
        "dob": "2/11/2015",
        "credentials": {"district_username": "ada3"},
    }
    role.update(fields)
    return role


def _section(section_id: str, students: list[str], **fields: object) -> dict:
    section = {
        "id": section_id,
        "district": DISTRICT,
        "school": "s-1",
        "name": "Math 3",
        "sis_id": "m3",
        "students": students,
        "teacher": "t-1",
        "teachers": ["t-1"],
    }
    section.update(fields)
    return section


def _write_folder(
    folder: Path,
    schools: list[dict] | None = None,
    users: list[dict] | None = None,
    sections: list[dict] | None = None,
) -> Path:
    bodies = {
        "schools.json": _page(*(schools or [_school("s-1")])),
        "users.json": _page(*(users or [])),
        "sections.json": _page(*(sections or [])),
    }
    for name, body in bodies.items():
        (folder / name).write_text(json.dumps(body, indent=1), encoding="utf-8")
    return folder


def _build(
    users: list[dict] | None = None, sections: list[dict] | None = None
) -> Roster:
    builder = CleverRosterBuilder()
    builder.add_schools_page(_page(_school("s-1")), "schools page")
    builder.add_users_page(_page(*(users or [])), "users page")
    builder.add_sections_page(_page(*(sections or [])), "sections page")
    return builder.build("https://clever.test")


@pytest.mark.parametrize("missing", ["schools.json", "users.json", "sections.json"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    _write_folder(tmp_path)
    (tmp_path / missing).unlink()

    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path)

    assert caught.value.path == str(tmp_path / missing)
    assert "missing" in caught.value.problem
    assert f"as {missing}" in caught.value.fix


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path / "absent")

    assert caught.value.path == str(tmp_path / "absent")


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "users.json").write_text(
        '{\n "data": [\n  ,\n ]\n}\n', encoding="utf-8"
    )

    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path)

    assert caught.value.path == str(tmp_path / "users.json")
    assert caught.value.line == 3
    assert "not valid JSON" in str(caught.value)


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    body = '{\n "data": [],\n "note": "caf\u00e9"\n}\n'
    (tmp_path / "schools.json").write_bytes(body.encode("cp1252"))

    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path)

    assert caught.value.path == str(tmp_path / "schools.json")
    assert caught.value.line == 3
    assert "UTF-8" in caught.value.problem


def test_utf8_bom_is_read(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    body = json.dumps(_page(_school("s-1"), _school("s-2")))
    (tmp_path / "schools.json").write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))

    roster = read_clever_files(tmp_path)

    assert len(roster.schools) == 2


def test_file_without_data_list_is_an_error(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "sections.json").write_text('{"links": []}', encoding="utf-8")

    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path)

    assert caught.value.path == str(tmp_path / "sections.json")
    assert '"data" list' in caught.value.problem


def test_file_with_next_link_is_an_error(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    body = _page(_school("s-1"), next_uri="/v3.0/schools?starting_after=s-1")
    (tmp_path / "schools.json").write_text(json.dumps(body), encoding="utf-8")

    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path)

    assert '"next"' in caught.value.problem


def test_page_without_data_list_is_an_error() -> None:
    builder = CleverRosterBuilder()
    url = "https://api.clever.com/v3.0/users?limit=10000"

    with pytest.raises(RosterSourceError) as caught:
        builder.add_users_page({"links": []}, url)

    assert not isinstance(caught.value, RosterFileError)
    assert str(caught.value).startswith(f"{url}: ")
    assert '"data" list' in str(caught.value)


def test_page_with_data_object_is_an_error() -> None:
    builder = CleverRosterBuilder()

    with pytest.raises(RosterSourceError, match='no "data" list'):
        builder.add_schools_page({"data": {"id": "s-1"}}, "schools page")


def test_record_without_data_is_an_error() -> None:
    builder = CleverRosterBuilder()
    page = {"data": [{"uri": "/v3.0/sections/x"}], "links": []}

    with pytest.raises(RosterSourceError, match=r'data\[0\] has no "data" object'):
        builder.add_sections_page(page, "sections page")


def test_record_without_id_is_an_error() -> None:
    builder = CleverRosterBuilder()
    page = {"data": [{"data": {"name": "North School"}}], "links": []}

    with pytest.raises(RosterSourceError, match=r'data\[0\] has no "id"'):
        builder.add_schools_page(page, "schools page")


def test_user_without_roles_is_an_error() -> None:
    user = _user("u-1", {})
    del user["roles"]

    with pytest.raises(RosterSourceError, match=r"\(id u-1\): roles is missing"):
        _build(users=[user])


def test_field_of_wrong_type_is_an_error() -> None:
    user = _user("u-1", {"student": _student(grade=["3"])})

    with pytest.raises(RosterSourceError) as caught:
        _build(users=[user])

    assert "(id u-1): roles.student.grade is a JSON array" in str(caught.value)


def test_record_repeated_on_two_pages_is_kept_once() -> None:
    builder = CleverRosterBuilder()
    builder.add_schools_page(_page(_school("s-1", "Old Name")), "page 1")
    builder.add_schools_page(
        _page(_school("s-2"), _school("s-1", "New Name")), "page 2"
    )

    roster = builder.build("https://clever.test")
    names = roster.schools.set_index("provider_id")["name"]

    assert len(roster.schools) == 2
    assert names["s-1"] == "New Name"


def test_repeated_section_replaces_enrollments() -> None:
    builder = CleverRosterBuilder()
    builder.add_sections_page(_page(_section("c-1", ["u-1", "u-2"])), "page 1")
    builder.add_sections_page(_page(_section("c-1", ["u-3"])), "page 2")

    roster = builder.build("https://clever.test")
    students = roster.enrollments[roster.enrollments["role"] == "student"]

    assert list(students["user_id"]) == ["u-3"]


def test_student_repeated_as_contact_is_not_stored() -> None:
    builder = CleverRosterBuilder()
    builder.add_users_page(_page(_user("u-1", {"student": _student()})), "page 1")
    builder.add_users_page(_page(_user("u-1", {"contact": {}})), "page 2")

    roster = builder.build("https://clever.test")

    assert len(roster.users) == 0
    assert roster.findings[0].message == "1 contacts are not stored"


def test_user_restored_on_later_page() -> None:
    builder = CleverRosterBuilder()
    builder.add_users_page(_page(_user("u-1", {"student": _student()})), "page 1")
    builder.add_users_page(_page(_user("u-1", {"contact": {}})), "page 2")
    builder.add_users_page(_page(_user("u-1", {"student": _student()})), "page 3")

    roster = builder.build("https://clever.test")

    assert list(roster.users["provider_id"]) == ["u-1"]
    assert roster.findings == []


def test_unknown_grade_is_kept_and_reported() -> None:
    roster = _build(users=[_user("u-1", {"student": _student(grade="Grade Z")})])
    grade_findings = [f for f in roster.findings if f.check == "unknown_grade"]

    assert _user_row(roster, "u-1")["grade"] == "Grade Z"
    assert len(grade_findings) == 1
    assert grade_findings[0].provider_id == "u-1"
    assert grade_findings[0].level == "warning"


def test_missing_grade_is_not_reported() -> None:
    roster = _build(users=[_user("u-1", {"student": _student(grade="")})])

    assert pd.isna(_user_row(roster, "u-1")["grade"])
    assert roster.findings == []


def test_student_school_is_added_to_schools() -> None:
    student = _student(school="s-9", schools=["s-2", "s-1"])
    roster = _build(users=[_user("u-1", {"student": student})])
    row = _user_row(roster, "u-1")

    assert row["school_id"] == "s-9"
    assert row["school_ids"] == ("s-1", "s-2", "s-9")


def test_role_email_is_used_without_user_email() -> None:
    student = _student(email="role@example.org")
    roster = _build(users=[_user("u-1", {"student": student}, email=None)])

    assert _user_row(roster, "u-1")["email"] == "role@example.org"


def test_teacher_and_staff_user_is_a_teacher() -> None:
    teacher = {"school": "s-1", "schools": ["s-1"], "sis_id": "t-47"}
    staff = {"schools": ["s-3", "s-2"], "staff_id": "st-9"}
    roster = _build(users=[_user("u-1", {"staff": staff, "teacher": teacher})])
    row = _user_row(roster, "u-1")

    assert row["kind"] == "educator"
    assert row["role"] == "teacher"
    assert row["sis_id"] == "t-47"
    assert row["school_id"] == "s-1"
    assert row["school_ids"] == ("s-1", "s-2", "s-3")


def test_staff_user_takes_first_listed_school() -> None:
    staff = {
        "schools": ["s-3", "s-2"],
        "staff_id": "st-9",
        "credentials": {"district_username": "staff9"},
    }
    roster = _build(users=[_user("u-1", {"staff": staff})])
    row = _user_row(roster, "u-1")

    assert row["role"] == "staff"
    assert row["sis_id"] == "st-9"
    assert row["username"] == "staff9"
    assert row["school_id"] == "s-3"
    assert row["school_ids"] == ("s-2", "s-3")


def test_district_admin_and_staff_user_is_staff() -> None:
    roles = {"district_admin": {"title": ""}, "staff": {"schools": ["s-2"]}}
    roster = _build(users=[_user("u-1", roles)])
    row = _user_row(roster, "u-1")

    assert row["role"] == "staff"
    assert row["school_ids"] == ("s-2",)


def test_student_and_teacher_user_is_a_student() -> None:
    roles = {"teacher": {"school": "s-1"}, "student": _student()}
    roster = _build(users=[_user("u-1", roles)])

    assert _user_row(roster, "u-1")["kind"] == "student"


def test_user_without_supported_role_has_no_kind() -> None:
    roster = _build(users=[_user("u-1", {"studnet": {"school": "s-1"}})])

    # The data checks quarantine a user without a kind, so it is not archived.
    assert roster.users["provider_id"].tolist() == ["u-1"]
    assert roster.users["kind"].isna().tolist() == [True]
    assert roster.findings == []


def test_duplicate_enrollments_collapse() -> None:
    section = _section("c-1", ["u-1", "u-1", "u-2"], teachers=["t-1", "t-1"])
    roster = _build(sections=[section])
    rows = list(
        roster.enrollments[["user_id", "role"]].itertuples(index=False, name=None)
    )

    assert rows == [("u-1", "student"), ("u-2", "student"), ("t-1", "teacher")]


def test_member_in_both_section_roles() -> None:
    roster = _build(sections=[_section("c-1", ["u-1"], teachers=["u-1"])])

    assert len(roster.enrollments) == 2


def test_teacher_is_used_without_teachers() -> None:
    section = _section("c-1", [], teacher="t-7")
    del section["teachers"]
    roster = _build(sections=[section])

    assert list(roster.enrollments["user_id"]) == ["t-7"]
    assert list(roster.enrollments["role"]) == ["teacher"]


def test_empty_teachers_list_ignores_teacher() -> None:
    roster = _build(sections=[_section("c-1", [], teacher="t-7", teachers=[])])

    assert len(roster.enrollments) == 0


def test_records_of_two_districts_are_an_error() -> None:
    builder = CleverRosterBuilder()
    builder.add_districts_page(_page({"id": DISTRICT}), "districts page")
    other = _school("s-2") | {"district": "d-2"}
    builder.add_schools_page(_page(_school("s-1"), other), "schools page")

    with pytest.raises(RosterSourceError, match="2 districts"):
        builder.build("https://clever.test")


def test_messages_contain_no_student_data(tmp_path: Path) -> None:
    secrets = ("Zelda", "Secretname", "zelda.secret@example.org", "3/14/2012")
    student = _student(grade="Grade Z", dob="3/14/2012")
    fields = {"email": "zelda.secret@example.org"}
    fields["name"] = {"first": "Zelda", "last": "Secretname"}
    users = [
        _user("u-1", {"student": student}, **fields),
        _user("u-2", {"contact": {"phone": ""}}, **fields),
        _user("u-3", {}, **fields),
    ]
    roster = read_clever_files(_write_folder(tmp_path, users=users))
    broken = _user("u-4", {"student": _student(sis_id={"x": 1})}, **fields)
    _write_folder(tmp_path, users=[broken])
    with pytest.raises(RosterFileError) as caught:
        read_clever_files(tmp_path)
    texts = [str(caught.value)] + [str(f.as_dict()) for f in roster.findings]

    # An unknown grade and the contact are reported; the user without a role is
    # left to the data checks, which quarantine it.
    assert [f.check for f in roster.findings] == [
        "contacts_not_stored",
        "unknown_grade",
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_duplicate_id_in_page_is_error(demo_folder: Path, tmp_path: Path):
    folder = tmp_path / "clever"
    shutil.copytree(demo_folder, folder)
    users = json.loads((folder / "users.json").read_text(encoding="utf-8"))
    users["data"].append(users["data"][4])
    (folder / "users.json").write_text(json.dumps(users), encoding="utf-8")
    duplicate_index = len(users["data"]) - 1

    with pytest.raises(
        RosterFileError,
        match=rf"data\[4\] and data\[{duplicate_index}\] have the same id",
    ):
        read_clever_files(folder)


def _build_pages(*user_pages: list[dict]) -> Roster:
    builder = CleverRosterBuilder()
    builder.add_schools_page(_page(_school("s-1")), "schools page")
    for number, users in enumerate(user_pages, start=1):
        builder.add_users_page(_page(*users), f"users page {number}")
    builder.add_sections_page(_page(), "sections page")
    return builder.build("https://clever.test")


def test_two_role_user_keeps_kind() -> None:
    roles = {"teacher": {"school": "s-1"}, "staff": {"school": "s-1"}}
    user = _user("u-1", roles)

    roster = _build_pages([user], [user])

    assert _user_row(roster, "u-1")["kind"] == "educator"
    assert [f.check for f in roster.findings] == []


def test_student_and_teacher_copies_clear_kind() -> None:
    as_student = _user("u-1", {"student": _student()})
    as_teacher = _user("u-1", {"teacher": {"school": "s-1"}})

    roster = _build_pages([as_student], [as_teacher])

    assert pd.isna(_user_row(roster, "u-1")["kind"])
    assert [(f.check, f.provider_id) for f in roster.findings] == [
        ("kind_differs_between_pages", "u-1")
    ]


def test_non_finite_grade_is_not_quoted() -> None:
    user = _user("u-1", {"student": _student(grade=float("nan"))})

    with pytest.raises(RosterSourceError) as raised:
        _build(users=[user])

    assert "grade is a number that is not finite" in str(raised.value)
    assert "is nan" not in str(raised.value).lower()


def test_reader_error_shows_an_invisible_id_escaped() -> None:
    user = _user("\u202eu-1", {"student": _student(grade=float("inf"))})

    with pytest.raises(RosterSourceError) as raised:
        _build(users=[user])

    assert "(id \\u202eu-1)" in str(raised.value)
    assert "\u202e" not in str(raised.value)
