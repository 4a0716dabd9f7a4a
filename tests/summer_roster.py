"""A small district written as OneRoster CSV or Clever files from one description.

Tests change the description (share a summer school, add a student) and write the
files again, as a provider would serve the district's next state.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from rostersync.demo import USER_HEADER

CLEVER_GRADES = {"KG": "Kindergarten", **{f"{n:02d}": str(n) for n in range(1, 13)}}


@dataclass
class Person:
    id: str
    role: str
    schools: tuple[str, ...]
    grade: str = ""


@dataclass
class District:
    """Schools by id with their names, people, and sections with their members."""

    schools: dict[str, str] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)

    def add_school(self, school_id: str, name: str) -> None:
        self.schools[school_id] = name

    def add_person(self, person: Person) -> None:
        self.people[person.id] = person

    def add_section(self, section_id: str, school_id: str, members: list[str]) -> None:
        self.sections[section_id] = school_id
        self.members[section_id] = list(members)

    def copy(self) -> District:
        return District(
            dict(self.schools),
            {
                pid: Person(p.id, p.role, p.schools, p.grade)
                for pid, p in self.people.items()
            },
            dict(self.sections),
            {sid: list(m) for sid, m in self.members.items()},
        )


def regular_district(students_per_school: int = 15) -> District:
    """Two schools, each with a teacher, a section and its students."""
    district = District()
    number = 0
    for school in ("a", "b"):
        school_id = f"sch-{school}"
        district.add_school(school_id, f"School {school.upper()}")
        teacher = Person(f"tch-{school}", "teacher", (school_id,))
        district.add_person(teacher)
        members = [teacher.id]
        for _ in range(students_per_school):
            number += 1
            student = Person(
                f"stu-{number}", "student", (school_id,), f"{number % 12 + 1:02d}"
            )
            district.add_person(student)
            members.append(student.id)
        district.add_section(f"sec-{school}", school_id, members)
    return district


def write_oneroster(folder: Path, district: District) -> Path:
    """Write the district as a OneRoster 1.1 bulk CSV set and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "manifest.csv", ("propertyName", "value"), [
        ("manifest.version", "1.0"), ("oneroster.version", "1.1"),
        ("file.orgs", "bulk"), ("file.users", "bulk"), ("file.classes", "bulk"),
        ("file.enrollments", "bulk"), ("file.academicSessions", "absent"),
    ])  # fmt: skip
    _write(
        folder / "orgs.csv",
        ("sourcedId", "status", "dateLastModified", "name", "type", "identifier",
         "parentSourcedId"),
        [("dist", "active", "", "District", "district", "D", "")]
        + [(sid, "active", "", name, "school", sid.upper(), "dist")
           for sid, name in district.schools.items()],
    )  # fmt: skip
    _write(
        folder / "classes.csv",
        ("sourcedId", "status", "dateLastModified", "title", "grades",
         "courseSourcedId", "classCode", "classType", "location", "schoolSourcedId",
         "termSourcedIds", "subjects", "subjectCodes", "periods"),
        [(sid, "active", "", f"Reading {sid}", "", "", sid.upper(), "scheduled", "",
          school, "", "", "", "") for sid, school in district.sections.items()],
    )  # fmt: skip
    _write(
        folder / "users.csv",
        USER_HEADER,
        [(p.id, "active", "", "true", ",".join(p.schools), p.role, f"{p.id}.user", "",
          f"Given{p.id}", f"Family{p.id}", "", p.id.upper(), f"{p.id}@example.invalid",
          "", "", "", p.grade, "") for p in district.people.values()],
    )  # fmt: skip
    rows = []
    for sid, members in district.members.items():
        for member in members:
            person = district.people[member]
            rows.append(
                (f"enr-{sid}-{member}", "active", "", sid, district.sections[sid],
                 member, person.role, "", "", "")
            )  # fmt: skip
    _write(
        folder / "enrollments.csv",
        ("sourcedId", "status", "dateLastModified", "classSourcedId",
         "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate",
         "endDate"),
        rows,
    )  # fmt: skip
    return folder


def _write(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_clever(folder: Path, district: District) -> Path:
    """Write the district as saved Clever API v3 list responses."""
    folder.mkdir(parents=True, exist_ok=True)
    _clever(folder, "districts", [{"id": "dist", "name": "District"}])
    _clever(
        folder,
        "schools",
        [{"id": sid, "district": "dist", "name": name, "sis_id": sid.upper()}
         for sid, name in district.schools.items()],
    )  # fmt: skip
    users = []
    for person in district.people.values():
        role: dict[str, object] = {
            "school": person.schools[0],
            "schools": list(person.schools),
            "sis_id": person.id.upper(),
            "credentials": {"district_username": f"{person.id}.user"},
        }
        if person.role == "student":
            role["grade"] = CLEVER_GRADES[person.grade]
        users.append(
            {
                "id": person.id,
                "district": "dist",
                "email": f"{person.id}@example.invalid",
                "name": {"first": f"Given{person.id}", "last": f"Family{person.id}"},
                "roles": {person.role: role},
            }
        )
    _clever(folder, "users", users)
    sections = []
    for sid, members in district.members.items():
        teachers = [m for m in members if district.people[m].role == "teacher"]
        students = [m for m in members if district.people[m].role == "student"]
        sections.append(
            {
                "id": sid,
                "district": "dist",
                "school": district.sections[sid],
                "name": f"Reading {sid}",
                "sis_id": sid.upper(),
                "students": students,
                "teachers": teachers,
                "teacher": teachers[0] if teachers else None,
            }
        )
    _clever(folder, "sections", sections)
    return folder


def _clever(folder: Path, entity: str, records: list[dict]) -> None:
    document = {
        "data": [
            {"data": record, "uri": f"/v3.0/{entity}/{record['id']}"}
            for record in records
        ],
        "links": [{"rel": "self", "uri": f"/v3.0/{entity}"}],
    }
    (folder / f"{entity}.json").write_text(json.dumps(document), encoding="utf-8")
