"""The provider-independent roster: what one pull of a district's shared data holds.

Every reader (OneRoster CSV, Clever files, the live API clients) fills the same four
column-oriented frames. Empty provider values are stored as missing (``pd.NA``), never
as empty strings, so that two pulls of the same data compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

ENTITIES = ("schools", "educators", "students", "sections", "enrollments")

SCHOOL_COLUMNS = ("provider_id", "name", "sis_id", "status")
USER_COLUMNS = (
    "provider_id",
    "kind",
    "role",
    "given_name",
    "family_name",
    "email",
    "username",
    "sis_id",
    "grade",
    "school_id",
    "school_ids",
    "status",
)
SECTION_COLUMNS = ("provider_id", "school_id", "name", "sis_id", "status")
ENROLLMENT_COLUMNS = ("section_id", "user_id", "role", "status")

# A record whose status is "tobedeleted" left the shared data (OneRoster's word).
ACTIVE = "active"
TO_BE_DELETED = "tobedeleted"

# Control characters (NUL among them), formatting characters such as bidirectional
# and zero-width marks, and line and paragraph separators. No id may contain them.
# RE2, which pyarrow uses, and Python's re read the same ranges.
UNSAFE_ID_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def shown_id(text: str) -> str:
    """Return an id with its control and invisible characters written as escapes.

    A right-to-left mark in an id would otherwise reorder the text shown around
    it in a log line, an error or a finding. NUL is left for the store to escape.
    """
    return UNSAFE_ID_CHARACTERS.sub(
        lambda match: (
            match.group() if match.group() == "\x00" else f"\\u{ord(match.group()):04x}"
        ),
        text,
    )


# Characters of an operator's id shown in a message; a longer one is cut.
SHOWN_ID_LENGTH = 80


def short_id(text: str) -> str:
    """Return ``shown_id(text)``, cut to SHOWN_ID_LENGTH characters with an ellipsis."""
    if len(text) <= SHOWN_ID_LENGTH:
        return shown_id(text)
    return shown_id(text[:SHOWN_ID_LENGTH]) + "…"


Mode = Literal["bulk", "delta"]
Level = Literal["blocking", "quarantine", "warning"]
PullMode = Literal["full", "incremental"]


@dataclass(frozen=True)
class Finding:
    """One result of a data check or a reader, naming records by provider id only."""

    entity: str
    check: str
    level: Level
    message: str
    provider_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "entity": self.entity,
            "check": self.check,
            "level": self.level,
            "provider_id": self.provider_id,
            "message": self.message,
        }


@dataclass(frozen=True)
class CursorUpdate:
    """The provider cursor to store when the pull is applied; a None value clears it.

    ``value`` is a Clever event id or a OneRoster ``dateLastModified`` timestamp.
    ``taken_at`` is when the cursor's event happened or its timestamp was taken,
    which decides whether the provider still accepts it. A None value with a time
    is a cursor cleared because the pull quarantined records.
    """

    value: str | None
    taken_at: datetime | None = None


@dataclass
class PullInfo:
    """Figures of one pull from a provider, in counts only.

    ``reason`` explains why a pull is full when an incremental one was possible.
    ``pages`` and ``records`` count per collection what the provider sent,
    repeats included.
    """

    mode: PullMode = "full"
    reason: str | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    pages: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["waited_seconds"] = round(self.waited_seconds, 3)
        return summary


@dataclass
class Roster:
    """One pull of a district's shared roster, as four frames of text columns.

    ``users.school_ids`` contains a sorted tuple of provider school ids per user, and
    every other cell is a string or ``pd.NA``. ``modes`` gives, per frame, whether
    the pull is a full snapshot (``bulk``: a record missing from it has left) or a
    ``delta``, in which only the records present changed and ``status ==
    "tobedeleted"`` marks removals. In a delta, the sections in
    ``full_enrollment_sections`` list all their enrollments, so their stored
    enrollments that the pull lacks have left. ``cursor`` is the provider cursor to
    store once the pull is applied, and None leaves the stored cursor as it is.
    """

    schools: pd.DataFrame
    users: pd.DataFrame
    sections: pd.DataFrame
    enrollments: pd.DataFrame
    source: str = ""
    modes: dict[str, Mode] = field(
        default_factory=lambda: {
            "schools": "bulk",
            "users": "bulk",
            "sections": "bulk",
            "enrollments": "bulk",
        }
    )
    findings: list[Finding] = field(default_factory=list)
    full_enrollment_sections: frozenset[str] = frozenset()
    cursor: CursorUpdate | None = None
    pull: PullInfo = field(default_factory=PullInfo)

    @property
    def is_delta(self) -> bool:
        return any(mode == "delta" for mode in self.modes.values())


def cursor_to_store(roster: Roster, quarantined: int) -> CursorUpdate | None:
    """Return the cursor to store when the pull is applied; None keeps the stored one.

    A pull with quarantined records clears the cursor, so the next pull is full.
    Neither a quarantined record nor what depends on it (a quarantined user's
    enrollments) comes again in an incremental pull once the record is fixed,
    unless the provider changes the dependent records too.
    """
    if roster.cursor is None:
        return None
    if quarantined:
        # A cleared cursor keeps a time, which marks the quarantine as the reason
        # that the next pull is full.
        return CursorUpdate(None, datetime.now(UTC))
    return roster.cursor


def frame_from_columns(columns: dict[str, list], names: Iterable[str]) -> pd.DataFrame:
    """Build a frame with exactly ``names`` as columns from lists gathered per column.

    Text columns use pandas' string dtype; ``school_ids`` stays an object column of
    tuples.
    """
    names = tuple(names)
    length = max((len(values) for values in columns.values()), default=0)
    data = {}
    for name in names:
        values = columns.get(name, [None] * length)
        if name == "school_ids":
            data[name] = pd.Series(values, dtype=object)
        else:
            data[name] = pd.Series(values, dtype="string")
    frame = pd.DataFrame(data, columns=list(names))
    for name in names:
        if name != "school_ids":
            frame[name] = frame[name].str.strip().replace("", pd.NA)
    return frame


def empty_roster(source: str = "") -> Roster:
    """Return a roster with no records and every column present."""
    return Roster(
        schools=frame_from_columns({}, SCHOOL_COLUMNS),
        users=frame_from_columns({}, USER_COLUMNS),
        sections=frame_from_columns({}, SECTION_COLUMNS),
        enrollments=frame_from_columns({}, ENROLLMENT_COLUMNS),
        source=source,
    )
