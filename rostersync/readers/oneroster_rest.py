"""Read OneRoster 1.1 REST responses, saved as files or fetched page by page."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from rostersync.errors import RosterFileError, RosterSourceError
from rostersync.readers.columns import KeyedRows, KeyTally
from rostersync.readers.oneroster import (
    CONTACT,
    CONTACT_ROLES,
    Orgs,
    classify_role,
    main_role,
    normalize_status,
    read_grade,
)
from rostersync.roster import (
    ENROLLMENT_COLUMNS,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    TO_BE_DELETED,
    USER_COLUMNS,
    Finding,
    Mode,
    Roster,
    frame_from_columns,
    shown_id,
)

# The collections a pull reads, in the order a pull must read them: a user's orgs
# resolve to schools through the org tree, so orgs come first.
COLLECTIONS = ("orgs", "academicSessions", "users", "classes", "enrollments")
REQUIRED_FILES = ("orgs", "users", "classes", "enrollments")
_SOURCE = "the provider"

_ENVELOPE_FIX = (
    'Expected a OneRoster 1.1 collection response such as {"users": [{...}, ...]}.'
)
_RECORD_FIX = "Check that the body is a OneRoster 1.1 response, saved unchanged."
_DUPLICATE_FIX = (
    "A provider lists each record once per page; fetch the page again, or ask the "
    "district to fix the duplicate in its data."
)


class _InvalidField(ValueError):
    """A field of one record has a JSON type that OneRoster 1.1 does not send."""


class OneRosterRestBuilder:
    """Collect OneRoster 1.1 REST collection responses, page by page, into a Roster.

    ``add_page`` takes one decoded body of a collection in ``COLLECTIONS`` and
    ``where``, the file or request it came from, which error messages name. Orgs
    must be added before users. A record whose id was already added replaces the
    earlier one, so records repeated across pages count once.

    Envelope and field-type problems raise RosterSourceError, or RosterFileError
    when the builder reads files, so a broken body never becomes an empty roster.
    """

    def __init__(self, *, from_files: bool = False) -> None:
        self._from_files = from_files
        self._orgs = Orgs()
        self._schools = KeyedRows(SCHOOL_COLUMNS)
        self._users = KeyedRows(USER_COLUMNS)
        self._sections = KeyedRows(SECTION_COLUMNS)
        # Keyed by section, user and role, the key of an enrollment in the store.
        # Removals are kept apart: when a student is dropped and enrolled again,
        # both records share the key, and the active one wins in any order.
        self._enrollments = KeyedRows(ENROLLMENT_COLUMNS)
        self._removed_enrollments = KeyedRows(ENROLLMENT_COLUMNS)
        self._received = {name: KeyTally() for name in COLLECTIONS}
        self._contacts: dict[str, set[str]] = {"users": set(), "enrollments": set()}
        self._grade_findings: dict[str, Finding] = {}

    def add_page(self, collection: str, page: Any, where: str) -> None:
        """Add the records of one response body of ``collection``."""
        add_record = {
            "orgs": self._add_org,
            "academicSessions": self._add_session,
            "users": self._add_user,
            "classes": self._add_class,
            "enrollments": self._add_enrollment,
        }[collection]
        for index, provider_id, record in self._records(collection, page, where):
            try:
                add_record(provider_id, record)
            except _InvalidField as exc:
                shown = shown_id(provider_id)
                problem = f"Record {collection}[{index}] (sourcedId {shown}): {exc}"
                raise self._error(where, problem, _RECORD_FIX) from exc
            self._received[collection].add(provider_id)

    def distinct_records(self, collection: str) -> int:
        """Return how many distinct sourcedIds of ``collection`` were added."""
        return self._received[collection].distinct()

    def restart(self, collection: str) -> None:
        """Forget the records of ``collection``, to read it again from page one."""
        self._received[collection].clear()
        rows = {
            "orgs": [self._schools],
            "users": [self._users],
            "classes": [self._sections],
            "enrollments": [self._enrollments, self._removed_enrollments],
        }.get(collection, [])
        for kept in rows:
            kept.clear()
        if collection in self._contacts:
            self._contacts[collection].clear()
        if collection == "orgs":
            self._orgs = Orgs()
        if collection == "users":
            self._grade_findings.clear()

    def build(self, source: str, modes: dict[str, Mode] | None = None) -> Roster:
        """Build a Roster of every page added so far, bulk unless ``modes`` differs.

        In a delta of users, a user whose role became parent, guardian or relative
        is marked ``tobedeleted``: absent, they would count as unchanged.
        """
        roster = Roster(
            schools=self._schools.frame(),
            users=self._users.frame(),
            sections=self._sections.frame(),
            enrollments=self._enrollment_frame(),
            source=source,
            findings=self._findings(),
        )
        if modes:
            roster.modes.update(modes)
        if roster.modes["users"] == "delta" and self._contacts["users"]:
            roster.users = pd.concat(
                [roster.users, _removal_rows(self._contacts["users"])],
                ignore_index=True,
            )
        return roster

    def _enrollment_frame(self) -> pd.DataFrame:
        active = self._enrollments.frame()
        removed = self._removed_enrollments.frame()
        if removed.empty:
            return active
        key = ["section_id", "user_id", "role"]
        listed = pd.MultiIndex.from_frame(active[key].astype(str))
        leaving = ~pd.MultiIndex.from_frame(removed[key].astype(str)).isin(listed)
        return pd.concat([active, removed[leaving]], ignore_index=True)

    # Records

    def _add_org(self, provider_id: str, org: dict) -> None:
        org_type = (_text(org.get("type"), "type") or "").strip().lower()
        self._orgs.types[provider_id] = org_type
        self._orgs.parents[provider_id] = _ref(org.get("parent"), "parent") or ""
        if org_type == "school":
            self._schools.put(
                provider_id,
                {
                    "provider_id": provider_id,
                    "name": _text(org.get("name"), "name"),
                    "sis_id": _text(org.get("identifier"), "identifier"),
                    "status": _status(org),
                },
            )

    def _add_session(self, provider_id: str, session: dict) -> None:
        """Count an academic session; the portal stores no terms."""

    def _add_user(self, provider_id: str, user: dict) -> None:
        role, org_ids = _user_role_and_orgs(user)
        kind, normalized = classify_role(role)
        if kind == CONTACT:
            self._contacts["users"].add(provider_id)
            self._users.remove(provider_id)
            return
        self._contacts["users"].discard(provider_id)

        primary = _ref(user.get("primaryOrg"), "primaryOrg") or ""
        school_id, school_ids = self._orgs.resolve_cell(",".join(org_ids), primary)
        grades = _text_list(user.get("grades"), "grades")
        findings: list[Finding] = []
        grade = read_grade(",".join(grades), provider_id, findings, _SOURCE)
        self._grade_findings.pop(provider_id, None)
        if findings:
            self._grade_findings[provider_id] = findings[0]

        self._users.put(
            provider_id,
            {
                "provider_id": provider_id,
                "kind": kind,
                "role": normalized,
                "given_name": _text(user.get("givenName"), "givenName"),
                "family_name": _text(user.get("familyName"), "familyName"),
                "email": _text(user.get("email"), "email"),
                "username": _text(user.get("username"), "username"),
                "sis_id": _text(user.get("identifier"), "identifier"),
                "grade": grade,
                "school_id": school_id,
                "school_ids": school_ids,
                "status": _status(user),
            },
        )

    def _add_class(self, provider_id: str, section: dict) -> None:
        self._sections.put(
            provider_id,
            {
                "provider_id": provider_id,
                "school_id": _ref(section.get("school"), "school"),
                "name": _text(section.get("title"), "title"),
                "sis_id": _text(section.get("classCode"), "classCode"),
                "status": _status(section),
            },
        )

    def _add_enrollment(self, provider_id: str, enrollment: dict) -> None:
        role = (_text(enrollment.get("role"), "role") or "").strip().lower()
        if role in CONTACT_ROLES:
            self._contacts["enrollments"].add(provider_id)
            return
        section_id = _ref(enrollment.get("class"), "class")
        user_id = _ref(enrollment.get("user"), "user")
        status = _status(enrollment)
        rows = (
            self._removed_enrollments if status == TO_BE_DELETED else self._enrollments
        )
        rows.put(
            f"{section_id}\x1f{user_id}\x1f{role}",
            {
                "section_id": section_id,
                "user_id": user_id,
                "role": role,
                "status": status,
            },
        )

    # Envelope

    def _records(
        self, collection: str, page: Any, where: str
    ) -> Iterator[tuple[int, str, dict]]:
        records = page.get(collection) if isinstance(page, dict) else None
        if not isinstance(records, list):
            problem = f'The response body has no "{collection}" list.'
            raise self._error(where, problem, _ENVELOPE_FIX)
        first_index: dict[str, int] = {}
        for index, record in enumerate(records):
            provider_id = record.get("sourcedId") if isinstance(record, dict) else None
            if not isinstance(provider_id, str) or not provider_id.strip():
                problem = f'Record {collection}[{index}] has no "sourcedId" string.'
                raise self._error(where, problem, _RECORD_FIX)
            provider_id = provider_id.strip()
            if provider_id in first_index:
                problem = (
                    f"Records {collection}[{first_index[provider_id]}] and "
                    f"{collection}[{index}] have the same sourcedId "
                    f"{shown_id(provider_id)}."
                )
                raise self._error(where, problem, _DUPLICATE_FIX)
            first_index[provider_id] = index
            yield index, provider_id, record

    def _error(self, where: str, problem: str, fix: str) -> RosterSourceError:
        if self._from_files:
            return RosterFileError(where, problem, fix)
        return RosterSourceError(f"{where}: {problem} {fix}")

    def _findings(self) -> list[Finding]:
        findings = list(self._grade_findings.values())
        contacts = len(self._contacts["users"])
        if contacts:
            message = (
                f"{contacts} users with role parent/guardian/relative are not stored."
            )
            findings.append(Finding("users", "contacts_not_stored", "warning", message))
        enrollments = len(self._contacts["enrollments"])
        if enrollments:
            message = (
                f"{enrollments} enrollments with role parent/guardian/relative are "
                "not stored."
            )
            findings.append(
                Finding("enrollments", "contacts_not_stored", "warning", message)
            )
        return findings


def read_oneroster_rest_files(folder: Path | str) -> Roster:
    """Read a folder of saved OneRoster 1.1 REST responses into a bulk Roster.

    The folder contains one response body per collection: ``orgs.json``,
    ``users.json``, ``classes.json`` and ``enrollments.json`` are required, and
    ``academicSessions.json`` is optional. Every problem raises RosterFileError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = (
            "The path is not a folder."
            if folder.exists()
            else "The folder is not found."
        )
        fix = (
            "Pass the folder that contains orgs.json, users.json, classes.json and "
            "enrollments.json."
        )
        raise RosterFileError(folder, problem, fix)
    for collection in REQUIRED_FILES:
        path = folder / f"{collection}.json"
        if not path.is_file():
            fix = (
                f"Save the body of the /ims/oneroster/v1p1/{collection} response as "
                f"{path.name}; the reader needs orgs.json, users.json, classes.json "
                "and enrollments.json."
            )
            raise RosterFileError(path, "The file is missing.", fix)

    builder = OneRosterRestBuilder(from_files=True)
    for collection in COLLECTIONS:
        path = folder / f"{collection}.json"
        if path.is_file():
            builder.add_page(collection, _load_body(path), str(path))
    return builder.build(str(folder))


# NOTE: each file is decoded whole, so memory grows with the largest file. The live
# client passes one page at a time to the builder instead.
def _load_body(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problem = f"The file cannot be read: {exc.strerror}."
        raise RosterFileError(path, problem, "Check the file's permissions.") from exc
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problem = f"The file is not valid UTF-8 (byte offset {exc.start})."
        fix = "Save the response body as UTF-8, the encoding the API sends."
        raise RosterFileError(path, problem, fix, line=line) from exc
    except json.JSONDecodeError as exc:
        problem = f"The file is not valid JSON: {exc.msg} at column {exc.colno}."
        fix = "Save the whole response body unchanged."
        raise RosterFileError(path, problem, fix, line=exc.lineno) from exc
    except RecursionError:
        problem = (
            "The file nests arrays or objects too deeply to be a OneRoster response."
        )
        raise RosterFileError(
            path, problem, "Save the whole response body unchanged."
        ) from None


# Fields


def _removal_rows(provider_ids: set[str]) -> pd.DataFrame:
    """Return users rows that mark ``provider_ids`` as leaving, with no other data."""
    ids = sorted(provider_ids)
    columns = {
        "provider_id": ids,
        "school_ids": [()] * len(ids),
        "status": [TO_BE_DELETED] * len(ids),
    }
    return frame_from_columns(columns, USER_COLUMNS)


def _user_role_and_orgs(user: dict) -> tuple[str, list[str]]:
    """Return a user's role and org ids, from 1.1's ``role`` or 1.2's ``roles``."""
    org_ids = [ref for ref in _ref_list(user.get("orgs"), "orgs") if ref]
    role = _text(user.get("role"), "role")
    if role is not None or user.get("roles") is None:
        return role or "", org_ids
    roles = user.get("roles")
    if not isinstance(roles, list):
        raise _InvalidField(f"roles is a JSON {_json_type(roles)}, expected an array.")
    rows = []
    for index, item in enumerate(roles):
        if not isinstance(item, dict):
            raise _InvalidField(f"roles[{index}] is not an object.")
        is_primary = (_text(item.get("roleType"), "roleType") or "") == "primary"
        name = _text(item.get("role"), f"roles[{index}].role") or ""
        org_id = _ref(item.get("org"), f"roles[{index}].org") or ""
        rows.append((is_primary, name.strip(), org_id))
    if not rows:
        return "", org_ids
    role, joined = main_role(rows)
    return role, [*joined.split(","), *org_ids] if joined else org_ids


def _status(record: dict) -> str:
    return normalize_status(_text(record.get("status"), "status") or "")


def _ref(value: Any, field: str) -> str | None:
    """Return the sourcedId of a GUIDRef object, and None for null."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _InvalidField(
            f"{field} is a JSON {_json_type(value)}, expected an object."
        )
    return _text(value.get("sourcedId"), f"{field}.sourcedId")


def _ref_list(value: Any, field: str) -> list[str | None]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _InvalidField(
            f"{field} is a JSON {_json_type(value)}, expected an array."
        )
    return [_ref(item, f"{field}[{index}]") for index, item in enumerate(value)]


def _text_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # Some providers send a list field as one comma-separated string.
        return [value]
    if not isinstance(value, list):
        raise _InvalidField(
            f"{field} is a JSON {_json_type(value)}, expected an array."
        )
    return [text for item in value if (text := _text(item, field)) is not None]


def _text(value: Any, field: str) -> str | None:
    """Return a JSON string, number or boolean as text, and null as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise _InvalidField(
                f"{field} is a number that is not finite, expected a string."
            )
        return str(value)
    raise _InvalidField(f"{field} is a JSON {_json_type(value)}, expected a string.")


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
