"""Sharing rules, a sync limited to some schools, and a second roster source.

Pure functions on a ``Roster``, callable without Prefect or a database:

- ``apply_sharing_rules`` keeps what a rule set shares. Records outside it leave
  the pull, so the sync archives what the set no longer covers.
- ``limit_to_schools`` turns a full pull into a delta that touches only some
  schools: their records are created, updated or archived, and no other record
  changes.
- ``merge_second_source`` adds a district's own file for one school to the
  provider's pull. The provider wins where both send the same record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from rostersync.errors import ConfigurationError
from rostersync.planning import StoreSnapshot
from rostersync.roster import (
    ACTIVE,
    TO_BE_DELETED,
    UNSAFE_ID_CHARACTERS,
    Finding,
    Roster,
    short_id,
    shown_id,
)

REGULAR = "regular"
CUSTOM = "custom"
REGULAR_SET_NAME = "regular"

# The user columns compared between the provider and a second source.
COMPARED_USER_COLUMNS = (
    "kind",
    "role",
    "given_name",
    "family_name",
    "email",
    "username",
    "sis_id",
    "grade",
)
COMPARED_SECTION_COLUMNS = ("name", "sis_id")


@dataclass(frozen=True)
class RuleSet:
    """One version of a named sharing rule set.

    Empty ``school_ids`` shares every school of the pull: for a regular set every
    school but the district's summer schools, for a custom set every one.
    ``section_ids`` shares single sections on top of the schools.
    """

    name: str
    version: int
    kind: str = REGULAR
    school_ids: frozenset[str] = frozenset()
    section_ids: frozenset[str] = frozenset()
    valid_from: date | None = None
    valid_to: date | None = None
    summer_school_id: str | None = None
    extra_source: str | None = None
    revert_on: date | None = None
    reverted_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def in_force_on(self, day: date) -> bool:
        """Return whether the set applies on ``day``, from ``valid_from`` to reversion.

        A custom set past ``valid_to`` stays in force until the reversion runs, so
        that its users leave only when the reversion declares them as expected
        removals. ``is_overdue`` reports whether the reversion is late.
        """
        if self.reverted_at is not None:
            return False
        return self.valid_from is None or day >= self.valid_from

    def is_overdue(self, day: date) -> bool:
        """Return whether a custom set is past its window and not reverted yet."""
        return (
            self.kind == CUSTOM
            and self.reverted_at is None
            and self.valid_to is not None
            and day > self.valid_to
        )

    def describe(self) -> dict[str, object]:
        """Return the set as the audit log and reports keep it: ids and dates."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "school_ids": sorted(self.school_ids),
            "section_ids": sorted(self.section_ids),
            "valid_from": _iso(self.valid_from),
            "valid_to": _iso(self.valid_to),
            "summer_school_id": self.summer_school_id,
            "extra_source": self.extra_source,
            "revert_on": _iso(self.revert_on),
            "reverted": self.reverted_at is not None,
        }


# The length of a stored provider id.
MAX_PROVIDER_ID = 300


def check_provider_id(value: str) -> None:
    """Raise ConfigurationError for an empty, long or unsafe provider id."""
    if (
        not value.strip()
        or len(value) > MAX_PROVIDER_ID
        or UNSAFE_ID_CHARACTERS.search(value)
    ):
        raise ConfigurationError(
            f"Provider id '{short_id(value)}' is invalid; use the id the provider "
            f"shows, 1 to {MAX_PROVIDER_ID} characters without control or invisible "
            "formatting characters (such as a right-to-left mark)."
        )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def set_in_force(rule_sets: Iterable[RuleSet], day: date) -> RuleSet:
    """Return the rule set in force on ``day``, the district's local date.

    A custom set in force on the day wins, the one starting last first. Otherwise
    the regular set applies. Raises ValueError when there is no regular set.
    """
    sets = list(rule_sets)
    custom = [s for s in sets if s.kind == CUSTOM and s.in_force_on(day)]
    if custom:
        return max(custom, key=lambda s: (s.valid_from or date.min, s.name))
    for rule_set in sets:
        if rule_set.kind == REGULAR:
            return rule_set
    raise ValueError("The integration has no regular sharing rule set.")


def excluded_schools(rule_set: RuleSet, summer_school_ids: set[str]) -> set[str]:
    """Return the schools an every-school set leaves out: a regular set's summer
    schools. A set that lists its schools shares only those."""
    return set(summer_school_ids) if rule_set.kind == REGULAR else set()


@dataclass(frozen=True)
class RuleFilter:
    """The outcome of a rule set on a pull: its shared school ids (None for every
    school) and the records it left out, in counts per entity."""

    rule_set: str
    shared_school_ids: frozenset[str] | None
    left_out: dict[str, int]


def apply_sharing_rules(
    roster: Roster, rule_set: RuleSet, summer_school_ids: set[str]
) -> tuple[Roster, RuleFilter]:
    """Keep what ``rule_set`` shares of ``roster``; return it and what was left out.

    A user is shared through any school of the set or an enrollment in a shared
    section, and keeps only the shared schools (the first becomes the primary one
    when the primary school is not shared). A section is shared through its school
    or its own id, and an enrollment leaves with its section or user. Under a set
    of every school, a user or section without a school, and an enrollment naming
    a record the pull lacks, stay for the data checks to report. In a delta, a
    record outside the set is marked to be deleted instead of dropped, so that a
    record that moved out of the set is archived.
    """
    listed = set(rule_set.school_ids)
    excluded = excluded_schools(rule_set, summer_school_ids)

    def covers(school_id: object) -> bool:
        if not isinstance(school_id, str):
            return not listed
        return school_id in listed if listed else school_id not in excluded

    sections = roster.sections
    in_sections = _in(sections["provider_id"], rule_set.section_ids)
    section_kept = sections["school_id"].map(covers, na_action=None).astype(bool)
    section_kept |= in_sections
    # A section shared on its own brings its school, so that it maps to a portal
    # school, but not the school's other people.
    section_schools = set(sections.loc[in_sections, "school_id"].dropna())

    def kept_school(school_id: object) -> bool:
        return covers(school_id) or school_id in section_schools

    enrollments = roster.enrollments
    via_section = set(
        enrollments.loc[
            _in(enrollments["section_id"], rule_set.section_ids), "user_id"
        ].dropna()
    )
    users = roster.users
    school_lists = users["school_ids"].map(
        lambda ids: ids if isinstance(ids, tuple) else ()
    )
    user_kept = school_lists.map(
        lambda ids: any(covers(pid) for pid in ids) if ids else not listed
    ).astype(bool) | _in(users["provider_id"], via_section)
    users = users.assign(
        school_ids=school_lists.map(
            lambda ids: tuple(pid for pid in ids if kept_school(pid))
        ).astype(object),
    )
    users["school_id"] = pd.Series(
        [
            primary
            if pd.isna(primary) or kept_school(primary)
            else (ids[0] if ids else primary)
            for primary, ids in zip(
                users["school_id"], users["school_ids"], strict=True
            )
        ],  # fmt: skip
        index=users.index,
        dtype="string",
    )
    # An enrollment leaves with its section or user. One that names a section or
    # user missing from the pull stays, so that the data checks report it.
    left_users = set(users.loc[~user_kept, "provider_id"].dropna())
    left_sections = set(sections.loc[~section_kept, "provider_id"].dropna())
    enrollment_kept = ~(
        _in(enrollments["section_id"], left_sections)
        | _in(enrollments["user_id"], left_users)
    )
    school_kept = roster.schools["provider_id"].map(kept_school).astype(bool)

    left_out = {
        "schools": int((~school_kept).sum()),
        "users": int((~user_kept).sum()),
        "sections": int((~section_kept).sum()),
        "enrollments": int((~enrollment_kept).sum()),
    }
    filtered = dataclasses.replace(
        roster,
        schools=_keep(roster, "schools", roster.schools, school_kept),
        users=_keep(roster, "users", users, user_kept),
        sections=_keep(roster, "sections", sections, section_kept),
        enrollments=_keep(roster, "enrollments", enrollments, enrollment_kept),
    )
    shared = frozenset(listed | section_schools) if listed else None
    return filtered, RuleFilter(rule_set.label, shared, left_out)


def _keep(
    roster: Roster, entity: str, frame: pd.DataFrame, kept: pd.Series
) -> pd.DataFrame:
    if roster.modes.get(entity, "bulk") == "bulk":
        return frame[kept.to_numpy(dtype=bool)].reset_index(drop=True)
    marked = frame.copy()
    marked.loc[~kept.to_numpy(dtype=bool), "status"] = TO_BE_DELETED
    return marked


def limit_to_schools(
    roster: Roster, store: StoreSnapshot, school_ids: Iterable[str]
) -> Roster:
    """Turn a full pull into a delta that changes only ``school_ids``' records.

    The result lists the pulled records of those schools, and the pulled records
    that the store has in them, so that a move out of a school is applied. It
    marks to be deleted the store's active records of those schools that the pull
    no longer has. Every other stored record stays as it is. The delta carries no
    cursor, since the rest of the district was not applied.
    """
    limited = set(school_ids)
    portal = {store.mapping[pid] for pid in limited if pid in store.mapping}

    schools = roster.schools[_in(roster.schools["provider_id"], limited)]

    stored_users = store.users[
        (store.users["status"] == ACTIVE).fillna(False).to_numpy(dtype=bool)
        & store.users["school_ids"]
        .map(lambda ids: bool(set(ids or ()) & portal))
        .astype(bool)
        .to_numpy(dtype=bool)
    ]
    users = roster.users
    in_school = (
        users["school_ids"]
        .map(lambda ids: isinstance(ids, tuple) and bool(set(ids) & limited))
        .astype(bool)
    )
    users = users[
        in_school | _in(users["provider_id"], set(stored_users["provider_id"]))
    ]
    users = pd.concat(
        [users, _leaving(roster, "users", stored_users, roster.users)],
        ignore_index=True,
    )

    stored_sections = store.sections[
        (store.sections["status"] == ACTIVE).fillna(False).to_numpy(dtype=bool)
        & _in(store.sections["school_id"], portal).to_numpy(dtype=bool)
    ]
    sections = roster.sections
    sections = sections[
        _in(sections["school_id"], limited)
        | _in(sections["provider_id"], set(stored_sections["provider_id"]))
    ]
    sections = pd.concat(
        [sections, _leaving(roster, "sections", stored_sections, roster.sections)],
        ignore_index=True,
    )
    present_sections = set(
        sections.loc[(sections["status"] != TO_BE_DELETED).fillna(True), "provider_id"]
    )
    enrollments = roster.enrollments[
        _in(roster.enrollments["section_id"], present_sections)
    ]
    full_sections = (
        frozenset(present_sections)
        if roster.modes.get("enrollments", "bulk") == "bulk"
        else roster.full_enrollment_sections & frozenset(present_sections)
    )
    return dataclasses.replace(
        roster,
        schools=schools.reset_index(drop=True),
        users=users.reset_index(drop=True),
        sections=sections.reset_index(drop=True),
        enrollments=enrollments.reset_index(drop=True),
        modes=dict.fromkeys(roster.modes, "delta"),
        full_enrollment_sections=full_sections,
        cursor=None,
    )


def _leaving(
    roster: Roster, entity: str, stored: pd.DataFrame, pulled: pd.DataFrame
) -> pd.DataFrame:
    """Return to-be-deleted rows for stored records a bulk pull no longer has."""
    if roster.modes.get(entity, "bulk") != "bulk":
        return pulled.iloc[0:0]
    missing_ids = stored.loc[
        ~_in(stored["provider_id"], set(pulled["provider_id"])), "provider_id"
    ]
    rows = pd.DataFrame(
        {
            column: pd.Series(pd.NA, index=range(len(missing_ids)), dtype="string")
            for column in pulled.columns
            if column != "school_ids"
        }
    )
    rows["provider_id"] = missing_ids.astype("string").to_numpy()
    rows["status"] = TO_BE_DELETED
    if "school_ids" in pulled.columns:
        rows["school_ids"] = pd.Series([()] * len(missing_ids), dtype=object)
    return rows[list(pulled.columns)]


def merge_second_source(
    roster: Roster, extra: Roster, school_id: str, school_name: str
) -> tuple[Roster, list[Finding]]:
    """Add ``extra``'s records of school ``school_id`` to the provider's ``roster``.

    Only the school, its sections, their enrollments and the users of the school
    are taken from ``extra``, and those users get the school as their only school
    from it. A user or section that both send keeps the provider's values, and
    each field that differs is reported as a conflict, by id and field name. A
    user of both also gets the school added to the provider's schools.
    """
    findings: list[Finding] = []
    extra_schools = extra.schools[extra.schools["provider_id"] == school_id]
    schools = roster.schools
    if not (schools["provider_id"] == school_id).any():
        if extra_schools.empty:
            extra_schools = pd.DataFrame(
                {
                    "provider_id": [school_id],
                    "name": [school_name],
                    "sis_id": [pd.NA],
                    "status": [ACTIVE],
                }
            ).astype("string")
        schools = pd.concat(
            [schools, extra_schools[list(schools.columns)]], ignore_index=True
        )

    extra_users = extra.users[
        extra.users["school_ids"]
        .map(lambda ids: isinstance(ids, tuple) and school_id in ids)
        .astype(bool)
        | (extra.users["school_id"] == school_id).fillna(False)
    ]
    extra_users = extra_users.assign(
        school_id=pd.Series(school_id, index=extra_users.index, dtype="string"),
        school_ids=pd.Series(
            [(school_id,)] * len(extra_users), index=extra_users.index, dtype=object
        ),
    )
    users = roster.users
    in_provider = _in(extra_users["provider_id"], set(users["provider_id"].dropna()))
    findings += _conflicts(
        "users",
        users,
        extra_users[in_provider.to_numpy(dtype=bool)],
        COMPARED_USER_COLUMNS,
        school_id,
    )
    both = set(extra_users.loc[in_provider.to_numpy(dtype=bool), "provider_id"])
    users = users.assign(
        school_ids=[
            tuple(sorted(set(ids) | {school_id}))
            if pid in both and isinstance(ids, tuple)
            else ids
            for pid, ids in zip(users["provider_id"], users["school_ids"], strict=True)
        ]  # fmt: skip
    )
    users = pd.concat(
        [users, extra_users[~in_provider.to_numpy(dtype=bool)][list(users.columns)]],
        ignore_index=True,
    )

    extra_sections = extra.sections[extra.sections["school_id"] == school_id]
    sections = roster.sections
    section_known = _in(
        extra_sections["provider_id"], set(sections["provider_id"].dropna())
    )
    findings += _conflicts(
        "sections",
        sections,
        extra_sections[section_known.to_numpy(dtype=bool)],
        COMPARED_SECTION_COLUMNS,
        school_id,
    )
    sections = pd.concat(
        [
            sections,
            extra_sections[~section_known.to_numpy(dtype=bool)][list(sections.columns)],
        ],
        ignore_index=True,
    )
    extra_enrollments = extra.enrollments[
        _in(extra.enrollments["section_id"], set(extra_sections["provider_id"]))
    ]
    key = ["section_id", "user_id", "role"]
    enrollments = pd.concat(
        [roster.enrollments, extra_enrollments[list(roster.enrollments.columns)]],
        ignore_index=True,
    ).drop_duplicates(key, keep="first")

    added = int((~in_provider).sum())
    findings.append(
        Finding(
            entity="users",
            check="second_source_merged",
            level="warning",
            message=(
                f"The summer roster of school {shown_id(school_id)} added {added} "
                f"users and {int((~section_known).sum())} sections to the provider's "
                f"data; {len(both)} users were in both."
            ),
        )
    )
    merged = dataclasses.replace(
        roster,
        schools=schools.reset_index(drop=True),
        users=users.reset_index(drop=True),
        sections=sections.reset_index(drop=True),
        enrollments=enrollments.reset_index(drop=True),
        findings=[*roster.findings, *extra.findings],
    )
    return merged, findings


def _conflicts(
    entity: str,
    provider: pd.DataFrame,
    extra: pd.DataFrame,
    columns: tuple[str, ...],
    school_id: str,
) -> list[Finding]:
    """Report each record of ``extra`` whose values differ from the provider's."""
    if extra.empty:
        return []
    merged = extra.merge(
        provider.drop_duplicates("provider_id", keep="last"),
        on="provider_id",
        suffixes=("_extra", ""),
    )
    findings = []
    for _, row in merged.iterrows():
        fields = [
            column
            for column in columns
            if pd.notna(row[column + "_extra"])
            and (
                pd.isna(row[column]) or str(row[column]) != str(row[column + "_extra"])
            )
        ]
        if fields:
            label = "User" if entity == "users" else "Section"
            findings.append(
                Finding(
                    entity=entity,
                    check="second_source_conflict",
                    level="warning",
                    provider_id=str(row["provider_id"]),
                    message=(
                        f"{label} {shown_id(str(row['provider_id']))} differs between "
                        f"the provider and the summer roster of school "
                        f"{shown_id(school_id)} in {', '.join(fields)}; the "
                        "provider's values were kept."
                    ),
                )
            )
    return findings


def _ids(frame: pd.DataFrame) -> list[str]:
    present = frame[
        (frame["status"] != TO_BE_DELETED).fillna(True).to_numpy(dtype=bool)
    ]
    return [str(value) for value in present["provider_id"].dropna()]


def _in(values: pd.Series, candidates: Iterable[str]) -> pd.Series:
    """Return whether each value is one of ``candidates``; False when missing."""
    return values.isin(list(candidates)).fillna(False).astype(bool)
