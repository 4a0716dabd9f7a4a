"""Read a OneRoster 1.1 or 1.2 CSV set, from a folder or a .zip file, into a Roster."""

from __future__ import annotations

import csv
import logging
import operator
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import pandas as pd

from rostersync.errors import RosterFileError
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
)

logger = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
MANIFEST_MODES = ("bulk", "delta", "absent")

# The roster entity that each OneRoster file fills, keyed by the file's stem.
ENTITY_FILES = {
    "orgs": "schools",
    "users": "users",
    "classes": "sections",
    "enrollments": "enrollments",
}
# OneRoster 1.2 moved users' roles and orgs out of users.csv into roles.csv.
ROLES_FILE = "roles"

# Rows gathered in Python lists before they become a frame chunk.
CHUNK_ROWS = 100_000

RAGGED_FIX = "Quote fields that contain commas, or repair the export."


def read_oneroster_csv(source: Path | str) -> Roster:
    """Read a OneRoster CSV set (a folder or a .zip with a manifest.csv) into a Roster.

    Each file is streamed row by row and only the fields the roster needs are kept.
    Raises RosterFileError, naming the file and line, when the set cannot be trusted.
    """
    with _SourceFiles.open(Path(source)) as files:
        declared = _read_manifest(files)
        findings: list[Finding] = []

        orgs, schools = _read_orgs(files, declared, findings)
        users = _read_users(files, declared, orgs, findings)
        sections = _read_classes(files, declared, findings)
        enrollments = _read_enrollments(files, declared, findings)

    roster = Roster(
        schools=schools,
        users=users,
        sections=sections,
        enrollments=enrollments,
        source=str(source),
        modes=_roster_modes(declared),
        findings=findings,
    )
    logger.info(
        "read OneRoster CSV %s: %d schools, %d users, %d sections, %d enrollments",
        source,
        len(schools),
        len(users),
        len(sections),
        len(enrollments),
    )
    return roster


# Source files


class _SourceFiles:
    """The files of a OneRoster set in a folder or a zip, found by name in any case."""

    def __init__(self, source: Path, archive: zipfile.ZipFile | None) -> None:
        self.source = source
        self.archive = archive
        self.members = _list_members(source, archive)

    @classmethod
    @contextmanager
    def open(cls, source: Path) -> Iterator[_SourceFiles]:
        if source.is_dir():
            yield cls(source, None)
            return
        if not source.is_file():
            raise RosterFileError(
                source,
                "The roster source does not exist.",
                "Pass the folder or .zip file that contains manifest.csv.",
            )
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as exc:
            raise RosterFileError(
                source,
                "The roster source is neither a folder nor a valid .zip file.",
                "Pass the exported folder, or zip the exported CSV files again.",
            ) from exc
        with archive:
            yield cls(source, archive)

    def find(self, file_name: str) -> str | None:
        """Return the member whose name matches ``file_name`` in any letter case."""
        return self.members.get(file_name.lower())

    def label(self, member: str) -> str:
        """Return the path that error messages show for a member."""
        return str(self.source / member)

    def open_binary(self, member: str) -> IO[bytes]:
        if self.archive is None:
            return open(self.source / member, "rb")  # noqa: SIM115
        return self.archive.open(member)


def _list_members(source: Path, archive: zipfile.ZipFile | None) -> dict[str, str]:
    """Map each file's lower-case base name to its name in the folder or zip."""
    if archive is None:
        names = [path.name for path in source.iterdir() if path.is_file()]
    else:
        names = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and not info.filename.startswith("__MACOSX/")
        ]
    members: dict[str, str] = {}
    for name in names:
        key = name.rsplit("/", 1)[-1].lower()
        if key in members:
            raise RosterFileError(
                source,
                f"The roster source contains more than one {key} "
                f"({members[key]} and {name}).",
                "Keep one copy of each OneRoster file in the folder or zip.",
            )
        members[key] = name
    return members


# CSV tables


class _Table:
    """One CSV file open for streaming, with its header mapped to column positions.

    Header names are stripped and compared in lower case. When a name repeats, its
    first column counts.
    """

    def __init__(self, label: str, header: list[str], reader: Any) -> None:
        self.label = label
        self.width = len(header)
        self.columns: dict[str, int] = {}
        for position, name in enumerate(header):
            self.columns.setdefault(name.strip().lower(), position)
        self._reader = reader

    def getter(self, *names: str) -> Callable[[list[str]], tuple[str, ...]]:
        """Return a function that picks the named fields of a row, in that order.

        A column the header lacks reads as an empty string, because ``rows`` appends
        one empty field to every row.
        """
        positions = [self.columns.get(name, self.width) for name in names]
        if len(positions) == 1:
            position = positions[0]
            return lambda row: (row[position],)
        return operator.itemgetter(*positions)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Yield each data row with the line it starts on, skipping blank lines."""
        previous_line = self._reader.line_num
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise RosterFileError(
                    self.label,
                    f"The CSV row cannot be parsed ({exc}).",
                    _parse_fix(exc),
                    line=previous_line + 1,
                ) from exc
            line = previous_line + 1
            previous_line = self._reader.line_num
            if not row:
                continue
            if len(row) != self.width:
                raise RosterFileError(
                    self.label,
                    f"The row has {len(row)} fields, but the header has "
                    f"{self.width} columns.",
                    RAGGED_FIX,
                    line=line,
                )
            row.append("")
            yield line, row


def _parse_fix(error: csv.Error) -> str:
    """Suggest the fix for a row the csv module cannot parse."""
    if "field larger than field limit" in str(error):
        return (
            f"A field is longer than {csv.field_size_limit():,} characters, which no "
            "roster field needs; look for a quote that is never closed, or repair the "
            "export."
        )
    return RAGGED_FIX


@contextmanager
def _open_table(
    files: _SourceFiles, member: str, required: Iterable[str]
) -> Iterator[_Table]:
    """Open a CSV member for streaming and check that its header has ``required``."""
    label = files.label(member)
    with files.open_binary(member) as stream:
        reader = csv.reader(_decode_lines(stream, label))
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise RosterFileError(
                label, f"The header cannot be parsed ({exc}).", RAGGED_FIX, line=1
            ) from exc
        if header is None:
            raise RosterFileError(
                label,
                "The file is empty and has no header row.",
                "Export the file with its header row.",
            )
        table = _Table(label, header, reader)
        _check_required(table, required)
        yield table


def _decode_lines(stream: IO[bytes], label: str) -> Iterator[str]:
    """Decode a byte stream line by line as UTF-8, dropping a leading byte order mark.

    Decoding one line at a time puts the exact line number in the error. Splitting on
    b"\\n" is safe because no multi-byte UTF-8 character contains that byte.
    """
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise RosterFileError(
                label,
                f"The file is not valid UTF-8: the byte 0x{exc.object[exc.start]:02X} "
                "on this line cannot be decoded.",
                "Re-export the file as UTF-8.",
                line=number,
            ) from exc


def _check_required(table: _Table, required: Iterable[str]) -> None:
    for name in required:
        if name.lower() not in table.columns:
            raise RosterFileError(
                table.label,
                f"The required column '{name}' is missing from the header.",
                f"Add the column '{name}' to the export, or rename the column that "
                "holds this value.",
                line=1,
            )


# Frames


class _FrameBuilder:
    """Rows gathered per column and turned into frame chunks to bound memory.

    Python lists of strings take several times the memory of the frame's Arrow
    strings, so every CHUNK_ROWS rows the lists become a frame and are emptied.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.columns: dict[str, list] = {name: [] for name in names}
        self.chunks: list[pd.DataFrame] = []
        self.rows = 0

    def add(self, **values: object) -> None:
        if values.keys() != self.columns.keys():
            raise ValueError(f"Internal error: a row has the columns {list(values)}.")
        for name, value in values.items():
            self.columns[name].append(value)
        self.rows += 1
        if self.rows == CHUNK_ROWS:
            self._flush()

    def frame(self) -> pd.DataFrame:
        if self.rows or not self.chunks:
            self._flush()
        if len(self.chunks) == 1:
            return self.chunks[0]
        return pd.concat(self.chunks, ignore_index=True)

    def _flush(self) -> None:
        self.chunks.append(frame_from_columns(self.columns, self.names))
        self.columns = {name: [] for name in self.names}
        self.rows = 0


# Manifest


def _read_manifest(files: _SourceFiles) -> dict[str, str]:
    """Return the declared mode (bulk, delta or absent) of each file this reader uses.

    Rows for files the reader does not use are ignored, whatever their value, so a
    typo such as ``fiel.demographics`` or an empty value there does not stop a run.
    """
    member = files.find(MANIFEST)
    if member is None:
        raise RosterFileError(
            files.source,
            "manifest.csv is missing.",
            "OneRoster CSV needs a manifest.csv that lists each file as bulk, delta "
            "or absent. Add one to the folder or zip.",
        )
    declared: dict[str, str] = {}
    with _open_table(files, member, ("propertyName", "value")) as table:
        pick = table.getter("propertyname", "value")
        for line, row in table.rows():
            name, value = pick(row)
            _declare_mode(declared, table.label, line, name.strip(), value.strip())
    return declared


def _declare_mode(
    declared: dict[str, str], label: str, line: int, name: str, value: str
) -> None:
    key = name.lower()
    if not key.startswith("file."):
        return
    stem = key.removeprefix("file.")
    if stem not in ENTITY_FILES and stem != ROLES_FILE:
        return
    mode = value.lower()
    if mode not in MANIFEST_MODES:
        raise RosterFileError(
            label,
            f"{name} has the value '{value}', which is not bulk, delta or absent.",
            f"Set {name} to bulk, delta or absent.",
            line=line,
        )
    if declared.get(stem, mode) != mode:
        raise RosterFileError(
            label,
            f"{name} is listed twice, as {declared[stem]} and as {mode}.",
            f"Keep one {name} row.",
            line=line,
        )
    declared[stem] = mode


def _declared_member(
    files: _SourceFiles, declared: dict[str, str], stem: str
) -> str | None:
    """Return the member for ``stem``.csv, or None when it is declared absent."""
    mode = declared.get(stem)
    if mode is None:
        raise RosterFileError(
            files.label(MANIFEST),
            f"manifest.csv has no row for file.{stem}.",
            f"Add the row file.{stem} with the value bulk, delta or absent.",
        )
    if mode == "absent":
        return None
    return _find_member(files, f"{stem}.csv", mode)


def _find_member(files: _SourceFiles, file_name: str, mode: str) -> str:
    """Return the member named ``file_name``, which the manifest declares present."""
    member = files.find(file_name)
    if member is None:
        raise RosterFileError(
            files.label(file_name),
            f"manifest.csv declares {file_name} as {mode}, but the file is missing.",
            f"Add {file_name} to the set, or declare it absent in manifest.csv.",
        )
    return member


def _roster_modes(declared: dict[str, str]) -> dict[str, Mode]:
    """Map manifest modes to roster modes, reading an absent file as an empty delta."""
    modes: dict[str, Mode] = {}
    for stem, entity in ENTITY_FILES.items():
        modes[entity] = "bulk" if declared[stem] == "bulk" else "delta"
    return modes


def _report_absent(
    declared: dict[str, str], stem: str, findings: list[Finding]
) -> None:
    """Warn that a bulk set leaves out one of the files that fill the roster."""
    is_bulk_set = any(declared.get(name) == "bulk" for name in ENTITY_FILES)
    if not is_bulk_set:
        return
    entity = ENTITY_FILES[stem]
    findings.append(
        Finding(
            entity=entity,
            check="file_absent",
            level="warning",
            message=(
                f"manifest.csv declares {stem}.csv absent, so the set provides no "
                f"{entity}. They are read as an empty delta, so none are archived."
            ),
        )
    )


# Orgs


def _read_orgs(
    files: _SourceFiles, declared: dict[str, str], findings: list[Finding]
) -> tuple[Orgs, pd.DataFrame]:
    """Read orgs.csv into the org tree and the frame of its schools."""
    orgs = Orgs()
    schools = _FrameBuilder(SCHOOL_COLUMNS)
    member = _declared_member(files, declared, "orgs")
    if member is None:
        _report_absent(declared, "orgs", findings)
        return orgs, schools.frame()

    required = ("sourcedId", "name", "type")
    with _open_table(files, member, required) as table:
        pick = table.getter(
            "sourcedid", "name", "type", "identifier", "parentsourcedid", "status"
        )
        for _, row in table.rows():
            org_id, name, org_type, identifier, parent, status = pick(row)
            org_id = org_id.strip()
            org_type = org_type.strip().lower()
            orgs.types[org_id] = org_type
            orgs.parents[org_id] = parent.strip()
            if org_type == "school":
                schools.add(
                    provider_id=org_id,
                    name=name,
                    sis_id=identifier,
                    status=normalize_status(status),
                )
    return orgs, schools.frame()


# Users


class _UserRecord(NamedTuple):
    """The users.csv fields the roster keeps, as text straight from the file."""

    provider_id: str
    status: str
    role: str
    given_name: str
    family_name: str
    email: str
    username: str
    identifier: str
    grades: str
    org_ids: str
    primary_org_id: str


# The users.csv column of each _UserRecord field, in lower case.
USER_FIELDS = (
    "sourcedid",
    "status",
    "role",
    "givenname",
    "familyname",
    "email",
    "username",
    "identifier",
    "grades",
    "orgsourcedids",
    "primaryorgsourcedid",
)


@dataclass
class _UserRows:
    """The users frame being built, and the count of contacts left out of it."""

    frame: _FrameBuilder = field(default_factory=lambda: _FrameBuilder(USER_COLUMNS))
    contacts: int = 0


def _read_users(
    files: _SourceFiles,
    declared: dict[str, str],
    orgs: Orgs,
    findings: list[Finding],
) -> pd.DataFrame:
    """Read users.csv, taking roles and orgs from roles.csv in OneRoster 1.2 sets."""
    rows = _UserRows()
    member = _declared_member(files, declared, "users")
    if member is None:
        _report_absent(declared, "users", findings)
        return rows.frame.frame()

    with _open_table(files, member, ("sourcedId",)) as table:
        roles = None
        if "role" not in table.columns:
            roles = _read_roles(files, declared, table.label)
        pick = table.getter(*USER_FIELDS)
        for _, row in table.rows():
            user = _UserRecord._make(pick(row))
            if roles is not None:
                # NOTE: in a delta set, a changed user whose roles did not change has
                # no roles.csv row, so they get no role and the checks quarantine them.
                role, org_ids = roles.get(user.provider_id.strip(), ("", ""))
                user = user._replace(role=role, org_ids=org_ids)
            _add_user(rows, user, orgs, findings)

    if rows.contacts:
        findings.append(
            Finding(
                entity="users",
                check="contacts_not_stored",
                level="warning",
                message=(
                    f"{rows.contacts} users with role parent/guardian/relative are "
                    "not stored."
                ),
            )
        )
    return rows.frame.frame()


def _add_user(
    rows: _UserRows, user: _UserRecord, orgs: Orgs, findings: list[Finding]
) -> None:
    """Add one user to the frame, or only count them when they are a contact."""
    kind, role = classify_role(user.role)
    if kind == CONTACT:
        rows.contacts += 1
        return
    provider_id = user.provider_id.strip()
    school_id, school_ids = orgs.resolve_cell(user.org_ids, user.primary_org_id)

    rows.frame.add(
        provider_id=provider_id,
        kind=kind,
        role=role,
        given_name=user.given_name,
        family_name=user.family_name,
        email=user.email,
        username=user.username,
        sis_id=user.identifier,
        grade=read_grade(user.grades, provider_id, findings),
        school_id=school_id,
        school_ids=school_ids,
        status=normalize_status(user.status),
    )


# OneRoster 1.2 roles


def _read_roles(
    files: _SourceFiles, declared: dict[str, str], users_label: str
) -> dict[str, tuple[str, str]]:
    """Read roles.csv into each user's role and comma-joined org ids.

    OneRoster 1.2 users.csv has no role or orgSourcedIds column, so without roles.csv
    no user could be classified.
    """
    mode = declared.get(ROLES_FILE, "absent")
    if mode == "absent":
        raise RosterFileError(
            users_label,
            "The required column 'role' is missing from the header, and manifest.csv "
            "declares no roles.csv.",
            "Add a role column (OneRoster 1.1), or export roles.csv and declare it in "
            "manifest.csv (OneRoster 1.2).",
            line=1,
        )
    member = _find_member(files, f"{ROLES_FILE}.csv", mode)

    user_roles: dict[str, list[tuple[bool, str, str]]] = {}
    with _open_table(files, member, ("userSourcedId", "role")) as table:
        pick = table.getter(
            "usersourcedid", "role", "roletype", "orgsourcedid", "status"
        )
        for _, row in table.rows():
            user_id, role, role_type, org_id, status = pick(row)
            # A role marked tobedeleted no longer applies to the user.
            if status.strip().lower() == TO_BE_DELETED:
                continue
            is_primary = role_type.strip().lower() == "primary"
            user_roles.setdefault(user_id.strip(), []).append(
                (is_primary, role.strip(), org_id.strip())
            )
    return {user_id: main_role(rows) for user_id, rows in user_roles.items()}


# Classes and enrollments


def _read_classes(
    files: _SourceFiles, declared: dict[str, str], findings: list[Finding]
) -> pd.DataFrame:
    sections = _FrameBuilder(SECTION_COLUMNS)
    member = _declared_member(files, declared, "classes")
    if member is None:
        _report_absent(declared, "classes", findings)
        return sections.frame()

    with _open_table(files, member, ("sourcedId", "schoolSourcedId")) as table:
        pick = table.getter(
            "sourcedid", "schoolsourcedid", "title", "classcode", "status"
        )
        for _, row in table.rows():
            provider_id, school_id, title, class_code, status = pick(row)
            sections.add(
                provider_id=provider_id,
                school_id=school_id,
                name=title,
                sis_id=class_code,
                status=normalize_status(status),
            )
    return sections.frame()


def _read_enrollments(
    files: _SourceFiles, declared: dict[str, str], findings: list[Finding]
) -> pd.DataFrame:
    """Read enrollments.csv, leaving out parent, guardian and relative enrollments."""
    enrollments = _FrameBuilder(ENROLLMENT_COLUMNS)
    member = _declared_member(files, declared, "enrollments")
    if member is None:
        _report_absent(declared, "enrollments", findings)
        return enrollments.frame()

    contacts = 0
    required = ("classSourcedId", "userSourcedId", "role")
    with _open_table(files, member, required) as table:
        pick = table.getter("classsourcedid", "usersourcedid", "role", "status")
        for _, row in table.rows():
            section_id, user_id, role, status = pick(row)
            role = role.strip().lower()
            if role in CONTACT_ROLES:
                contacts += 1
                continue
            enrollments.add(
                section_id=section_id,
                user_id=user_id,
                role=role,
                status=normalize_status(status),
            )

    if contacts:
        findings.append(
            Finding(
                entity="enrollments",
                check="contacts_not_stored",
                level="warning",
                message=(
                    f"{contacts} enrollments with role parent/guardian/relative are "
                    "not stored."
                ),
            )
        )
    return enrollments.frame()
