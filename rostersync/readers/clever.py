"""Read Clever API v3.0 response bodies, saved as files or fetched page by page."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from rostersync.errors import RosterFileError, RosterSourceError
from rostersync.grades import normalize_grade, unknown_grade_finding
from rostersync.readers.columns import GroupedRows, KeyedRows
from rostersync.roster import (
    ACTIVE,
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    TO_BE_DELETED,
    USER_COLUMNS,
    Finding,
    Roster,
    shown_id,
)

# Clever v3 roles that make a user an educator. A user with several of them gets the
# first one in this order as its role.
EDUCATOR_ROLES = ("teacher", "staff", "district_admin")

# Educator roles whose schools are read. A district admin belongs to no school.
_SCHOOL_ROLES = ("teacher", "staff")

# Event types are "<collection>.<action>", such as "users.updated".
_EVENT_COLLECTIONS = ("schools", "users", "sections")
_CREATED, _DELETED = "created", "deleted"
_EVENT_ACTIONS = (_CREATED, "updated", _DELETED)
_EVENT_TYPE = re.compile(r"^[a-z_]{1,40}\.[a-z_]{1,40}$")

_ENVELOPE_FIX = (
    'Expected a Clever v3.0 list response: {"data": [{"data": {...}, "uri": ...}], '
    '"links": [...]}.'
)
_DUPLICATE_FIX = (
    "A provider lists each record once per page; fetch the page again, or ask the "
    "district to fix the duplicate in its data."
)
_RECORD_FIX = "Check that the body is a Clever v3.0 response, saved unchanged."


class _InvalidField(ValueError):
    """A field of one record has a JSON type that Clever v3.0 does not send."""


class CleverRosterBuilder:
    """Collect Clever v3.0 list responses, one page at a time, into one Roster.

    Each ``add_*_page`` method takes one decoded response body and ``where``, the file
    or URL it came from, which error messages name. Pages may come in any order. A
    record whose id was already added replaces the earlier record.

    Envelope and field-type problems raise RosterSourceError, or RosterFileError when
    the builder reads files (``from_files=True``), so a broken body never becomes an
    empty roster. After an error the builder contains part of that page, so discard it.
    """

    def __init__(self, *, from_files: bool = False) -> None:
        self._from_files = from_files
        self._schools = KeyedRows(SCHOOL_COLUMNS)
        self._users = KeyedRows(USER_COLUMNS)
        self._sections = KeyedRows(SECTION_COLUMNS)
        # Enrollments grouped by section, so that a repeated section replaces them.
        self._enrollments = GroupedRows(ENROLLMENT_COLUMNS)
        self._contact_ids: set[str] = set()
        self._unknown_grade_ids: set[str] = set()
        self._skipped_events: dict[str, int] = {}
        self._roleless_updates: set[str] = set()
        # The id and creation time of the last event applied, if any.
        self.last_event: tuple[str, str | None] | None = None
        self._district_ids: set[str] = set()

    # Pages

    def add_districts_page(self, page: dict, where: str) -> None:
        """Add the district ids of one ``/v3.0/districts`` response."""
        for _index, provider_id, _district in self._records(page, where):
            self._district_ids.add(provider_id)

    def add_schools_page(self, page: dict, where: str) -> None:
        """Add the schools of one ``/v3.0/schools`` response."""
        for index, provider_id, school in self._records(page, where):
            with self._field_errors(where, index, provider_id):
                self._note_district(school)
                self._schools.put(provider_id, _school_row(provider_id, school))

    def add_users_page(self, page: dict, where: str) -> None:
        """Add the students and educators of one ``/v3.0/users`` response.

        Contacts and users without a supported role are counted, not stored.
        """
        for index, provider_id, user in self._records(page, where):
            with self._field_errors(where, index, provider_id):
                self._note_district(user)
                self._add_user(provider_id, user)

    def add_sections_page(self, page: dict, where: str) -> None:
        """Add the sections and their enrollments of one ``/v3.0/sections`` response."""
        for index, provider_id, section in self._records(page, where):
            with self._field_errors(where, index, provider_id):
                self._note_district(section)
                self._put_section(provider_id, section)

    def add_events_page(self, page: dict, where: str) -> None:
        """Apply the events of one ``/v3.0/events`` response, in their order.

        Each event carries its record's whole new state, so applying an event twice
        gives the same rows. Events of districts, terms, courses, resources and
        contacts are counted, not applied, because the portal stores none of them.
        """
        for index, event_id, event in self._records(page, where):
            with self._field_errors(where, index, event_id):
                self._apply_event(event)
                self.last_event = (event_id, _text(event.get("created"), "created"))

    # Result

    def build(self, source: str, *, delta: bool = False) -> Roster:
        """Build a Roster of every page added so far.

        With ``delta``, the roster holds only the records that events changed: a
        bulk pull's missing record has left, but a delta's has not changed. Raises
        RosterSourceError when the records name more than one district.
        """
        self._check_one_district(source)
        users = self._users.frame()
        findings = self._findings()
        if not delta:
            # Events change a user's role in order; the pages of one full pull
            # must agree on it.
            users, findings = _without_disagreeing_kinds(
                users, self._users.disagreeing("kind"), findings
            )
        roster = Roster(
            schools=self._schools.frame(),
            users=users,
            sections=self._sections.frame(),
            enrollments=self._enrollments.frame(),
            source=source,
            findings=findings,
        )
        if delta:
            roster.modes = dict.fromkeys(roster.modes, "delta")
            roster.full_enrollment_sections = frozenset(self._enrollments.groups())
        return roster

    # Internals

    def _error(self, where: str, problem: str, fix: str) -> RosterSourceError:
        if self._from_files:
            return RosterFileError(where, problem, fix)
        return RosterSourceError(f"{where}: {problem} {fix}")

    def _records(self, page: dict, where: str) -> Iterator[tuple[int, str, dict]]:
        """Yield the index, id and ``data`` object of each record of a list response."""
        records = page.get("data") if isinstance(page, dict) else None
        if not isinstance(records, list):
            problem = 'The response body has no "data" list.'
            raise self._error(where, problem, _ENVELOPE_FIX)
        # The same id on two pages is data changing while paging (the last copy
        # wins), but the same id twice on one page is a broken response.
        first_index: dict[str, int] = {}
        for index, record in enumerate(records):
            data = record.get("data") if isinstance(record, dict) else None
            if not isinstance(data, dict):
                problem = f'Record data[{index}] has no "data" object.'
                raise self._error(where, problem, _ENVELOPE_FIX)
            provider_id = data.get("id")
            if not isinstance(provider_id, str) or not provider_id.strip():
                problem = f'Record data[{index}] has no "id" string.'
                raise self._error(where, problem, _RECORD_FIX)
            provider_id = provider_id.strip()
            if provider_id in first_index:
                problem = (
                    f"Records data[{first_index[provider_id]}] and data[{index}] "
                    f"have the same id {shown_id(provider_id)}."
                )
                raise self._error(where, problem, _DUPLICATE_FIX)
            first_index[provider_id] = index
            yield index, provider_id, data

    @contextmanager
    def _field_errors(self, where: str, index: int, provider_id: str) -> Iterator[None]:
        try:
            yield
        except _InvalidField as exc:
            problem = f"Record data[{index}] (id {shown_id(provider_id)}): {exc}"
            raise self._error(where, problem, _RECORD_FIX) from exc

    def _note_district(self, data: dict) -> None:
        district = _text(data.get("district"), "district")
        if district and district.strip():
            self._district_ids.add(district.strip())

    def _add_user(self, provider_id: str, user: dict) -> None:
        row = self._user_row(provider_id, user)
        if row is None:
            self._users.remove(provider_id)
        else:
            self._users.put(provider_id, row)

    def _user_row(self, provider_id: str, user: dict) -> dict[str, Any] | None:
        """Return the user's row, or None for a contact, who is not stored.

        A user with neither a supported role nor a contact role gets a row without
        a kind, which the data checks quarantine: a typo in a role must not archive
        the user.
        """
        for ids in (self._contact_ids, self._unknown_grade_ids):
            ids.discard(provider_id)
        roles = _mapping(user.get("roles"), "roles")
        if roles is None:
            raise _InvalidField("roles is missing, expected an object.")

        student = _mapping(roles.get("student"), "roles.student")
        if student is not None:
            row, grade_known = _student_row(provider_id, user, student)
            if not grade_known:
                self._unknown_grade_ids.add(provider_id)
            return row

        educator_roles = _educator_roles(roles)
        if educator_roles:
            return _educator_row(provider_id, user, educator_roles)

        if _mapping(roles.get("contact"), "roles.contact") is not None:
            self._contact_ids.add(provider_id)
            return None
        return {"provider_id": provider_id, "school_ids": (), "status": ACTIVE}

    # Events

    def _apply_event(self, event: dict) -> None:
        """Apply one event to the rows, as the record's latest state."""
        event_type = _text(event.get("type"), "type") or ""
        collection, _, action = event_type.partition(".")
        if collection not in _EVENT_COLLECTIONS or action not in _EVENT_ACTIONS:
            # Only a type of Clever's form is quoted in the finding.
            kind = event_type if _EVENT_TYPE.match(event_type) else "(other types)"
            self._skipped_events[kind] = self._skipped_events.get(kind, 0) + 1
            return
        payload = _mapping(event.get("data"), "data") or {}
        record = _mapping(payload.get("object"), "data.object")
        provider_id = _text(record.get("id"), "data.object.id") if record else None
        if record is None or provider_id is None or not provider_id.strip():
            raise _InvalidField("data.object has no id, expected the changed record.")
        provider_id = provider_id.strip()
        self._note_district(record)
        if collection == "schools":
            self._apply_school_event(provider_id, record, action)
        elif collection == "users":
            self._apply_user_event(provider_id, record, action)
        else:
            self._apply_section_event(provider_id, record, action)

    def _apply_school_event(self, provider_id: str, school: dict, action: str) -> None:
        row = _school_row(provider_id, school)
        if action == _DELETED:
            row["status"] = TO_BE_DELETED
        self._schools.put(provider_id, row)

    def _apply_user_event(self, provider_id: str, user: dict, action: str) -> None:
        if user.get("roles") is None and action != _DELETED:
            # Without its roles an update cannot show what the user became, so it
            # changes nothing rather than risk archiving the user.
            self._roleless_updates.add(provider_id)
            return
        row = self._user_row(provider_id, user) if user.get("roles") else None
        if row is None and action == _CREATED:
            # A new contact was never stored.
            return
        if row is None:
            # A user who became a contact, or whose deletion carries no roles,
            # leaves the portal like a deleted one.
            row = {"provider_id": provider_id, "school_ids": ()}
            row["status"] = TO_BE_DELETED
        elif action == _DELETED:
            row["status"] = TO_BE_DELETED
        self._users.put(provider_id, row)

    def _apply_section_event(
        self, provider_id: str, section: dict, action: str
    ) -> None:
        if action != _DELETED:
            self._put_section(provider_id, section)
            return
        row = _section_row(provider_id, section)
        row["status"] = TO_BE_DELETED
        self._sections.put(provider_id, row)
        self._enrollments.remove_group(provider_id)

    def _put_section(self, provider_id: str, section: dict) -> None:
        self._sections.put(provider_id, _section_row(provider_id, section))
        members = _section_members(section)
        self._enrollments.put_group(
            provider_id,
            (
                {
                    "section_id": provider_id,
                    "user_id": user_id,
                    "role": role,
                    "status": ACTIVE,
                }
                for user_id, role in members
            ),
        )

    def _check_one_district(self, source: str) -> None:
        if len(self._district_ids) <= 1:
            return
        ids = ", ".join(sorted(self._district_ids))
        problem = (
            f"The responses hold records of {len(self._district_ids)} districts "
            f"({ids}), but one roster is one district."
        )
        fix = "Use the responses of one district token only."
        raise self._error(source, problem, fix)

    def _findings(self) -> list[Finding]:
        findings = []
        if self._skipped_events:
            kinds = ", ".join(
                f"{count} {kind}"
                for kind, count in sorted(self._skipped_events.items())
            )
            message = f"Events the portal does not store were not applied: {kinds}."
            findings.append(Finding("events", "events_not_applied", "warning", message))
        for provider_id in sorted(self._roleless_updates):
            message = (
                "An update event of the user carries no roles, so it was not "
                "applied; a full pull (sync --full) reads the user again."
            )
            findings.append(
                Finding("users", "event_without_roles", "warning", message, provider_id)
            )
        if self._contact_ids:
            message = f"{len(self._contact_ids)} contacts are not stored"
            findings.append(Finding("users", "contacts_not_stored", "warning", message))
        for provider_id in sorted(self._unknown_grade_ids):
            findings.append(unknown_grade_finding(provider_id, "Clever"))
        return findings


def _without_disagreeing_kinds(
    users: pd.DataFrame, disagreeing: set[str], findings: list[Finding]
) -> tuple[pd.DataFrame, list[Finding]]:
    """Clear the kind of users who came as a student and as an educator.

    Such a user is quarantined by the data checks, so the stored record keeps its
    kind until a pull agrees with itself, instead of the last page deciding.
    """
    if not disagreeing:
        return users, findings
    users = users.copy()
    users.loc[users["provider_id"].isin(disagreeing), "kind"] = pd.NA
    message = (
        "The user came as a student on one page of the pull and as an educator "
        "on another; the stored record is kept until a pull agrees."
    )
    extra = [
        Finding("users", "kind_differs_between_pages", "warning", message, user_id)
        for user_id in sorted(disagreeing)
    ]
    return users, [*findings, *extra]


def read_clever_files(folder: Path | str) -> Roster:
    """Read a folder of saved Clever v3.0 responses into a bulk Roster.

    The folder contains one response body per file: ``schools.json``, ``users.json`` and
    ``sections.json`` are required and ``districts.json`` is optional. Other files,
    such as ``terms.json``, are not read. Every problem raises RosterFileError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = (
            "The path is not a folder."
            if folder.exists()
            else "The folder is not found."
        )
        fix = (
            "Pass the folder that contains schools.json, users.json and sections.json."
        )
        raise RosterFileError(folder, problem, fix)
    builder = CleverRosterBuilder(from_files=True)
    pages: list[tuple[str, Callable[[dict, str], None]]] = [
        ("schools", builder.add_schools_page),
        ("users", builder.add_users_page),
        ("sections", builder.add_sections_page),
    ]
    for entity, _add_page in pages:
        _require_file(folder, entity)

    districts = folder / "districts.json"
    if districts.is_file():
        builder.add_districts_page(_load_page(districts), str(districts))
    for entity, add_page in pages:
        path = folder / f"{entity}.json"
        add_page(_load_page(path), str(path))
    return builder.build(str(folder))


def _require_file(folder: Path, entity: str) -> None:
    path = folder / f"{entity}.json"
    if not path.is_file():
        fix = (
            f"Save the body of Clever's /v3.0/{entity} response as {path.name} in "
            "that folder. The reader needs schools.json, users.json and sections.json."
        )
        raise RosterFileError(path, "The file is missing.", fix)


# NOTE: each file is decoded whole, so memory grows with the largest file. The live
# client passes one page at a time to the builder instead.
def _load_page(path: Path) -> dict:
    """Decode one saved response body, rejecting a file that is one page of several."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fix = "Check the file's permissions."
        problem = f"The file cannot be read: {exc.strerror}."
        raise RosterFileError(path, problem, fix) from exc
    try:
        # A UTF-8 byte order mark is accepted because some Windows editors add one.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problem = f"The file is not valid UTF-8 (byte offset {exc.start})."
        fix = "Save the response body as UTF-8, the encoding Clever's API sends."
        raise RosterFileError(path, problem, fix, line=line) from exc
    try:
        page = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"The file is not valid JSON: {exc.msg} at column {exc.colno}."
        fix = "Save the whole response body unchanged."
        raise RosterFileError(path, problem, fix, line=exc.lineno) from exc
    except RecursionError:
        problem = "The file nests arrays or objects too deeply to be a Clever response."
        fix = "Save the whole response body unchanged."
        raise RosterFileError(path, problem, fix) from None
    if _has_next_link(page):
        problem = 'The file is one page of several: its "links" contain rel "next".'
        fix = (
            'Merge the "data" lists of every page into one file, or request a '
            "larger limit."
        )
        raise RosterFileError(path, problem, fix)
    return page


def _has_next_link(page: Any) -> bool:
    links = page.get("links") if isinstance(page, dict) else None
    if not isinstance(links, list):
        return False
    return any(isinstance(link, dict) and link.get("rel") == "next" for link in links)


# Records


def _school_row(provider_id: str, school: dict) -> dict[str, Any]:
    return {
        "provider_id": provider_id,
        "name": _text(school.get("name"), "name"),
        "sis_id": _text(school.get("sis_id"), "sis_id"),
        "status": ACTIVE,
    }


def _section_row(provider_id: str, section: dict) -> dict[str, Any]:
    return {
        "provider_id": provider_id,
        "school_id": _text(section.get("school"), "school"),
        "name": _text(section.get("name"), "name"),
        "sis_id": _text(section.get("sis_id"), "sis_id"),
        "status": ACTIVE,
    }


def _section_members(section: dict) -> tuple[tuple[str, str], ...]:
    """Return the section's (user id, role) pairs in order, each pair once."""
    students = _id_list(section.get("students"), "students")
    if section.get("teachers") is not None:
        teachers = _id_list(section.get("teachers"), "teachers")
    else:
        # The primary teacher is read only when the section has no teachers list.
        teachers = _id_list([section.get("teacher")], "teacher")
    pairs = [(user_id, "student") for user_id in students]
    pairs += [(user_id, "teacher") for user_id in teachers]
    return tuple(dict.fromkeys(pairs))


def _student_row(
    provider_id: str, user: dict, student: dict
) -> tuple[dict[str, Any], bool]:
    """Return the user row of a student and whether its grade is a known level."""
    grade, known = normalize_grade(_text(student.get("grade"), "roles.student.grade"))
    row = {
        "provider_id": provider_id,
        "kind": "student",
        "role": "student",
        **_person_fields(user, [("student", student)]),
        "sis_id": _text(student.get("sis_id"), "roles.student.sis_id"),
        "grade": grade,
        "school_id": _text(student.get("school"), "roles.student.school"),
        "school_ids": _school_ids([("student", student)]),
        "status": ACTIVE,
    }
    return row, known


def _educator_roles(roles: dict) -> list[tuple[str, dict]]:
    """Return the user's educator roles, named, in the order of EDUCATOR_ROLES."""
    found = []
    for name in EDUCATOR_ROLES:
        role = _mapping(roles.get(name), f"roles.{name}")
        if role is not None:
            found.append((name, role))
    return found


def _educator_row(
    provider_id: str, user: dict, roles: list[tuple[str, dict]]
) -> dict[str, Any]:
    school_roles = [(name, role) for name, role in roles if name in _SCHOOL_ROLES]
    return {
        "provider_id": provider_id,
        "kind": "educator",
        "role": roles[0][0],
        **_person_fields(user, roles),
        "sis_id": _educator_sis_id(roles),
        "grade": None,
        "school_id": _primary_school(school_roles),
        "school_ids": _school_ids(school_roles),
        "status": ACTIVE,
    }


def _person_fields(user: dict, roles: list[tuple[str, dict]]) -> dict[str, Any]:
    """Return the name, email and username columns of a user."""
    name = _mapping(user.get("name"), "name") or {}
    email = _text(user.get("email"), "email")
    return {
        "given_name": _text(name.get("first"), "name.first"),
        "family_name": _text(name.get("last"), "name.last"),
        "email": email if _present(email) else _first_role_text(roles, "email"),
        "username": _username(roles),
    }


def _username(roles: list[tuple[str, dict]]) -> str | None:
    for name, role in roles:
        field = f"roles.{name}.credentials"
        credentials = _mapping(role.get("credentials"), field) or {}
        username = _text(
            credentials.get("district_username"), f"{field}.district_username"
        )
        if _present(username):
            return username
    return None


def _educator_sis_id(roles: list[tuple[str, dict]]) -> str | None:
    sis_id = _first_role_text(roles, "sis_id")
    if _present(sis_id):
        return sis_id
    # Clever v3.0 defines no sis_id on the staff role, only staff_id.
    return _first_role_text(roles, "staff_id")


def _primary_school(roles: list[tuple[str, dict]]) -> str | None:
    """Return the first role's ``school``, else the first id of a ``schools`` list.

    Clever's staff role has no ``school`` field, only ``schools``.
    """
    school = _first_role_text(roles, "school")
    if _present(school):
        return school
    for name, role in roles:
        schools = _id_list(role.get("schools"), f"roles.{name}.schools")
        if schools:
            return schools[0]
    return None


def _school_ids(roles: list[tuple[str, dict]]) -> tuple[str, ...]:
    """Return the sorted ids of every ``school`` and ``schools`` entry of the roles."""
    ids: set[str] = set()
    for name, role in roles:
        ids.update(_id_list(role.get("schools"), f"roles.{name}.schools"))
        ids.update(_id_list([role.get("school")], f"roles.{name}.school"))
    return tuple(sorted(ids))


def _first_role_text(roles: list[tuple[str, dict]], key: str) -> str | None:
    """Return the first non-blank ``key`` among the roles, in their order."""
    for name, role in roles:
        value = _text(role.get(key), f"roles.{name}.{key}")
        if _present(value):
            return value
    return None


# JSON values


def _present(value: str | None) -> bool:
    return value is not None and bool(value.strip())


def _text(value: Any, field: str) -> str | None:
    """Return a JSON string or number as text, and null as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise _InvalidField(
                f"{field} is a number that is not finite, expected a string."
            )
        return str(value)
    raise _InvalidField(f"{field} is a JSON {_json_type(value)}, expected a string.")


def _mapping(value: Any, field: str) -> dict | None:
    """Return a JSON object, and null as None."""
    if value is None or isinstance(value, dict):
        return value
    raise _InvalidField(f"{field} is a JSON {_json_type(value)}, expected an object.")


def _id_list(value: Any, field: str) -> list[str]:
    """Return the non-blank ids of a JSON array of strings, or [] for null."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _InvalidField(
            f"{field} is a JSON {_json_type(value)}, expected an array."
        )
    ids = []
    for item in value:
        text = _text(item, field)
        if text is not None and text.strip():
            ids.append(text.strip())
    return ids


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"
