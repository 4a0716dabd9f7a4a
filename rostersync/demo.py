"""Generate a synthetic district deterministically, as OneRoster CSV or JSON files.

The people are invented from short word lists. The same seed and size always give
the same files, so a second sync of an unchanged demo district changes nothing.

The district is generated once, as a stream of records (``DemoDistrict``), and each
format has one writer that consumes the stream. The formats are a OneRoster 1.1 CSV
set, saved Clever v3.0 responses and saved OneRoster 1.1 REST responses. For the
same seed and size, all three contain the same schools, people, sections,
enrollments, ids and names.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, NamedTuple

GIVEN = (
    "Ada", "Ben", "Cleo", "Dev", "Ena", "Finn", "Gia", "Hal", "Ines", "Jon",
    "Kai", "Lea", "Milo", "Nia", "Omar", "Pia", "Quin", "Rae", "Sol", "Tia",
)  # fmt: skip
FAMILY = (
    "Alder", "Birch", "Cedar", "Dale", "Elm", "Fern", "Glen", "Hazel", "Ivy",
    "Juniper", "Knoll", "Laurel", "Maple", "North", "Oak", "Pine", "Reed", "Stone",
)  # fmt: skip
GRADES = ("KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")

DemoFormat = Literal["oneroster-csv", "clever", "oneroster-rest"]
DEMO_FORMATS: tuple[DemoFormat, ...] = ("oneroster-csv", "clever", "oneroster-rest")
DEMO_FILES: dict[DemoFormat, tuple[str, ...]] = {
    "oneroster-csv": (
        "manifest.csv", "orgs.csv", "classes.csv", "users.csv", "enrollments.csv",
    ),
    "clever": (
        "districts.json", "schools.json", "terms.json", "users.json", "sections.json",
    ),
    "oneroster-rest": (
        "orgs.json", "academicSessions.json", "classes.json", "users.json",
        "enrollments.json",
    ),
}  # fmt: skip

# Fixed timestamps and dates keep the JSON formats deterministic. The CSV set leaves
# dateLastModified empty, as it always has.
MODIFIED = "2025-08-01T00:00:00.000Z"
SCHOOL_YEAR_START = "2025-08-01"
SCHOOL_YEAR_END = "2026-06-30"
SCHOOL_YEAR_TITLE = "2025-2026"
# OneRoster names a school year by the calendar year in which it ends.
SCHOOL_YEAR = "2026"

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

    def __post_init__(self) -> None:
        minimums = {
            "students": 0,
            "schools": 1,
            "students_per_section": 1,
            "sections_per_student": 0,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if value < minimum:
                raise ValueError(
                    f"DemoSize.{name} is {value}, but it must be at least {minimum}."
                )


def write_demo_district(
    folder: Path,
    size: DemoSize = DemoSize(),
    seed: int = 2026,
    district: str = "demo",
    format: DemoFormat = "oneroster-csv",
) -> Path:
    """Write a demo district into ``folder`` in ``format`` and return the folder.

    The formats write these files:

    - ``oneroster-csv``: a OneRoster 1.1 CSV set (manifest, orgs, classes, users and
      enrollments).
    - ``clever``: Clever v3.0 list responses (districts, schools, terms, users and
      sections).
    - ``oneroster-rest``: OneRoster 1.1 REST responses (orgs, academicSessions,
      classes, users and enrollments).

    Every JSON file contains one record per line, so that it can be read line by line.
    Raises ValueError when ``format`` is not one of DEMO_FORMATS.
    """
    writers: dict[str, Callable[[Path, DemoDistrict], None]] = {
        "oneroster-csv": _write_oneroster_csv,
        "clever": _write_clever,
        "oneroster-rest": _write_oneroster_rest,
    }
    if format not in writers:
        raise ValueError(
            f"The demo format {format!r} is not supported. Use one of: "
            f"{', '.join(DEMO_FORMATS)}."
        )
    folder.mkdir(parents=True, exist_ok=True)
    writers[format](folder, DemoDistrict(district, size, seed))
    return folder


# The logical district


class DemoSchool(NamedTuple):
    """A school of the demo district."""

    sourced_id: str
    number: int
    name: str
    identifier: str


class DemoSection(NamedTuple):
    """A section (OneRoster class) of one school."""

    sourced_id: str
    school_id: str
    number: int
    title: str
    class_code: str


class DemoEnrollment(NamedTuple):
    """One enrollment of a person in a section."""

    sourced_id: str
    section_id: str


class DemoPerson(NamedTuple):
    """A teacher or a student, with the sections they are enrolled in."""

    sourced_id: str
    role: Literal["teacher", "student"]
    # Teachers are numbered per school and students per district. The number is also
    # the person's identifier (SIS id).
    number: int
    school_id: str
    given_name: str
    family_name: str
    username: str
    email: str
    # A OneRoster grade ("KG", "01" to "12"), or "" for a teacher.
    grade: str
    enrollments: tuple[DemoEnrollment, ...]


@dataclass(frozen=True)
class DemoDistrict:
    """The records of one demo district, generated from its id, size and seed.

    ``people()`` draws the names and section picks from a fresh random generator on
    every call, so that every call yields the same records.
    """

    sourced_id: str
    size: DemoSize
    seed: int
    name: str = "Demo District"
    identifier: str = "D1"

    @cached_property
    def schools(self) -> tuple[DemoSchool, ...]:
        return tuple(
            DemoSchool(
                f"{self.sourced_id}-sch-{number}",
                number,
                f"Demo School {number}",
                f"S{number}",
            )
            for number in range(1, self.size.schools + 1)
        )

    @property
    def sections_per_school(self) -> int:
        size = self.size
        enrollments = size.students * size.sections_per_student
        return max(1, enrollments // (size.students_per_section * size.schools))

    @property
    def teachers_per_school(self) -> int:
        return max(1, self.sections_per_school // 3)

    @property
    def course_id(self) -> str:
        """The one course that every section belongs to."""
        return f"{self.sourced_id}-crs-reading"

    @property
    def school_year_id(self) -> str:
        """The one school year (a Clever term, a OneRoster academic session)."""
        return f"{self.sourced_id}-year-{SCHOOL_YEAR}"

    def student_id(self, number: int) -> str:
        return f"{self.sourced_id}-stu-{number}"

    def sections(self) -> Iterator[DemoSection]:
        """Yield every section, school by school."""
        for school in self.schools:
            for number in range(1, self.sections_per_school + 1):
                yield DemoSection(
                    f"{school.sourced_id}-cls-{number}",
                    school.sourced_id,
                    number,
                    f"Reading {number}",
                    f"R{number}",
                )

    def school_grades(self, school: DemoSchool) -> tuple[str, ...]:
        """Return the grades of the school's students, in the order of GRADES."""
        count = len(self.schools)
        # Student n attends self.schools[n % count] and is in GRADES[n % len(GRADES)],
        # so the school's first len(GRADES) students already have all of its grades.
        first = school.number - 1 or count
        numbers = range(first, self.size.students + 1, count)[: len(GRADES)]
        present = {number % len(GRADES) for number in numbers}
        return tuple(GRADES[index] for index in sorted(present))

    def people(self) -> Iterator[DemoPerson]:
        """Yield the teachers school by school, then the students by number.

        The random draws come in the order the generator has always used (given
        name, family name, then a student's sections), because another order would
        change every demo district already written.
        """
        rng = random.Random(self.seed)
        enrollment_numbers = itertools.count(1)

        # Each teacher teaches every teachers_per_school-th section of their school.
        step = self.teachers_per_school
        for school in self.schools:
            school_sections = self._section_ids[school.sourced_id]
            for number in range(1, step + 1):
                given_name, family_name = rng.choice(GIVEN), rng.choice(FAMILY)
                yield self._person(
                    f"{self.sourced_id}-tch-{school.number}-{number}", "teacher",
                    number, school, "", (given_name, family_name),
                    school_sections[number - 1 :: step], enrollment_numbers,
                )  # fmt: skip

        for number in range(1, self.size.students + 1):
            school = self.schools[number % len(self.schools)]
            school_sections = self._section_ids[school.sourced_id]
            given_name, family_name = rng.choice(GIVEN), rng.choice(FAMILY)
            count = min(self.size.sections_per_student, len(school_sections))
            picks = rng.sample(school_sections, count)
            yield self._person(
                self.student_id(number), "student", number, school,
                GRADES[number % len(GRADES)], (given_name, family_name), sorted(picks),
                enrollment_numbers,
            )  # fmt: skip

    @cached_property
    def _section_ids(self) -> dict[str, list[str]]:
        """Map each school id to the ids of its sections, in number order."""
        section_ids: dict[str, list[str]] = {s.sourced_id: [] for s in self.schools}
        for section in self.sections():
            section_ids[section.school_id].append(section.sourced_id)
        return section_ids

    def _person(
        self,
        sourced_id: str,
        role: Literal["teacher", "student"],
        number: int,
        school: DemoSchool,
        grade: str,
        name: tuple[str, str],
        section_ids: list[str],
        enrollment_numbers: Iterator[int],
    ) -> DemoPerson:
        given_name, family_name = name
        username = f"{given_name}.{family_name}{number}".lower()
        enrollments = tuple(
            DemoEnrollment(f"{self.sourced_id}-enr-{next(enrollment_numbers)}", section)
            for section in section_ids
        )
        return DemoPerson(
            sourced_id, role, number, school.sourced_id, given_name, family_name,
            username, f"{username}@demo.invalid", grade, enrollments,
        )  # fmt: skip


# OneRoster 1.1 CSV


def _write_oneroster_csv(folder: Path, district: DemoDistrict) -> None:
    _write_manifest(folder)
    _write_orgs(folder, district)
    _write_classes(folder, district)
    _write_users_and_enrollments(folder, district)


def _write_manifest(folder: Path) -> None:
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("propertyName", "value"))
        writer.writerows(MANIFEST)


def _write_orgs(folder: Path, district: DemoDistrict) -> None:
    with (folder / "orgs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ("sourcedId", "status", "dateLastModified", "name", "type", "identifier",
             "parentSourcedId")
        )  # fmt: skip
        writer.writerow(
            (district.sourced_id, "active", "", district.name, "district",
             district.identifier, "")
        )  # fmt: skip
        for school in district.schools:
            writer.writerow(
                (school.sourced_id, "active", "", school.name, "school",
                 school.identifier, district.sourced_id)
            )  # fmt: skip


def _write_classes(folder: Path, district: DemoDistrict) -> None:
    with (folder / "classes.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ("sourcedId", "status", "dateLastModified", "title", "grades",
             "courseSourcedId", "classCode", "classType", "location",
             "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes",
             "periods")
        )  # fmt: skip
        for section in district.sections():
            writer.writerow(
                (section.sourced_id, "active", "", section.title, "", "",
                 section.class_code, "scheduled", "", section.school_id, "", "", "",
                 "")
            )  # fmt: skip


def _write_users_and_enrollments(folder: Path, district: DemoDistrict) -> None:
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
        for person in district.people():
            users.writerow(_user_row(person))
            for enrollment in person.enrollments:
                enrollments.writerow(
                    (enrollment.sourced_id, "active", "", enrollment.section_id,
                     person.school_id, person.sourced_id, person.role, "", "", "")
                )  # fmt: skip


def _user_row(person: DemoPerson) -> tuple[str, ...]:
    return (
        person.sourced_id, "active", "", "true", person.school_id, person.role,
        person.username, "", person.given_name, person.family_name, "",
        str(person.number), person.email, "", "", "", person.grade, "",
    )  # fmt: skip


# JSON files with one record per line

# Compact separators keep each record on one short line, and text outside ASCII is
# written as UTF-8 rather than as \u escapes.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@contextmanager
def _json_list_file(
    path: Path, head: str, tail: str
) -> Iterator[Callable[[object], None]]:
    """Open a JSON file whose one array has one element per line, and yield ``append``.

    The file is ``head``, a newline, the elements joined by ",\\n", a newline and
    ``tail``. ``head`` must end by opening the array and ``tail`` must start by
    closing it. The JSON stays valid when no element is appended.
    """
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(head)
        separator = "\n"

        def append(element: object) -> None:
            nonlocal separator
            handle.write(separator)
            handle.write(_encode_json(element))
            separator = ",\n"

        yield append
        handle.write("\n")
        handle.write(tail)


# Clever v3.0

# Clever's grade names for the OneRoster grades that the generator uses.
CLEVER_GRADES = {"KG": "Kindergarten", **{f"{n:02d}": str(n) for n in range(1, 13)}}
CLEVER_SUBJECT = "english/language arts"


@contextmanager
def _clever_list(folder: Path, entity: str) -> Iterator[Callable[[dict], None]]:
    """Open ``entity``.json as a Clever list response and yield ``append(data)``."""
    links = _encode_json([{"rel": "self", "uri": f"/v3.0/{entity}"}])
    head = '{"data":['
    tail = f'],"links":{links}}}\n'
    with _json_list_file(folder / f"{entity}.json", head, tail) as append:

        def append_record(data: dict) -> None:
            append({"data": data, "uri": f"/v3.0/{entity}/{data['id']}"})

        yield append_record


def _write_clever(folder: Path, district: DemoDistrict) -> None:
    with _clever_list(folder, "districts") as append:
        append({"id": district.sourced_id, "name": district.name})
    with _clever_list(folder, "schools") as append:
        for school in district.schools:
            append(_clever_school(district, school))
    with _clever_list(folder, "terms") as append:
        append(
            {
                "id": district.school_year_id,
                "district": district.sourced_id,
                "name": SCHOOL_YEAR_TITLE,
                "start_date": SCHOOL_YEAR_START,
                "end_date": SCHOOL_YEAR_END,
            }
        )
    members = _write_clever_users(folder, district)
    with _clever_list(folder, "sections") as append:
        for section in district.sections():
            teachers, students = members.pop(section.sourced_id, ([], ()))
            student_ids = [district.student_id(number) for number in students]
            append(_clever_section(district, section, teachers, student_ids))


def _clever_school(district: DemoDistrict, school: DemoSchool) -> dict:
    grades = district.school_grades(school)
    return {
        "id": school.sourced_id,
        "district": district.sourced_id,
        "name": school.name,
        "sis_id": school.identifier,
        "school_number": school.identifier,
        # Clever's grade enum includes "" for a school without students.
        "low_grade": CLEVER_GRADES[grades[0]] if grades else "",
        "high_grade": CLEVER_GRADES[grades[-1]] if grades else "",
        "created": MODIFIED,
        "last_modified": MODIFIED,
    }


class _SectionMembers(NamedTuple):
    teacher_ids: list[str]
    # Student numbers rather than ids, because a machine integer takes a fraction of
    # the memory of an id string.
    student_numbers: array


def _write_clever_users(
    folder: Path, district: DemoDistrict
) -> dict[str, _SectionMembers]:
    """Write users.json and return the teachers and students of each section.

    Clever lists a section's members in the section, not in the user.
    """
    # NOTE: the members of every section stay in memory until sections.json is
    # written. That is an estimated 8 bytes per student enrollment plus a few hundred
    # bytes per section, about 50 MB for 1,000,000 students at the default size.
    members: defaultdict[str, _SectionMembers] = defaultdict(
        lambda: _SectionMembers([], array("L"))
    )
    with _clever_list(folder, "users") as append:
        for person in district.people():
            append(_clever_user(district, person))
            for enrollment in person.enrollments:
                section = members[enrollment.section_id]
                if person.role == "teacher":
                    section.teacher_ids.append(person.sourced_id)
                else:
                    section.student_numbers.append(person.number)
    return members


def _clever_user(district: DemoDistrict, person: DemoPerson) -> dict:
    role: dict[str, object] = {
        "school": person.school_id,
        "schools": [person.school_id],
        "sis_id": str(person.number),
    }
    if person.role == "student":
        role["grade"] = CLEVER_GRADES[person.grade]
        role["student_number"] = str(person.number)
    else:
        role["teacher_number"] = str(person.number)
    role["credentials"] = {"district_username": person.username}
    return {
        "id": person.sourced_id,
        "district": district.sourced_id,
        "email": person.email,
        "name": {"first": person.given_name, "last": person.family_name, "middle": ""},
        "created": MODIFIED,
        "last_modified": MODIFIED,
        "roles": {person.role: role},
    }


def _clever_section(
    district: DemoDistrict,
    section: DemoSection,
    teacher_ids: list[str],
    student_ids: list[str],
) -> dict:
    return {
        "id": section.sourced_id,
        "district": district.sourced_id,
        "school": section.school_id,
        "name": section.title,
        "sis_id": section.class_code,
        "students": student_ids,
        "teachers": teacher_ids,
        "teacher": teacher_ids[0] if teacher_ids else None,
        "term_id": district.school_year_id,
        "subject": CLEVER_SUBJECT,
        # The students of a section come from several grades.
        "grade": "",
        "period": "",
        "section_number": str(section.number),
        "course": district.course_id,
        "created": MODIFIED,
        "last_modified": MODIFIED,
    }


# OneRoster 1.1 REST

ONEROSTER_REST_PATH = "/ims/oneroster/v1p1"


@contextmanager
def _rest_list(folder: Path, collection: str) -> Iterator[Callable[[dict], None]]:
    """Open ``collection``.json as a OneRoster list response and yield ``append``."""
    head = f'{{"{collection}":['
    with _json_list_file(folder / f"{collection}.json", head, "]}\n") as append:
        yield append


def _guid_ref(collection: str, ref_type: str, sourced_id: str) -> dict[str, str]:
    return {
        "href": f"{ONEROSTER_REST_PATH}/{collection}/{sourced_id}",
        "sourcedId": sourced_id,
        "type": ref_type,
    }


def _rest_base(sourced_id: str) -> dict[str, str]:
    """Return the fields that every OneRoster record starts with."""
    return {"sourcedId": sourced_id, "status": "active", "dateLastModified": MODIFIED}


def _write_oneroster_rest(folder: Path, district: DemoDistrict) -> None:
    _write_rest_orgs(folder, district)
    with _rest_list(folder, "academicSessions") as append:
        append(
            {
                **_rest_base(district.school_year_id),
                "title": SCHOOL_YEAR_TITLE,
                "type": "schoolYear",
                "startDate": SCHOOL_YEAR_START,
                "endDate": SCHOOL_YEAR_END,
                "schoolYear": SCHOOL_YEAR,
            }
        )
    with _rest_list(folder, "classes") as append:
        for section in district.sections():
            append(_rest_class(district, section))
    _write_rest_users_and_enrollments(folder, district)


def _write_rest_orgs(folder: Path, district: DemoDistrict) -> None:
    district_ref = _guid_ref("orgs", "org", district.sourced_id)
    with _rest_list(folder, "orgs") as append:
        append(
            {
                **_rest_base(district.sourced_id),
                "name": district.name,
                "type": "district",
                "identifier": district.identifier,
                "children": [
                    _guid_ref("orgs", "org", school.sourced_id)
                    for school in district.schools
                ],
            }
        )
        for school in district.schools:
            append(
                {
                    **_rest_base(school.sourced_id),
                    "name": school.name,
                    "type": "school",
                    "identifier": school.identifier,
                    "parent": district_ref,
                }
            )


def _rest_class(district: DemoDistrict, section: DemoSection) -> dict:
    return {
        **_rest_base(section.sourced_id),
        "title": section.title,
        "classCode": section.class_code,
        "classType": "scheduled",
        "course": _guid_ref("courses", "course", district.course_id),
        "school": _guid_ref("orgs", "org", section.school_id),
        "terms": [
            _guid_ref("academicSessions", "academicSession", district.school_year_id)
        ],
    }


def _write_rest_users_and_enrollments(folder: Path, district: DemoDistrict) -> None:
    with (
        _rest_list(folder, "users") as append_user,
        _rest_list(folder, "enrollments") as append_enrollment,
    ):
        for person in district.people():
            append_user(_rest_user(person))
            school = _guid_ref("orgs", "org", person.school_id)
            user = _guid_ref("users", "user", person.sourced_id)
            for enrollment in person.enrollments:
                append_enrollment(
                    {
                        **_rest_base(enrollment.sourced_id),
                        "user": user,
                        "class": _guid_ref("classes", "class", enrollment.section_id),
                        "school": school,
                        "role": person.role,
                        # Each section has one teacher, who is its primary teacher.
                        "primary": "true" if person.role == "teacher" else "false",
                    }
                )


def _rest_user(person: DemoPerson) -> dict:
    return {
        **_rest_base(person.sourced_id),
        "username": person.username,
        "userIds": [],
        # OneRoster's JSON binding types enabledUser and primary as the strings
        # "true" and "false", not as JSON booleans.
        "enabledUser": "true",
        "givenName": person.given_name,
        "familyName": person.family_name,
        "role": person.role,
        "identifier": str(person.number),
        "email": person.email,
        "agents": [],
        "orgs": [_guid_ref("orgs", "org", person.school_id)],
        "grades": [person.grade] if person.grade else [],
    }
