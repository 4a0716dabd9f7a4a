"""The demo district written as OneRoster CSV, Clever v3.0 and OneRoster 1.1 REST."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rostersync import demo
from rostersync.demo import DEMO_FILES, DEMO_FORMATS, DemoSize, write_demo_district
from rostersync.readers.clever import read_clever_files
from rostersync.readers.oneroster_csv import read_oneroster_csv
from rostersync.roster import (
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    USER_COLUMNS,
    Roster,
)

SIZE = DemoSize(students=120, schools=3)
# Columns that identify a row of each roster frame, to sort by before comparing.
FRAME_KEYS = {
    "schools": ["provider_id"],
    "users": ["provider_id"],
    "sections": ["provider_id"],
    "enrollments": ["section_id", "user_id"],
}
FRAME_COLUMNS = {
    "schools": SCHOOL_COLUMNS,
    "users": USER_COLUMNS,
    "sections": SECTION_COLUMNS,
    "enrollments": ENROLLMENT_COLUMNS,
}
CLEVER_GRADES = {
    "InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten",
    "Kindergarten", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
    "13", "PostGraduate", "Ungraded", "Other", "",
}  # fmt: skip
REST_PREFIX = "/ims/oneroster/v1p1"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write the same small district in every format, one folder per format."""
    root = tmp_path_factory.mktemp("demo")
    return {
        name: write_demo_district(root / name, SIZE, format=name)
        for name in DEMO_FORMATS
    }


@pytest.fixture(scope="module")
def csv_roster(folders: dict[str, Path]) -> Roster:
    return read_oneroster_csv(folders["oneroster-csv"])


@pytest.fixture(scope="module")
def clever_roster(folders: dict[str, Path]) -> Roster:
    return read_clever_files(folders["clever"])


def _csv_rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _rest_records(folder: Path, collection: str) -> list[dict]:
    body = json.loads((folder / f"{collection}.json").read_text(encoding="utf-8"))
    return body[collection]


def _clever_records(folder: Path, entity: str) -> list[dict]:
    body = json.loads((folder / f"{entity}.json").read_text(encoding="utf-8"))
    return [record["data"] for record in body["data"]]


def _sorted_frame(roster: Roster, entity: str) -> pd.DataFrame:
    frame = getattr(roster, entity)
    return frame.sort_values(FRAME_KEYS[entity]).reset_index(drop=True)


# Files per format


@pytest.mark.parametrize("name", DEMO_FORMATS)
def test_format_writes_its_files(folders: dict[str, Path], name: str) -> None:
    written = sorted(path.name for path in folders[name].iterdir())
    assert written == sorted(DEMO_FILES[name])


def test_default_format_is_oneroster_csv(tmp_path: Path) -> None:
    folder = write_demo_district(tmp_path / "demo", DemoSize(students=5, schools=1))
    written = sorted(path.name for path in folder.iterdir())
    assert written == sorted(DEMO_FILES["oneroster-csv"])


def test_unknown_format_is_rejected(tmp_path: Path) -> None:
    unknown: Any = "oneroster-xml"
    with pytest.raises(ValueError, match="'oneroster-xml' is not supported"):
        write_demo_district(tmp_path / "demo", SIZE, format=unknown)
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("students", -1),
        ("schools", 0),
        ("students_per_section", 0),
        ("sections_per_student", -1),
    ],
)
def test_demo_size_rejects_invalid_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"DemoSize.{field} is {value}"):
        DemoSize(**{field: value})


# Determinism


@pytest.mark.parametrize("name", DEMO_FORMATS)
def test_same_seed_writes_same_bytes(
    folders: dict[str, Path], tmp_path: Path, name: str
) -> None:
    again = write_demo_district(tmp_path / name, SIZE, format=name)
    for file_name in DEMO_FILES[name]:
        first = (folders[name] / file_name).read_bytes()
        assert (again / file_name).read_bytes() == first, file_name


@pytest.mark.parametrize("name", DEMO_FORMATS)
def test_other_seed_changes_the_users(
    folders: dict[str, Path], tmp_path: Path, name: str
) -> None:
    other = write_demo_district(tmp_path / name, SIZE, seed=7, format=name)
    users_file = "users.csv" if name == "oneroster-csv" else "users.json"
    first = (folders[name] / users_file).read_bytes()
    assert (other / users_file).read_bytes() != first


# JSON layout


def _json_files() -> list[tuple[str, str]]:
    return [
        (name, file_name)
        for name in ("clever", "oneroster-rest")
        for file_name in DEMO_FILES[name]
    ]


def _record_list(name: str, file_name: str, body: dict) -> list:
    if name == "clever":
        return body["data"]
    return body[file_name.removesuffix(".json")]


@pytest.mark.parametrize("name, file_name", _json_files())
def test_json_file_has_one_record_per_line(
    folders: dict[str, Path], name: str, file_name: str
) -> None:
    raw = (folders[name] / file_name).read_bytes()
    body = json.loads(raw.decode("utf-8"))
    records = _record_list(name, file_name, body)
    lines = raw.decode("utf-8").split("\n")
    record_lines = lines[1:-2]

    assert raw.endswith(b"\n")
    assert lines[-1] == ""
    assert lines[0].endswith("[")
    assert lines[-2].startswith("]")
    assert len(record_lines) == len(records)
    assert all(line.endswith(",") for line in record_lines[:-1])
    assert not record_lines[-1].endswith(",")
    for line, record in zip(record_lines, records, strict=True):
        assert json.loads(line.removesuffix(",")) == record


@pytest.mark.parametrize("name, file_name", _json_files())
def test_json_file_is_compact(
    folders: dict[str, Path], name: str, file_name: str
) -> None:
    lines = (folders[name] / file_name).read_text(encoding="utf-8").split("\n")
    for line in lines[1:-2]:
        record = json.loads(line.removesuffix(","))
        compact = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        assert line.removesuffix(",") == compact


def test_empty_json_list_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    with demo._json_list_file(path, '{"data":[', "]}\n"):
        pass
    assert json.loads(path.read_text(encoding="utf-8")) == {"data": []}


# Same store from the CSV set and the Clever responses


def test_readers_report_no_findings(csv_roster: Roster, clever_roster: Roster) -> None:
    assert csv_roster.findings == []
    assert clever_roster.findings == []


@pytest.mark.parametrize("entity", FRAME_COLUMNS)
def test_readers_give_same_row_count(
    csv_roster: Roster, clever_roster: Roster, entity: str
) -> None:
    csv_frame = getattr(csv_roster, entity)
    assert len(csv_frame) > 0
    assert len(getattr(clever_roster, entity)) == len(csv_frame)


@pytest.mark.parametrize(
    "entity, column",
    [
        (entity, column)
        for entity, columns in FRAME_COLUMNS.items()
        for column in columns
    ],
)
def test_readers_give_same_column(
    csv_roster: Roster, clever_roster: Roster, entity: str, column: str
) -> None:
    from_csv = _sorted_frame(csv_roster, entity)[column]
    from_clever = _sorted_frame(clever_roster, entity)[column]
    pd.testing.assert_series_equal(from_clever, from_csv)


def test_district_covers_every_grade(csv_roster: Roster) -> None:
    students = csv_roster.users[csv_roster.users["kind"] == "student"]
    assert set(students["grade"]) == set(demo.GRADES)


# Clever responses


def test_clever_records_carry_their_uri(folders: dict[str, Path]) -> None:
    for entity in ("districts", "schools", "terms", "users", "sections"):
        path = folders["clever"] / f"{entity}.json"
        body = json.loads(path.read_text(encoding="utf-8"))
        assert body["links"] == [{"rel": "self", "uri": f"/v3.0/{entity}"}]
        for record in body["data"]:
            assert record["uri"] == f"/v3.0/{entity}/{record['data']['id']}"


def test_clever_grades_are_in_the_enum(folders: dict[str, Path]) -> None:
    users = _clever_records(folders["clever"], "users")
    schools = _clever_records(folders["clever"], "schools")
    sections = _clever_records(folders["clever"], "sections")
    students = [
        user["roles"]["student"] for user in users if "student" in user["roles"]
    ]

    assert {student["grade"] for student in students} <= CLEVER_GRADES
    assert {school["low_grade"] for school in schools} <= CLEVER_GRADES
    assert {school["high_grade"] for school in schools} <= CLEVER_GRADES
    assert {section["grade"] for section in sections} <= CLEVER_GRADES


def test_clever_sections_reference_the_term(folders: dict[str, Path]) -> None:
    (term,) = _clever_records(folders["clever"], "terms")
    sections = _clever_records(folders["clever"], "sections")
    assert {section["term_id"] for section in sections} == {term["id"]}


def test_clever_section_teacher_is_listed(folders: dict[str, Path]) -> None:
    for section in _clever_records(folders["clever"], "sections"):
        assert section["teachers"] == [section["teacher"]]


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SIZE, id="every-grade"),
        pytest.param(DemoSize(students=5, schools=2), id="few-grades"),
        pytest.param(DemoSize(students=2, schools=3), id="school-without-students"),
    ],
)
def test_clever_school_grade_range(tmp_path: Path, size: DemoSize) -> None:
    csv_folder = write_demo_district(tmp_path / "csv", size)
    clever_folder = write_demo_district(tmp_path / "clever", size, format="clever")
    order = {grade: index for index, grade in enumerate(demo.GRADES)}
    grades_of: dict[str, list[str]] = {}
    for user in _csv_rows(csv_folder, "users.csv"):
        if user["role"] == "student":
            grades_of.setdefault(user["orgSourcedIds"], []).append(user["grades"])

    for school in _clever_records(clever_folder, "schools"):
        grades = sorted(grades_of.get(school["id"], []), key=order.__getitem__)
        expected_low = demo.CLEVER_GRADES[grades[0]] if grades else ""
        expected_high = demo.CLEVER_GRADES[grades[-1]] if grades else ""
        assert school["low_grade"] == expected_low, school["id"]
        assert school["high_grade"] == expected_high, school["id"]


# OneRoster REST responses against the CSV set


def test_rest_orgs_match_csv(folders: dict[str, Path]) -> None:
    rows = _csv_rows(folders["oneroster-csv"], "orgs.csv")
    records = _rest_records(folders["oneroster-rest"], "orgs")
    district_id = rows[0]["sourcedId"]

    assert [record["sourcedId"] for record in records] == [
        row["sourcedId"] for row in rows
    ]
    for row, record in zip(rows, records, strict=True):
        assert record["name"] == row["name"]
        assert record["type"] == row["type"]
        assert record["identifier"] == row["identifier"]
        parent = record.get("parent", {}).get("sourcedId", "")
        assert parent == row["parentSourcedId"]
    school_refs = [
        {
            "href": f"{REST_PREFIX}/orgs/{record['sourcedId']}",
            "sourcedId": record["sourcedId"],
            "type": "org",
        }
        for record in records[1:]
    ]
    assert records[0]["children"] == school_refs
    assert records[1]["parent"]["href"] == f"{REST_PREFIX}/orgs/{district_id}"


def test_rest_users_match_csv(folders: dict[str, Path]) -> None:
    rows = _csv_rows(folders["oneroster-csv"], "users.csv")
    records = _rest_records(folders["oneroster-rest"], "users")

    assert [record["sourcedId"] for record in records] == [
        row["sourcedId"] for row in rows
    ]
    for row, record in zip(rows, records, strict=True):
        assert record["role"] == row["role"]
        assert record["username"] == row["username"]
        assert record["givenName"] == row["givenName"]
        assert record["familyName"] == row["familyName"]
        assert record["identifier"] == row["identifier"]
        assert record["email"] == row["email"]
        assert record["grades"] == ([row["grades"]] if row["grades"] else [])
        org_ids = [org["sourcedId"] for org in record["orgs"]]
        assert org_ids == row["orgSourcedIds"].split(",")


def test_rest_user_fields_follow_json_binding(folders: dict[str, Path]) -> None:
    for record in _rest_records(folders["oneroster-rest"], "users"):
        assert record["enabledUser"] == "true"
        assert record["userIds"] == []
        assert record["agents"] == []
        for org in record["orgs"]:
            assert org["type"] == "org"
            assert org["href"] == f"{REST_PREFIX}/orgs/{org['sourcedId']}"


def test_rest_classes_match_csv(folders: dict[str, Path]) -> None:
    rows = _csv_rows(folders["oneroster-csv"], "classes.csv")
    records = _rest_records(folders["oneroster-rest"], "classes")
    (session,) = _rest_records(folders["oneroster-rest"], "academicSessions")

    assert [record["sourcedId"] for record in records] == [
        row["sourcedId"] for row in rows
    ]
    for row, record in zip(rows, records, strict=True):
        assert record["title"] == row["title"]
        assert record["classCode"] == row["classCode"]
        assert record["classType"] == row["classType"]
        assert record["school"]["sourcedId"] == row["schoolSourcedId"]
        assert record["school"]["type"] == "org"
        assert record["course"]["type"] == "course"
        assert [term["sourcedId"] for term in record["terms"]] == [session["sourcedId"]]
        assert record["terms"][0]["type"] == "academicSession"


def test_rest_enrollments_match_csv(folders: dict[str, Path]) -> None:
    rows = _csv_rows(folders["oneroster-csv"], "enrollments.csv")
    records = _rest_records(folders["oneroster-rest"], "enrollments")

    assert [record["sourcedId"] for record in records] == [
        row["sourcedId"] for row in rows
    ]
    for row, record in zip(rows, records, strict=True):
        assert record["class"]["sourcedId"] == row["classSourcedId"]
        assert record["user"]["sourcedId"] == row["userSourcedId"]
        assert record["school"]["sourcedId"] == row["schoolSourcedId"]
        assert record["role"] == row["role"]
        expected_primary = "true" if row["role"] == "teacher" else "false"
        assert record["primary"] == expected_primary
        assert record["class"]["href"] == (
            f"{REST_PREFIX}/classes/{row['classSourcedId']}"
        )
        assert record["user"]["href"] == f"{REST_PREFIX}/users/{row['userSourcedId']}"


def test_rest_school_year_session(folders: dict[str, Path]) -> None:
    (session,) = _rest_records(folders["oneroster-rest"], "academicSessions")
    assert session["type"] == "schoolYear"
    assert session["schoolYear"] == session["endDate"][:4]
    assert session["startDate"] < session["endDate"]


@pytest.mark.parametrize(
    "collection", [name[:-5] for name in DEMO_FILES["oneroster-rest"]]
)
def test_rest_records_share_base_fields(
    folders: dict[str, Path], collection: str
) -> None:
    for record in _rest_records(folders["oneroster-rest"], collection):
        assert record["status"] == "active"
        assert record["dateLastModified"].endswith("Z")
        assert pd.Timestamp(record["dateLastModified"]).tzname() == "UTC"


# Clever responses against the CSV set


def test_clever_memberships_match_csv(folders: dict[str, Path]) -> None:
    rows = _csv_rows(folders["oneroster-csv"], "enrollments.csv")
    expected = sorted((row["classSourcedId"], row["userSourcedId"]) for row in rows)
    pairs = []
    for section in _clever_records(folders["clever"], "sections"):
        members = section["students"] + section["teachers"]
        pairs += [(section["id"], user_id) for user_id in members]
    assert sorted(pairs) == expected
