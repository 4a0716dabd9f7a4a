"""The OneRoster vocabulary that the CSV and REST readers share: roles, orgs, status."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from rostersync.grades import normalize_grade, unknown_grade_finding
from rostersync.roster import ACTIVE, TO_BE_DELETED, Finding

CONTACT_ROLES = frozenset({"parent", "guardian", "relative"})
EDUCATOR_ROLES = frozenset(
    {
        "administrator",
        "aide",
        "assistant_principal",
        "counselor",
        "district_administrator",
        "instructor",
        "librarian",
        "paraprofessional",
        "principal",
        "proctor",
        "school_administrator",
        "site_administrator",
        "specialist",
        "staff",
        "substitute",
        "system_administrator",
        "teacher",
    }
)
# Internal kind of a parent, guardian or relative, who is counted but never stored.
CONTACT = "contact"


@dataclass
class Orgs:
    """Type and parent of every pulled org, to resolve org ids to schools."""

    types: dict[str, str] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    _resolved: dict[tuple[str, str], tuple[str | None, tuple[str, ...]]] = field(
        default_factory=dict
    )

    def resolve(self, org_id: str) -> str:
        """Return the school an org id belongs to, or the id unchanged.

        A school is itself. A department resolves to its nearest school ancestor
        through other departments. Any other org, and a department whose parent is
        missing from the pulled orgs, stays as given so that the data checks can
        flag it.

        NOTE: a delta orgs.csv lists only changed orgs, so a department whose parent
        school did not change stays unresolved there. The REST client always pulls
        every org for this reason.
        """
        current = org_id
        seen: set[str] = set()
        while self.types.get(current) == "department" and current not in seen:
            seen.add(current)
            current = self.parents.get(current, "")
        if self.types.get(current) == "school":
            return current
        return org_id

    def resolve_cell(
        self, org_ids: str, primary_org_id: str
    ) -> tuple[str | None, tuple[str, ...]]:
        """Return the school id and sorted school ids for a user's org cells.

        The school id is the primary org when given, else the first org in the cell.
        Results are cached per cell because most users share a few org lists.
        """
        key = (primary_org_id, org_ids)
        if key not in self._resolved:
            ids = [org_id.strip() for org_id in org_ids.split(",") if org_id.strip()]
            schools = [self.resolve(org_id) for org_id in ids]
            first = primary_org_id.strip() or (ids[0] if ids else "")
            school_id = self.resolve(first) if first else None
            self._resolved[key] = (school_id, tuple(sorted(set(schools))))
        return self._resolved[key]


@lru_cache(maxsize=1024)
def classify_role(value: str) -> tuple[str | None, str | None]:
    """Return the kind and normalised role of a OneRoster role.

    Known roles become lower snake case (``districtAdministrator`` becomes
    ``district_administrator``). An unknown role keeps its text and gets no kind, so
    that the data checks quarantine the user.
    """
    text = value.strip()
    if not text:
        return None, None
    role = snake_case(text)
    if role == "student":
        return "student", role
    if role in CONTACT_ROLES:
        return CONTACT, role
    if role in EDUCATOR_ROLES:
        return "educator", role
    return None, text


def snake_case(text: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    return re.sub(r"[\s-]+", "_", words).lower()


def read_grade(
    grades: str, provider_id: str, findings: list[Finding], source: str = "the file"
) -> str | None:
    """Return the first grade listed in the cell, in the grade vocabulary.

    An unknown grade is kept as given, with a warning naming the user and
    ``source``.
    """
    first = grades.split(",", 1)[0]
    grade, known = _normalize_grade(first)
    if not known:
        findings.append(unknown_grade_finding(provider_id, source))
    return grade


@lru_cache(maxsize=1024)
def _normalize_grade(value: str) -> tuple[str | None, bool]:
    return normalize_grade(value)


def normalize_status(value: str) -> str:
    """Return "active" for an empty or active status, and any other status as given.

    Statuses outside OneRoster's active and tobedeleted, such as "inactive", are
    kept so that the data checks can quarantine the record.
    """
    status = value.strip()
    if status.lower() in ("", ACTIVE):
        return ACTIVE
    if status.lower() == TO_BE_DELETED:
        return TO_BE_DELETED
    return status


def main_role(rows: list[tuple[bool, str, str]]) -> tuple[str, str]:
    """Pick a user's role from their roles.csv rows and join their org ids.

    Any other role wins over parent, guardian and relative, and then a primary role
    wins over a secondary one. The org ids are those of every role that is not a
    contact role, with the chosen role's org first so that it becomes the school_id.
    """
    educational = [row for row in rows if snake_case(row[1]) not in CONTACT_ROLES]
    candidates = educational or rows
    _, role, role_org_id = next((row for row in candidates if row[0]), candidates[0])
    org_ids = dict.fromkeys([role_org_id, *(row[2] for row in educational)])
    return role, ",".join(org_id for org_id in org_ids if org_id)
