"""Generate a synthetic district as a OneRoster 1.1 CSV set, deterministically.

The people are invented from short word lists. The same seed and size always give
the same files, so a second sync of an unchanged demo district changes nothing.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

GIVEN = (
    "Ada", "Ben", "Cleo", "Dev", "Ena", "Finn", "Gia", "Hal", "Ines", "Jon",
    "Kai", "Lea", "Milo", "Nia", "Omar", "Pia", "Quin", "Rae", "Sol", "Tia",
)  # fmt: skip
FAMILY = (
    "Alder", "Birch", "Cedar", "Dale", "Elm", "Fern", "Glen", "Hazel", "Ivy",
    "Juniper", "Knoll", "Laurel", "Maple", "North", "Oak", "Pine", "Reed", "Stone",
)  # fmt: skip
GRADES = ("KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")

MANIFEST = (
    ("manifest.version", "1.0"),
    ("oneroster.version", "1.1"),
    ("file.academicSessions", "absent"),
    ("file.categories", "absent"),
    ("file.classes", "bulk"),
    ("file.classResources", "absent"),
    ("file.courses", "absent"),
    ("file.courseResources", "absent"),
    ("file.demographics", "absent"),
    ("file.enrollments", "bulk"),
    ("file.lineItems", "absent"),
    ("file.orgs", "bulk"),
    ("file.resources", "absent"),
    ("file.results", "absent"),
    ("file.users", "bulk"),
    ("source.systemName", "rostersync demo"),
    ("source.systemCode", "demo"),
)
USER_HEADER = (
    "sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds",
    "role", "username", "userIds", "givenName", "familyName", "middleName",
    "identifier", "email", "sms", "phone", "agentSourcedIds", "grades", "password",
)  # fmt: skip


@dataclass(frozen=True)
class DemoSize:
    """The size of a generated district."""

    students: int = 1000
    schools: int = 3
    students_per_section: int = 25
    sections_per_student: int = 2


def write_demo_district(
    folder: Path, size: DemoSize = DemoSize(), seed: int = 2026, district: str = "demo"
) -> Path:
    """Write orgs, users, classes, enrollments and manifest CSVs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    schools = [f"{district}-sch-{n}" for n in range(1, size.schools + 1)]
    sections_per_school = max(
        1,
        size.students
        * size.sections_per_student
        // (size.students_per_section * size.schools),
    )
    teachers_per_school = max(1, sections_per_school // 3)

    _write_manifest(folder)
    _write_orgs(folder, district, schools)
    sections = _write_classes(folder, schools, sections_per_school)
    _write_users_and_enrollments(
        folder, rng, size, district, schools, sections, teachers_per_school
    )
    return folder


def _write_manifest(folder: Path) -> None:
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("propertyName", "value"))
        writer.writerows(MANIFEST)


def _write_orgs(folder: Path, district: str, schools: list[str]) -> None:
    with (folder / "orgs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ("sourcedId", "status", "dateLastModified", "name", "type", "identifier",
             "parentSourcedId")
        )  # fmt: skip
        writer.writerow((district, "active", "", "Demo District", "district", "D1", ""))
        for number, school in enumerate(schools, start=1):
            name = f"Demo School {number}"
            writer.writerow(
                (school, "active", "", name, "school", f"S{number}", district)
            )


def _write_classes(
    folder: Path, schools: list[str], per_school: int
) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    with (folder / "classes.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ("sourcedId", "status", "dateLastModified", "title", "grades",
             "courseSourcedId", "classCode", "classType", "location",
             "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes",
             "periods")
        )  # fmt: skip
        for school in schools:
            sections[school] = []
            for number in range(1, per_school + 1):
                section = f"{school}-cls-{number}"
                sections[school].append(section)
                writer.writerow(
                    (section, "active", "", f"Reading {number}", "", "", f"R{number}",
                     "scheduled", "", school, "", "", "", "")
                )  # fmt: skip
    return sections


def _write_users_and_enrollments(
    folder: Path,
    rng: random.Random,
    size: DemoSize,
    district: str,
    schools: list[str],
    sections: dict[str, list[str]],
    teachers_per_school: int,
) -> None:
    users_path = folder / "users.csv"
    enrollments_path = folder / "enrollments.csv"
    with (
        users_path.open("w", newline="", encoding="utf-8") as users_file,
        enrollments_path.open("w", newline="", encoding="utf-8") as enroll_file,
    ):
        users = csv.writer(users_file)
        enrollments = csv.writer(enroll_file)
        users.writerow(USER_HEADER)
        enrollments.writerow(
            ("sourcedId", "status", "dateLastModified", "classSourcedId",
             "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate",
             "endDate")
        )  # fmt: skip
        counter = 0

        def enroll(section: str, school: str, user: str, role: str) -> None:
            nonlocal counter
            counter += 1
            enrollments.writerow(
                (f"{district}-enr-{counter}", "active", "", section, school, user,
                 role, "", "", "")
            )  # fmt: skip

        for school_index, school in enumerate(schools):
            school_sections = sections[school]
            for number in range(1, teachers_per_school + 1):
                teacher = f"{district}-tch-{school_index + 1}-{number}"
                users.writerow(_user_row(rng, teacher, school, "teacher", "", number))
                for section in school_sections[number - 1 :: teachers_per_school]:
                    enroll(section, school, teacher, "teacher")

        for number in range(1, size.students + 1):
            school = schools[number % len(schools)]
            student = f"{district}-stu-{number}"
            grade = GRADES[number % len(GRADES)]
            users.writerow(_user_row(rng, student, school, "student", grade, number))
            picks = rng.sample(
                sections[school], min(size.sections_per_student, len(sections[school]))
            )
            for section in sorted(picks):
                enroll(section, school, student, "student")


def _user_row(
    rng: random.Random, user_id: str, school: str, role: str, grade: str, number: int
) -> tuple[str, ...]:
    given = rng.choice(GIVEN)
    family = rng.choice(FAMILY)
    username = f"{given}.{family}{number}".lower()
    email = f"{username}@demo.invalid"
    return (
        user_id, "active", "", "true", school, role, username, "", given, family, "",
        str(number), email, "", "", "", grade, "",
    )  # fmt: skip
