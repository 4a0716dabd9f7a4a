"""Tests of the OneRoster CSV reader on public sample sets and on sets built inline."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from rostersync.errors import RosterFileError
from rostersync.grades import normalize_grade
from rostersync.readers import oneroster_csv
from rostersync.readers.oneroster_csv import read_oneroster_csv
from rostersync.roster import (
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    USER_COLUMNS,
    Roster,
)

REAL_INPUT = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "real-input"
).resolve()

pytestmark = pytest.mark.real_input
CATALYST = REAL_INPUT / "catalyst-moodle-enrol-oneroster"
FULL_SET = CATALYST / "Test_full_data_set"
MINIMAL_SET = CATALYST / "Test_minimal_data_set"
DELTA_SET = CATALYST / "oneroster_test_data"
V1P2_SET = CATALYST / "v1p2_full_dataset"
LEPO_SET = REAL_INPUT / "lepo-roster-hub" / "en"
OAT_SET = REAL_INPUT / "oat-sa-oneroster-import" / "OneRosterv1p1BaseCSV"
NICELION_SET = REAL_INPUT / "nicelion-oneroster-mocker"

CONTACT_ROLES = {"parent", "guardian", "relative"}
FRAMES = ("schools", "users", "sections", "enrollments")

MANIFEST = """propertyName,value
manifest.version,1.0
oneroster.version,1.1
file.orgs,bulk
file.users,bulk
file.classes,bulk
file.enrollments,bulk
"""
ORGS = """sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId
dist-1,active,,Lakeside District,district,,
sch-1,active,,North School,school,NS-1,dist-1
sch-2,active,,South School,school,SS-2,dist-1
"""
USERS = (
    "sourcedId,status,orgSourcedIds,role,givenName,familyName,email,username,"
    "identifier,grades\n"
    "stu-1,active,sch-1,student,Ada,Lovelace,ada@example.org,ada,S-1,3\n"
    "tea-1,,sch-1,teacher,Alan,Turing,alan@example.org,alan,T-1,\n"
)
CLASSES = """sourcedId,status,title,classCode,schoolSourcedId
cls-1,active,Reading,R-1,sch-1
"""
ENROLLMENTS = """sourcedId,status,classSourcedId,userSourcedId,role
enr-1,active,cls-1,stu-1,student
enr-2,active,cls-1,tea-1,teacher
"""


# Helpers


def raw_rows(path: Path) -> list[dict[str, str]]:
    """Read a CSV file with the csv module alone, to compute expected values."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def write_set(folder: Path, **files: str | bytes | None) -> Path:
    """Write a small valid OneRoster set into ``folder``, with files replaced by name.

    A keyword names a file by its stem (``users=...`` writes users.csv), and None
    leaves that file out.
    """
    contents: dict[str, str | bytes | None] = {
        "manifest": MANIFEST,
        "orgs": ORGS,
        "users": USERS,
        "classes": CLASSES,
        "enrollments": ENROLLMENTS,
    }
    contents.update(files)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, content in contents.items():
        if content is None:
            continue
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / f"{stem}.csv").write_bytes(data)
    return folder


def user(roster: Roster, provider_id: str) -> pd.Series:
    rows = roster.users[roster.users["provider_id"] == provider_id]
    assert len(rows) == 1, f"expected one user {provider_id}, found {len(rows)}"
    return rows.iloc[0]


def findings_of(roster: Roster, check: str) -> list:
    return [finding for finding in roster.findings if finding.check == check]


def assert_same_roster(left: Roster, right: Roster) -> None:
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(left, name), getattr(right, name))
    assert left.modes == right.modes
    assert left.findings == right.findings


def stored_users(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if row["role"].strip().lower() not in CONTACT_ROLES]


# Catalyst Test_full_data_set (OneRoster 1.1, bulk)


def test_full_set_frames_have_roster_columns():
    roster = read_oneroster_csv(FULL_SET)

    assert tuple(roster.schools.columns) == SCHOOL_COLUMNS
    assert tuple(roster.users.columns) == USER_COLUMNS
    assert tuple(roster.sections.columns) == SECTION_COLUMNS
    assert tuple(roster.enrollments.columns) == ENROLLMENT_COLUMNS


def test_full_set_counts_match_raw_files():
    roster = read_oneroster_csv(FULL_SET)
    orgs = raw_rows(FULL_SET / "orgs.csv")
    users = raw_rows(FULL_SET / "users.csv")
    classes = raw_rows(FULL_SET / "classes.csv")
    enrollments = raw_rows(FULL_SET / "enrollments.csv")

    assert len(roster.schools) == sum(row["type"] == "school" for row in orgs)
    assert len(roster.users) == len(stored_users(users))
    assert len(roster.sections) == len(classes)
    assert len(roster.enrollments) == len(stored_users(enrollments))


def test_full_set_modes_are_bulk():
    roster = read_oneroster_csv(FULL_SET)

    assert roster.modes == {
        "schools": "bulk",
        "users": "bulk",
        "sections": "bulk",
        "enrollments": "bulk",
    }


def test_full_set_source_is_the_path():
    roster = read_oneroster_csv(FULL_SET)

    assert roster.source == str(FULL_SET)


def test_full_set_folder_and_zip_match():
    from_folder = read_oneroster_csv(FULL_SET)
    from_zip = read_oneroster_csv(CATALYST / "Test_full_data_set.zip")

    assert_same_roster(from_folder, from_zip)


def test_full_set_parents_counted_not_stored():
    roster = read_oneroster_csv(FULL_SET)
    users = raw_rows(FULL_SET / "users.csv")
    parents = [row for row in users if row["role"] in CONTACT_ROLES]

    findings = findings_of(roster, "contacts_not_stored")
    assert len(findings) == 1
    assert findings[0].message.startswith(f"{len(parents)} users ")
    assert findings[0].entity == "users"
    assert findings[0].level == "warning"
    assert (
        not roster.users["provider_id"]
        .isin([row["sourcedId"] for row in parents])
        .any()
    )


def test_full_set_roles_and_kinds():
    roster = read_oneroster_csv(FULL_SET)

    for row in stored_users(raw_rows(FULL_SET / "users.csv")):
        stored = user(roster, row["sourcedId"])
        expected_kind = "student" if row["role"] == "student" else "educator"
        assert stored["kind"] == expected_kind, row["sourcedId"]
        assert stored["role"] == row["role"], row["sourcedId"]


def test_full_set_orphan_department_kept():
    roster = read_oneroster_csv(FULL_SET)
    department = raw_rows(FULL_SET / "orgs.csv")[0]

    assert department["type"] == "department"
    assert set(roster.users["school_id"]) == {department["sourcedId"]}
    assert set(roster.users["school_ids"]) == {(department["sourcedId"],)}


def test_full_set_empty_user_status_reads_active():
    roster = read_oneroster_csv(FULL_SET)
    empty_status = [
        row["sourcedId"]
        for row in raw_rows(FULL_SET / "users.csv")
        if row["status"] == ""
    ]

    assert empty_status
    for provider_id in empty_status:
        assert user(roster, provider_id)["status"] == "active"


def test_full_set_section_status_kept():
    roster = read_oneroster_csv(FULL_SET)
    expected = [row["status"] or "active" for row in raw_rows(FULL_SET / "classes.csv")]

    assert list(roster.sections["status"]) == expected
    assert "tobedeleted" in expected


def test_full_set_sections_map_class_fields():
    roster = read_oneroster_csv(FULL_SET)
    classes = raw_rows(FULL_SET / "classes.csv")

    assert list(roster.sections["provider_id"]) == [row["sourcedId"] for row in classes]
    assert list(roster.sections["school_id"]) == [
        row["schoolSourcedId"] for row in classes
    ]
    assert list(roster.sections["name"]) == [row["title"] for row in classes]
    assert list(roster.sections["sis_id"]) == [row["classCode"] for row in classes]


def test_full_set_user_field_mapping():
    roster = read_oneroster_csv(FULL_SET)
    row = stored_users(raw_rows(FULL_SET / "users.csv"))[0]
    stored = user(roster, row["sourcedId"])

    assert stored["given_name"] == row["givenName"]
    assert stored["family_name"] == row["familyName"]
    assert stored["email"] == row["email"]
    assert stored["username"] == row["username"]
    assert stored["sis_id"] == row["identifier"]
    assert stored["grade"] == normalize_grade(row["grades"])[0]


def test_full_set_findings_omit_names_emails():
    roster = read_oneroster_csv(FULL_SET)
    personal = set()
    for row in raw_rows(FULL_SET / "users.csv"):
        personal.update({row["givenName"], row["familyName"], row["email"]})

    for finding in roster.findings:
        for value in personal:
            assert value not in finding.message, finding.check


# Catalyst Test_minimal_data_set


def test_minimal_set_counts_match_raw_files():
    roster = read_oneroster_csv(MINIMAL_SET)
    users = raw_rows(MINIMAL_SET / "users.csv")
    enrollments = raw_rows(MINIMAL_SET / "enrollments.csv")

    assert len(roster.users) == len(stored_users(users))
    assert len(roster.sections) == len(raw_rows(MINIMAL_SET / "classes.csv"))
    assert len(roster.enrollments) == len(stored_users(enrollments))


def test_minimal_set_empty_fields_are_missing():
    roster = read_oneroster_csv(MINIMAL_SET)

    assert roster.users["email"].isna().all()
    assert roster.users["grade"].isna().all()
    assert roster.sections["sis_id"].isna().all()


def test_minimal_set_empty_statuses_read_active():
    roster = read_oneroster_csv(MINIMAL_SET)

    for name in FRAMES:
        assert (getattr(roster, name)["status"] == "active").all(), name


def test_minimal_set_identifier_is_sis_id():
    roster = read_oneroster_csv(MINIMAL_SET)
    row = raw_rows(MINIMAL_SET / "users.csv")[0]

    assert user(roster, row["sourcedId"])["sis_id"] == row["identifier"]


def test_minimal_set_zip_matches_folder():
    from_folder = read_oneroster_csv(MINIMAL_SET)
    from_zip = read_oneroster_csv(CATALYST / "Test_minimal_data_set.zip")

    assert_same_roster(from_folder, from_zip)


# Catalyst oneroster_test_data (OneRoster 1.2, all delta)


def test_delta_set_modes_are_delta():
    roster = read_oneroster_csv(DELTA_SET)

    assert set(roster.modes.values()) == {"delta"}
    assert roster.is_delta


def test_delta_set_has_no_absent_file_warning():
    roster = read_oneroster_csv(DELTA_SET)

    assert findings_of(roster, "file_absent") == []


def test_delta_set_counts_match_raw_files():
    roster = read_oneroster_csv(DELTA_SET)
    orgs = raw_rows(DELTA_SET / "orgs.csv")

    assert len(roster.schools) == sum(row["type"] == "school" for row in orgs)
    assert len(roster.users) == len(raw_rows(DELTA_SET / "users.csv"))
    assert len(roster.sections) == len(raw_rows(DELTA_SET / "classes.csv"))
    assert len(roster.enrollments) == len(raw_rows(DELTA_SET / "enrollments.csv"))


def test_delta_set_roles_come_from_roles_file():
    roster = read_oneroster_csv(DELTA_SET)
    role = raw_rows(DELTA_SET / "roles.csv")[0]
    stored = user(roster, role["userSourcedId"])

    assert "role" not in raw_rows(DELTA_SET / "users.csv")[0]
    assert stored["role"] == role["role"]
    assert stored["kind"] == "student"
    assert stored["school_id"] == role["orgSourcedId"]
    assert stored["school_ids"] == (role["orgSourcedId"],)


def test_delta_set_zip_matches_folder():
    from_folder = read_oneroster_csv(DELTA_SET)
    from_zip = read_oneroster_csv(CATALYST / "oneroster_test_data.zip")

    assert_same_roster(from_folder, from_zip)


# Catalyst v1p2_full_dataset (OneRoster 1.2 with a ragged roles.csv)


def test_v1p2_set_ragged_roles_file_raises():
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(V1P2_SET)

    assert caught.value.path == str(V1P2_SET / "roles.csv")
    assert caught.value.line == 2
    assert "11 columns" in str(caught.value)


def test_v1p2_zip_ragged_roles_file_raises():
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(CATALYST / "v1p2_full_dataset.zip")

    assert caught.value.path.endswith("roles.csv")
    assert caught.value.line == 2


def test_v1p2_repaired_roles_file_reads(tmp_path):
    folder = tmp_path / "v1p2"
    shutil.copytree(V1P2_SET, folder)
    roles = raw_rows(V1P2_SET / "roles.csv")
    header = [name for name in roles[0] if name]
    with (folder / "roles.csv").open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([row[name] for name in header] for row in roles)

    roster = read_oneroster_csv(folder)

    users = raw_rows(V1P2_SET / "users.csv")
    assert len(roster.users) == len(users)
    # usr-222-123456 is a primary teacher and a secondary guardian.
    assert user(roster, "usr-222-123456")["role"] == "teacher"
    assert user(roster, "usr-222-1234561")["role"] == "site_administrator"
    assert user(roster, "usr-222-1234561")["kind"] == "educator"


# LEPO roster-hub (every field quoted)


def test_lepo_counts_match_raw_files():
    roster = read_oneroster_csv(LEPO_SET)
    orgs = raw_rows(LEPO_SET / "orgs.csv")

    assert len(roster.schools) == sum(row["type"] == "school" for row in orgs)
    assert len(roster.users) == len(stored_users(raw_rows(LEPO_SET / "users.csv")))
    assert len(roster.sections) == len(raw_rows(LEPO_SET / "classes.csv"))
    assert len(roster.enrollments) == len(raw_rows(LEPO_SET / "enrollments.csv"))


def test_lepo_manifest_typo_is_ignored():
    manifest = raw_rows(LEPO_SET / "manifest.csv")

    roster = read_oneroster_csv(LEPO_SET)

    assert "fiel.demographics" in [row["propertyName"] for row in manifest]
    assert set(roster.modes.values()) == {"bulk"}


def test_lepo_quoted_empty_fields_are_missing():
    roster = read_oneroster_csv(LEPO_SET)

    assert roster.users["sis_id"].isna().all()
    assert roster.users["grade"].isna().all()


def test_lepo_enrollment_roles_kept_as_given():
    roster = read_oneroster_csv(LEPO_SET)
    enrollments = raw_rows(LEPO_SET / "enrollments.csv")
    teachers = sum(row["role"] == "teacher" for row in enrollments)

    assert (roster.enrollments["role"] == "teacher").sum() == teachers


def test_lepo_zip_matches_folder():
    from_folder = read_oneroster_csv(LEPO_SET)
    from_zip = read_oneroster_csv(LEPO_SET / "oneroster.zip")

    assert_same_roster(from_folder, from_zip)


# OAT OneRoster 1.1 sample (reordered columns, header-only files)


def test_oat_counts_match_raw_files():
    roster = read_oneroster_csv(OAT_SET)
    orgs = raw_rows(OAT_SET / "orgs.csv")

    assert len(roster.schools) == sum(row["type"] == "school" for row in orgs)
    assert len(roster.users) == len(stored_users(raw_rows(OAT_SET / "users.csv")))
    assert len(roster.sections) == len(raw_rows(OAT_SET / "classes.csv"))
    assert len(roster.enrollments) == len(raw_rows(OAT_SET / "enrollments.csv"))


def test_oat_reordered_enrollment_columns_are_read():
    roster = read_oneroster_csv(OAT_SET)
    enrollments = raw_rows(OAT_SET / "enrollments.csv")

    assert list(roster.enrollments["section_id"]) == [
        row["classSourcedId"] for row in enrollments
    ]
    assert list(roster.enrollments["user_id"]) == [
        row["userSourcedId"] for row in enrollments
    ]
    assert list(roster.enrollments["role"]) == [row["role"] for row in enrollments]


def test_oat_users_keep_their_school():
    roster = read_oneroster_csv(OAT_SET)

    for row in raw_rows(OAT_SET / "users.csv"):
        stored = user(roster, row["sourcedId"])
        assert stored["school_id"] == row["orgSourcedIds"]
        assert stored["school_ids"] == (row["orgSourcedIds"],)
        assert stored["sis_id"] == row["identifier"]


def test_oat_school_identifiers_are_sis_ids():
    roster = read_oneroster_csv(OAT_SET)
    orgs = raw_rows(OAT_SET / "orgs.csv")

    assert list(roster.schools["sis_id"]) == [row["identifier"] for row in orgs]


# nicelion oneroster-mocker (users and orgs without a manifest)


def test_nicelion_without_manifest_raises():
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(NICELION_SET)

    assert caught.value.path == str(NICELION_SET)
    assert "manifest.csv" in str(caught.value)
    assert "bulk, delta or absent" in str(caught.value)


def copy_nicelion(folder: Path, users_file: str) -> Path:
    """Copy the nicelion orgs and a users file into ``folder`` with a manifest."""
    folder.mkdir()
    shutil.copy(NICELION_SET / "orgs.csv", folder / "orgs.csv")
    shutil.copy(NICELION_SET / users_file, folder / "users.csv")
    manifest = MANIFEST.replace("file.classes,bulk", "file.classes,absent")
    manifest = manifest.replace("file.enrollments,bulk", "file.enrollments,absent")
    (folder / "manifest.csv").write_text(manifest, encoding="utf-8")
    return folder


def test_nicelion_principal_is_an_educator(tmp_path):
    roster = read_oneroster_csv(copy_nicelion(tmp_path / "set", "users.csv"))
    principals = [
        row
        for row in raw_rows(NICELION_SET / "users.csv")
        if row["role"] == "principal"
    ]

    assert principals
    for row in principals:
        assert user(roster, row["sourcedId"])["kind"] == "educator"
        assert user(roster, row["sourcedId"])["role"] == "principal"


def test_nicelion_grades_are_normalized(tmp_path):
    roster = read_oneroster_csv(copy_nicelion(tmp_path / "set", "users.csv"))

    for row in stored_users(raw_rows(NICELION_SET / "users.csv")):
        expected = normalize_grade(row["grades"])[0]
        assert user(roster, row["sourcedId"])["grade"] == expected, row["grades"]
    assert "KG" in set(roster.users["grade"])


def test_nicelion_users_get_school_org(tmp_path):
    roster = read_oneroster_csv(copy_nicelion(tmp_path / "set", "users.csv"))
    schools = [
        row["sourcedId"]
        for row in raw_rows(NICELION_SET / "orgs.csv")
        if row["type"] == "school"
    ]

    assert list(roster.schools["provider_id"]) == schools
    assert set(roster.users["school_id"]) == set(schools)


def test_nicelion_absent_files_read_as_empty_delta(tmp_path):
    roster = read_oneroster_csv(copy_nicelion(tmp_path / "set", "users.csv"))

    assert roster.modes["sections"] == "delta"
    assert roster.modes["enrollments"] == "delta"
    assert roster.sections.empty
    assert roster.enrollments.empty
    assert {finding.entity for finding in findings_of(roster, "file_absent")} == {
        "sections",
        "enrollments",
    }


def test_nicelion_large_users_file(tmp_path):
    roster = read_oneroster_csv(copy_nicelion(tmp_path / "set", "test-csv.csv"))
    rows = raw_rows(NICELION_SET / "test-csv.csv")
    students = [row for row in rows if row["role"] == "student"]
    parents = [row for row in rows if row["role"] == "parent"]
    grades = {normalize_grade(row["grades"])[0] for row in students}

    assert (roster.users["kind"] == "student").sum() == len(students)
    assert len(roster.users) == len(rows) - len(parents)
    assert set(roster.users["grade"].dropna()) == grades
    assert "09" in grades
    message = findings_of(roster, "contacts_not_stored")[0].message
    assert message.startswith(f"{len(parents)} users ")


def test_nicelion_unknown_org_kept_as_given(tmp_path):
    roster = read_oneroster_csv(copy_nicelion(tmp_path / "set", "test-csv.csv"))
    org_ids = {row["orgSourcedIds"] for row in raw_rows(NICELION_SET / "test-csv.csv")}
    known_orgs = {row["sourcedId"] for row in raw_rows(NICELION_SET / "orgs.csv")}

    assert not org_ids & known_orgs
    assert set(roster.users["school_id"]) == org_ids
    assert set(roster.users["school_ids"]) == {(org_id,) for org_id in org_ids}


# Encoding and CSV syntax


def test_bom_header_is_read(tmp_path):
    roster = read_oneroster_csv(
        write_set(tmp_path, users=b"\xef\xbb\xbf" + USERS.encode("utf-8"))
    )

    assert list(roster.users["provider_id"]) == ["stu-1", "tea-1"]


def test_bom_manifest_is_read(tmp_path):
    roster = read_oneroster_csv(
        write_set(tmp_path, manifest=b"\xef\xbb\xbf" + MANIFEST.encode("utf-8"))
    )

    assert roster.modes["users"] == "bulk"


def test_crlf_line_endings_are_read(tmp_path):
    roster = read_oneroster_csv(
        write_set(
            tmp_path,
            manifest=MANIFEST.replace("\n", "\r\n"),
            users=USERS.replace("\n", "\r\n"),
        )
    )

    assert list(roster.users["provider_id"]) == ["stu-1", "tea-1"]
    assert user(roster, "tea-1")["grade"] is pd.NA


def test_quoted_comma_and_newline_stay_in_field(tmp_path):
    classes = (
        "sourcedId,status,title,classCode,schoolSourcedId\r\n"
        'cls-1,active,"Reading, Writing\r\nand Poetry",R-1,sch-1\r\n'
        "cls-2,active,Math,M-1,sch-1\r\n"
    )
    roster = read_oneroster_csv(write_set(tmp_path, classes=classes))

    assert list(roster.sections["name"]) == ["Reading, Writing\r\nand Poetry", "Math"]


def test_ragged_line_counts_multiline_fields(tmp_path):
    classes = (
        "sourcedId,status,title,classCode,schoolSourcedId\n"
        'cls-1,active,"Reading\nand Poetry",R-1,sch-1\n'
        "cls-2,active,Math,Algebra,M-1,sch-1\n"
    )
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, classes=classes))

    assert caught.value.line == 4


def test_header_names_ignore_case_spaces(tmp_path):
    users = (
        " SOURCEDID , Status ,ORGSOURCEDIDS, Role ,GivenName,FAMILYNAME,Email,"
        "username,IDENTIFIER,Grades\n"
        "stu-1,active,sch-1,student,Ada,Lovelace,ada@example.org,ada,S-1,3\n"
    )
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    stored = user(roster, "stu-1")
    assert stored["kind"] == "student"
    assert stored["family_name"] == "Lovelace"
    assert stored["school_id"] == "sch-1"


def test_metadata_and_extra_columns_are_ignored(tmp_path):
    users = (
        "sourcedId,metadata.givenName,role,givenName,orgSourcedIds,ext_vendor_role,"
        "metadata.role\n"
        "stu-1,Nickname,student,Ada,sch-1,teacher,teacher\n"
    )
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    stored = user(roster, "stu-1")
    assert stored["given_name"] == "Ada"
    assert stored["role"] == "student"
    assert tuple(roster.users.columns) == USER_COLUMNS


def test_trailing_blank_line_is_fine(tmp_path):
    roster = read_oneroster_csv(write_set(tmp_path, users=USERS + "\n"))

    assert len(roster.users) == 2


def test_file_without_final_newline_is_read(tmp_path):
    roster = read_oneroster_csv(write_set(tmp_path, users=USERS.rstrip("\n")))

    assert list(roster.users["provider_id"]) == ["stu-1", "tea-1"]


def test_header_only_file_reads_empty(tmp_path):
    header = CLASSES.splitlines()[0]
    roster = read_oneroster_csv(write_set(tmp_path, classes=header))

    assert roster.sections.empty
    assert tuple(roster.sections.columns) == SECTION_COLUMNS


def test_empty_file_raises(tmp_path):
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, classes=""))

    assert caught.value.path == str(tmp_path / "classes.csv")
    assert "header" in str(caught.value)


def test_ragged_row_names_file_and_line(tmp_path):
    users = USERS + "stu-2,active,sch-1,student,Grace,Hopper,grace@example.org\n"
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, users=users))

    message = str(caught.value)
    assert caught.value.path == str(tmp_path / "users.csv")
    assert caught.value.line == 4
    assert "users.csv, line 4" in message
    assert "Quote fields that contain commas, or repair the export." in message


def test_trailing_empty_header_columns_count(tmp_path):
    classes = (
        "sourcedId,status,title,classCode,schoolSourcedId,,\n"
        "cls-1,active,Reading,R-1,sch-1\n"
    )
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, classes=classes))

    assert caught.value.line == 2
    assert "7 columns" in str(caught.value)


def test_missing_required_column_names_column(tmp_path):
    classes = "sourcedId,status,title\ncls-1,active,Reading\n"
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, classes=classes))

    message = str(caught.value)
    assert caught.value.path == str(tmp_path / "classes.csv")
    assert "'schoolSourcedId'" in message
    assert "Add the column" in message


def test_windows_1252_bytes_raise_with_line(tmp_path):
    users = USERS + "stu-2,active,sch-1,student,Zoë,Brontë,zoe@example.org,zoe,S-2,4\n"
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, users=users.encode("cp1252")))

    message = str(caught.value)
    assert caught.value.path == str(tmp_path / "users.csv")
    assert caught.value.line == 4
    assert "Re-export the file as UTF-8." in message


def test_shift_jis_bytes_raise_with_line(tmp_path):
    orgs = ORGS.replace("North School", "北小学校")
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, orgs=orgs.encode("shift_jis")))

    assert caught.value.path == str(tmp_path / "orgs.csv")
    assert caught.value.line == 3
    assert "UTF-8" in str(caught.value)


def test_utf8_non_latin_text_is_read(tmp_path):
    orgs = ORGS.replace("North School", "北小学校")
    roster = read_oneroster_csv(write_set(tmp_path, orgs=orgs))

    assert "北小学校" in set(roster.schools["name"])


def test_errors_omit_names_and_emails(tmp_path):
    ragged = USERS + "stu-2,active,sch-1,student,Grace,Hopper,grace@example.org\n"
    badly_encoded = (
        USERS + "stu-3,active,sch-1,student,Zoë,Brontë,zoe@example.org,zoe,S-3,4\n"
    ).encode("cp1252")
    messages = []
    for name, users in (("ragged", ragged), ("encoded", badly_encoded)):
        with pytest.raises(RosterFileError) as caught:
            read_oneroster_csv(write_set(tmp_path / name, users=users))
        messages.append(str(caught.value))

    for message in messages:
        for value in ("Grace", "Hopper", "grace@example.org", "Bront", "zoe@"):
            assert value not in message


# Manifest


def test_manifest_missing_raises(tmp_path):
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, manifest=None))

    message = str(caught.value)
    assert caught.value.path == str(tmp_path)
    assert "manifest.csv" in message
    assert "bulk, delta or absent" in message


def test_file_declared_bulk_but_missing_raises(tmp_path):
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, enrollments=None))

    assert caught.value.path == str(tmp_path / "enrollments.csv")
    assert "bulk" in str(caught.value)


def test_absent_file_reads_as_empty_delta(tmp_path):
    manifest = MANIFEST.replace("file.users,bulk", "file.users,absent")
    roster = read_oneroster_csv(write_set(tmp_path, manifest=manifest, users=None))

    assert roster.users.empty
    assert tuple(roster.users.columns) == USER_COLUMNS
    assert roster.modes["users"] == "delta"
    assert roster.modes["schools"] == "bulk"
    findings = findings_of(roster, "file_absent")
    assert [(finding.entity, finding.level) for finding in findings] == [
        ("users", "warning")
    ]


def test_absent_file_in_delta_set_silent(tmp_path):
    manifest = MANIFEST.replace("bulk", "delta").replace(
        "file.users,delta", "file.users,absent"
    )
    roster = read_oneroster_csv(write_set(tmp_path, manifest=manifest, users=None))

    assert roster.modes["users"] == "delta"
    assert findings_of(roster, "file_absent") == []


def test_delta_mode_is_kept_per_file(tmp_path):
    manifest = MANIFEST.replace("file.enrollments,bulk", "file.enrollments,delta")
    roster = read_oneroster_csv(write_set(tmp_path, manifest=manifest))

    assert roster.modes["enrollments"] == "delta"
    assert roster.modes["users"] == "bulk"


def test_manifest_invalid_mode_names_value(tmp_path):
    manifest = MANIFEST.replace("file.users,bulk", "file.users,full")
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, manifest=manifest))

    assert caught.value.path == str(tmp_path / "manifest.csv")
    assert caught.value.line == 5
    assert "'full'" in str(caught.value)


def test_manifest_empty_mode_raises(tmp_path):
    manifest = MANIFEST.replace("file.classes,bulk", "file.classes,")
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, manifest=manifest))

    assert "file.classes" in str(caught.value)


def test_manifest_unused_rows_ignored(tmp_path):
    manifest = MANIFEST + "fiel.demographics,absent\nfile.scoreScales,\nfile.x,maybe\n"
    roster = read_oneroster_csv(write_set(tmp_path, manifest=manifest))

    assert set(roster.modes.values()) == {"bulk"}


def test_manifest_missing_file_row_raises(tmp_path):
    manifest = MANIFEST.replace("file.classes,bulk\n", "")
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_set(tmp_path, manifest=manifest))

    assert "file.classes" in str(caught.value)


def test_manifest_mode_case_is_ignored(tmp_path):
    manifest = MANIFEST.replace("file.users,bulk", "File.Users, Delta ")
    roster = read_oneroster_csv(write_set(tmp_path, manifest=manifest))

    assert roster.modes["users"] == "delta"


def test_file_names_match_any_case(tmp_path):
    folder = write_set(tmp_path)
    (folder / "users.csv").rename(folder / "Users.CSV")
    (folder / "manifest.csv").rename(folder / "MANIFEST.csv")

    roster = read_oneroster_csv(folder)

    assert len(roster.users) == 2


# Sources


def test_zip_with_files_in_a_folder_is_read(tmp_path):
    folder = write_set(tmp_path / "export")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"export/{path.name}")

    assert_same_roster(read_oneroster_csv(folder), read_oneroster_csv(archive))


def test_zip_errors_name_the_member(tmp_path):
    folder = write_set(tmp_path / "export", users=USERS + "stu-2,active\n")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, path.name)

    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(archive)

    assert caught.value.path == str(archive / "users.csv")
    assert caught.value.line == 4


def test_missing_source_raises(tmp_path):
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(tmp_path / "nowhere")

    assert caught.value.path == str(tmp_path / "nowhere")


def test_file_that_is_not_a_zip_raises(tmp_path):
    source = tmp_path / "users.csv"
    source.write_text(USERS, encoding="utf-8")
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(source)

    assert "zip" in str(caught.value)


def test_source_given_as_text(tmp_path):
    folder = write_set(tmp_path)

    roster = read_oneroster_csv(str(folder))

    assert roster.source == str(folder)


# Mapping


def test_parent_is_not_stored(tmp_path):
    users = (
        USERS
        + "par-1,active,sch-1,parent,Mary,Shelley,mary@example.org,mary,P-1,\n"
        + "gua-1,active,sch-1,guardian,Percy,Shelley,percy@example.org,percy,G-1,\n"
        + "rel-1,active,sch-1,relative,Claire,Clairmont,claire@example.org,cc,R-1,\n"
    )
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert list(roster.users["provider_id"]) == ["stu-1", "tea-1"]
    findings = findings_of(roster, "contacts_not_stored")
    assert len(findings) == 1
    assert findings[0].message == (
        "3 users with role parent/guardian/relative are not stored."
    )
    assert findings[0].entity == "users"
    assert findings[0].level == "warning"
    assert "Shelley" not in findings[0].message


def test_parent_enrollment_is_not_stored(tmp_path):
    enrollments = ENROLLMENTS + "enr-3,active,cls-1,par-1,parent\n"
    roster = read_oneroster_csv(write_set(tmp_path, enrollments=enrollments))

    assert list(roster.enrollments["user_id"]) == ["stu-1", "tea-1"]
    assert len(findings_of(roster, "contacts_not_stored")) == 1


def test_enrollment_role_is_lower_case(tmp_path):
    enrollments = ENROLLMENTS.replace(",teacher", ",Teacher")
    roster = read_oneroster_csv(write_set(tmp_path, enrollments=enrollments))

    assert list(roster.enrollments["role"]) == ["student", "teacher"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        pytest.param("teacher", "teacher", id="teacher"),
        pytest.param("Teacher", "teacher", id="capitalised"),
        pytest.param("aide", "aide", id="aide"),
        pytest.param("proctor", "proctor", id="proctor"),
        pytest.param("administrator", "administrator", id="administrator"),
        pytest.param("principal", "principal", id="principal"),
        pytest.param("counselor", "counselor", id="counselor"),
        pytest.param("staff", "staff", id="staff"),
        pytest.param(
            "districtAdministrator", "district_administrator", id="district-admin"
        ),
        pytest.param("siteAdministrator", "site_administrator", id="site-admin"),
        pytest.param("systemAdministrator", "system_administrator", id="system-admin"),
    ],
)
def test_educator_roles_are_snake_case(tmp_path, role, expected):
    users = USERS.replace(",teacher,", f",{role},")
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "tea-1")["kind"] == "educator"
    assert user(roster, "tea-1")["role"] == expected


def test_unknown_role_has_no_kind(tmp_path):
    users = USERS.replace(",teacher,", ",Mascot,")
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "tea-1")["kind"] is pd.NA
    assert user(roster, "tea-1")["role"] == "Mascot"


def test_unknown_grade_is_kept_with_warning(tmp_path):
    users = USERS.replace("S-1,3", "S-1,P1")
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["grade"] == "P1"
    findings = findings_of(roster, "unknown_grade")
    assert [(finding.provider_id, finding.level) for finding in findings] == [
        ("stu-1", "warning")
    ]
    assert "Ada" not in findings[0].message


def test_first_of_several_grades_is_used(tmp_path):
    users = USERS.replace("S-1,3", 'S-1,"9,10"')
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["grade"] == "09"


def test_inactive_status_is_kept(tmp_path):
    users = USERS.replace("stu-1,active", "stu-1,inactive")
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["status"] == "inactive"


def test_tobedeleted_status_is_kept(tmp_path):
    enrollments = ENROLLMENTS.replace("enr-1,active", "enr-1,toBeDeleted")
    roster = read_oneroster_csv(write_set(tmp_path, enrollments=enrollments))

    assert list(roster.enrollments["status"]) == ["tobedeleted", "active"]


def test_department_resolves_to_parent_school(tmp_path):
    orgs = ORGS + "dep-1,active,,Science,department,,sch-2\n"
    users = USERS.replace("stu-1,active,sch-1", "stu-1,active,dep-1")
    roster = read_oneroster_csv(write_set(tmp_path, orgs=orgs, users=users))

    assert user(roster, "stu-1")["school_id"] == "sch-2"
    assert user(roster, "stu-1")["school_ids"] == ("sch-2",)
    assert "dep-1" not in set(roster.schools["provider_id"])


def test_orphan_department_kept_as_given(tmp_path):
    orgs = ORGS + "dep-1,active,,Science,department,,sch-9\n"
    users = USERS.replace("stu-1,active,sch-1", "stu-1,active,dep-1")
    roster = read_oneroster_csv(write_set(tmp_path, orgs=orgs, users=users))

    assert user(roster, "stu-1")["school_id"] == "dep-1"


def test_district_org_kept_as_given(tmp_path):
    users = USERS.replace("stu-1,active,sch-1", 'stu-1,active,"dist-1,sch-1"')
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["school_ids"] == ("dist-1", "sch-1")
    assert "dist-1" not in set(roster.schools["provider_id"])


def test_school_id_is_first_org_in_file_order(tmp_path):
    users = USERS.replace("stu-1,active,sch-1", 'stu-1,active,"sch-2, sch-1,sch-2"')
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["school_id"] == "sch-2"
    assert user(roster, "stu-1")["school_ids"] == ("sch-1", "sch-2")


def test_primary_org_sets_school_id(tmp_path):
    users = (
        "sourcedId,orgSourcedIds,role,primaryOrgSourcedId\n"
        'stu-1,"sch-1,sch-2",student,sch-2\n'
        'stu-2,"sch-1,sch-2",student,\n'
    )
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["school_id"] == "sch-2"
    assert user(roster, "stu-2")["school_id"] == "sch-1"


def test_user_without_orgs_has_no_school(tmp_path):
    users = USERS.replace("stu-1,active,sch-1", "stu-1,active,")
    roster = read_oneroster_csv(write_set(tmp_path, users=users))

    assert user(roster, "stu-1")["school_id"] is pd.NA
    assert user(roster, "stu-1")["school_ids"] == ()


def test_only_school_orgs_are_schools(tmp_path):
    roster = read_oneroster_csv(write_set(tmp_path))

    assert list(roster.schools["provider_id"]) == ["sch-1", "sch-2"]
    assert list(roster.schools["sis_id"]) == ["NS-1", "SS-2"]
    assert list(roster.schools["name"]) == ["North School", "South School"]


# OneRoster 1.2 roles.csv

USERS_1P2 = """sourcedId,status,username,givenName,familyName,primaryOrgSourcedId
stu-1,active,ada,Ada,Lovelace,
tea-1,active,alan,Alan,Turing,
par-1,active,mary,Mary,Shelley,
new-1,active,grace,Grace,Hopper,
"""
ROLES_1P2 = """sourcedId,status,userSourcedId,roleType,role,orgSourcedId
r-1,active,stu-1,primary,student,sch-1
r-2,active,tea-1,secondary,guardian,sch-1
r-3,active,tea-1,secondary,teacher,sch-1
r-4,active,tea-1,primary,teacher,sch-2
r-5,active,par-1,primary,parent,sch-1
"""


def write_1p2_set(folder: Path, roles: str | None = ROLES_1P2) -> Path:
    manifest = MANIFEST.replace("1.1", "1.2")
    if roles is not None:
        manifest += "file.roles,bulk\n"
    return write_set(folder, manifest=manifest, users=USERS_1P2, roles=roles)


def test_1p2_primary_role_wins(tmp_path):
    roster = read_oneroster_csv(write_1p2_set(tmp_path))

    assert user(roster, "tea-1")["role"] == "teacher"
    assert user(roster, "tea-1")["school_id"] == "sch-2"
    assert user(roster, "tea-1")["school_ids"] == ("sch-1", "sch-2")


def test_1p2_contact_roles_are_not_stored(tmp_path):
    roster = read_oneroster_csv(write_1p2_set(tmp_path))

    assert "par-1" not in set(roster.users["provider_id"])
    assert len(findings_of(roster, "contacts_not_stored")) == 1


def test_1p2_user_without_role_has_no_kind(tmp_path):
    roster = read_oneroster_csv(write_1p2_set(tmp_path))

    assert user(roster, "new-1")["kind"] is pd.NA
    assert user(roster, "new-1")["role"] is pd.NA


def test_1p2_tobedeleted_role_is_ignored(tmp_path):
    roles = ROLES_1P2.replace("r-4,active", "r-4,tobedeleted")
    roster = read_oneroster_csv(write_1p2_set(tmp_path, roles=roles))

    assert user(roster, "tea-1")["school_ids"] == ("sch-1",)


def test_1p2_missing_roles_file_raises(tmp_path):
    with pytest.raises(RosterFileError) as caught:
        read_oneroster_csv(write_1p2_set(tmp_path, roles=None))

    message = str(caught.value)
    assert caught.value.path == str(tmp_path / "users.csv")
    assert "'role'" in message
    assert "roles.csv" in message


# Memory


def test_chunked_frames_match_one_chunk(tmp_path, monkeypatch):
    folder = write_set(tmp_path)
    whole = read_oneroster_csv(folder)

    monkeypatch.setattr(oneroster_csv, "CHUNK_ROWS", 1)
    chunked = read_oneroster_csv(folder)

    assert_same_roster(whole, chunked)


def test_large_users_file_is_read(tmp_path):
    lines = [USERS.splitlines()[0]]
    for number in range(250_000):
        lines.append(
            f"u-{number},active,sch-{number % 2 + 1},student,Given,Family,"
            f"u{number}@example.org,u{number},S-{number},{number % 12 + 1}"
        )
    roster = read_oneroster_csv(write_set(tmp_path, users="\n".join(lines) + "\n"))

    assert len(roster.users) == 250_000
    assert roster.users["provider_id"].is_unique
    assert roster.users.index.equals(pd.RangeIndex(250_000))


def test_oversized_field_error_names_the_cause(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    shutil.copytree(CATALYST / "Test_full_data_set", folder)
    users = folder / "users.csv"
    lines = users.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1] + ',"' + "x" * 200_000 + '"'
    users.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(RosterFileError, match="longer than 131,072 characters"):
        read_oneroster_csv(folder)
