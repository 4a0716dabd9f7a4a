"""Plan the changes that bring the store in line with one pull.

These are pure functions on frames, callable without Prefect or a database. The
store's current rows come in as a ``StoreSnapshot`` and the checked pull as a
``Roster``. The result is a ``Plan`` that lists, per entity, what to create, update,
archive and restore. School references are compared as portal school ids, and a
school that this plan creates is referred to as ``new:<provider id>`` until it
exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rostersync.roster import (
    ACTIVE,
    ENROLLMENT_COLUMNS,
    ENTITIES,
    SCHOOL_COLUMNS,
    SECTION_COLUMNS,
    TO_BE_DELETED,
    USER_COLUMNS,
    Roster,
)

ACTIONS = ("created", "updated", "archived", "restored", "unchanged")
CREATE, UPDATE, ARCHIVE, RESTORE = "create", "update", "archive", "restore"
_COUNT_NAMES = {
    CREATE: "created",
    UPDATE: "updated",
    ARCHIVE: "archived",
    RESTORE: "restored",
}

# The columns whose change is an update: every roster column but the key and status.
_NOT_VALUES = ("provider_id", "status")
SCHOOL_VALUES = tuple(c for c in SCHOOL_COLUMNS if c not in _NOT_VALUES)
USER_VALUES = tuple(c for c in USER_COLUMNS if c not in _NOT_VALUES)
SECTION_VALUES = tuple(c for c in SECTION_COLUMNS if c not in _NOT_VALUES)
ENROLLMENT_KEY = tuple(c for c in ENROLLMENT_COLUMNS if c != "status")
NEW_SCHOOL_PREFIX = "new:"

DEFAULT_THRESHOLD_SHARE = 0.05
DEFAULT_THRESHOLD_MIN = 10
DEFAULT_THRESHOLD_MAX = 500


@dataclass
class StoreSnapshot:
    """The district's roster rows as the store has them now, archived ones included.

    ``mapping`` maps every provider school id to a portal school id, as text.
    ``schools`` contains the mapped schools that are not aliases of a merged campus.
    ``enrollments`` names sections and users by provider id.
    ``operator_schools`` are the provider ids of schools that an operator added (a
    summer school, a mapped new school): a pull never archives them.
    """

    schools: pd.DataFrame
    mapping: dict[str, str]
    aliases: set[str]
    users: pd.DataFrame
    sections: pd.DataFrame
    enrollments: pd.DataFrame
    store_version: int = 0
    operator_schools: set[str] = field(default_factory=set)

    @property
    def active_users(self) -> int:
        return int((self.users["status"] == ACTIVE).sum())

    def active_counts(self) -> dict[str, int]:
        """Count the active rows of each roster entity, users included."""
        frames = {
            "schools": self.schools,
            "users": self.users,
            "sections": self.sections,
            "enrollments": self.enrollments,
        }
        return {
            entity: int((frame["status"] == ACTIVE).sum())
            for entity, frame in frames.items()
        }

    def unchanged_counts(self) -> dict[str, dict[str, int]]:
        """Return counts of a run that changes nothing: every active row unchanged."""
        counts = {entity: dict.fromkeys(ACTIONS, 0) for entity in ENTITIES}
        active = self.users[(self.users["status"] == ACTIVE).fillna(False)]
        counts["educators"]["unchanged"] = int((active["kind"] == "educator").sum())
        counts["students"]["unchanged"] = int((active["kind"] == "student").sum())
        for entity in ("schools", "sections", "enrollments"):
            frame = getattr(self, entity)
            counts[entity]["unchanged"] = int((frame["status"] == ACTIVE).sum())
        return counts


@dataclass
class Plan:
    """The changes one run would make, per entity, keyed by provider id."""

    district_id: str
    store_version: int
    changes: dict[str, pd.DataFrame]
    unchanged: dict[str, int]
    protected: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Count changes per reported entity; users count as educators or students."""
        counts = {entity: dict.fromkeys(ACTIONS, 0) for entity in ENTITIES}
        for entity, frame in self.changes.items():
            if entity == "users":
                for kind, name in (("educator", "educators"), ("student", "students")):
                    part = frame[frame["kind"] == kind]
                    _add_action_counts(counts[name], part["action"])
            else:
                _add_action_counts(counts[entity], frame["action"])
        for entity, number in self.unchanged.items():
            counts[entity]["unchanged"] += number
        return counts

    def archived_users(self) -> pd.DataFrame:
        users = self.changes["users"]
        return users[users["action"] == ARCHIVE]

    def kind_changes(self) -> pd.DataFrame:
        """Return the planned users who change between student and educator."""
        users = self.changes["users"]
        switched = [
            action in (UPDATE, RESTORE) and "kind" in (changed or ())
            for action, changed in zip(users["action"], users["changed"], strict=True)
        ]
        return users[pd.Series(switched, index=users.index, dtype=bool)]

    @property
    def is_empty(self) -> bool:
        return all(frame.empty for frame in self.changes.values())


def _add_action_counts(target: dict[str, int], actions: pd.Series) -> None:
    for action, number in actions.value_counts().items():
        target[_COUNT_NAMES[str(action)]] += int(number)


def removal_threshold(active_users: int, district_threshold: int | None) -> int:
    """Return how many users one run may archive before it is held.

    A district's own threshold wins; otherwise 5% of its active users, but never
    under 10 nor over 500.
    """
    if district_threshold is not None:
        return district_threshold
    share = math.ceil(active_users * DEFAULT_THRESHOLD_SHARE)
    return min(DEFAULT_THRESHOLD_MAX, max(DEFAULT_THRESHOLD_MIN, share))


def plan_changes(
    district_id: str,
    roster: Roster,
    store: StoreSnapshot,
    quarantined: dict[str, set] | None = None,
) -> Plan:
    """Compare a checked roster with the store and return the plan.

    Records in ``quarantined`` failed a record-level check: they are neither applied
    nor archived, so bad input never costs anyone an account.
    """
    quarantined = quarantined or {}
    mapping = _school_mapping(roster, store)

    schools, schools_unchanged = _plan_schools(roster, store, quarantined)
    users_in = _map_user_schools(roster.users, mapping)
    users, users_unchanged = _plan_keyed(
        users_in,
        store.users,
        USER_VALUES,
        bulk=roster.modes["users"] == "bulk",
        protected=quarantined.get("users", set()),
    )
    sections_in = roster.sections.assign(
        school_id=roster.sections["school_id"].map(mapping, na_action="ignore")
    )
    sections, sections_unchanged = _plan_keyed(
        sections_in,
        store.sections,
        SECTION_VALUES,
        bulk=roster.modes["sections"] == "bulk",
        protected=quarantined.get("sections", set()),
    )
    enrollments, enrollments_unchanged = _plan_enrollments(
        roster,
        store,
        quarantined.get("enrollments", set()),
        quarantined_sections=quarantined.get("sections", set()),
        active_users=_active_after(store.users, users),
        active_sections=_active_after(store.sections, sections),
    )

    unchanged = {
        "schools": schools_unchanged,
        "educators": users_unchanged.get("educator", 0),
        "students": users_unchanged.get("student", 0),
        "sections": sections_unchanged["all"],
        "enrollments": enrollments_unchanged,
    }
    return Plan(
        district_id=district_id,
        store_version=store.store_version,
        changes={
            "schools": schools,
            "users": users,
            "sections": sections,
            "enrollments": enrollments,
        },
        unchanged=unchanged,
        protected={name: len(ids) for name, ids in quarantined.items()},
    )


def _school_mapping(roster: Roster, store: StoreSnapshot) -> dict[str, str]:
    """Map every provider school id of the pull to a portal id or a placeholder."""
    mapping = dict(store.mapping)
    for provider_id in roster.schools["provider_id"].dropna():
        mapping.setdefault(provider_id, NEW_SCHOOL_PREFIX + provider_id)
    return mapping


def _map_user_schools(users: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    def to_portal(ids: tuple) -> tuple:
        return tuple(sorted({mapping.get(pid, NEW_SCHOOL_PREFIX + pid) for pid in ids}))

    school_ids = users["school_ids"].map(
        lambda ids: to_portal(ids) if isinstance(ids, tuple) else ()
    )
    return users.assign(
        school_id=users["school_id"].map(
            lambda pid: mapping.get(pid, NEW_SCHOOL_PREFIX + pid), na_action="ignore"
        ),
        school_ids=school_ids,
    )


def _plan_schools(
    roster: Roster, store: StoreSnapshot, quarantined: dict[str, set]
) -> tuple[pd.DataFrame, int]:
    incoming = roster.schools
    # A merged campus's provider id resolves to the surviving school; it is never
    # created, updated or archived on its own.
    is_alias = incoming["provider_id"].isin(store.aliases)
    aliases_present = int(is_alias.sum())
    protected = (
        set(quarantined.get("schools", set())) | store.aliases | store.operator_schools
    )
    frame, unchanged = _plan_keyed(
        incoming[~is_alias],
        store.schools,
        SCHOOL_VALUES,
        bulk=roster.modes["schools"] == "bulk",
        protected=protected,
    )
    return frame, unchanged["all"] + aliases_present


def _plan_keyed(
    incoming: pd.DataFrame,
    current: pd.DataFrame,
    values: tuple[str, ...],
    *,
    bulk: bool,
    protected: set,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Plan one entity keyed by ``provider_id``; return changes and unchanged counts."""
    incoming = incoming.drop_duplicates("provider_id", keep="last")
    leaving = incoming[incoming["status"] == TO_BE_DELETED]
    present = incoming[incoming["status"] != TO_BE_DELETED]

    merged = present.merge(
        current,
        on="provider_id",
        how="left",
        suffixes=("", "_store"),
        indicator=True,
    )
    in_store, was_archived = _store_masks(merged)
    changed = _changed_fields(merged, values)
    has_changes = pd.Series([bool(c) for c in changed], index=merged.index, dtype=bool)

    create = merged[~in_store].assign(
        action=CREATE, changed=[()] * int((~in_store).sum())
    )
    restore = merged[was_archived].assign(action=RESTORE, changed=changed[was_archived])
    update_mask = in_store & ~was_archived & has_changes
    update = merged[update_mask].assign(action=UPDATE, changed=changed[update_mask])
    same = merged[in_store & ~was_archived & ~has_changes]

    archive = _archived_rows(current, present, leaving, bulk=bulk, protected=protected)

    parts = [_finish(part, values) for part in (create, update, restore, archive)]
    frame = pd.concat(parts).reset_index(drop=True)
    unchanged = {"all": len(same)}
    if "kind" in same.columns:
        unchanged.update(same["kind"].value_counts().astype(int).to_dict())
    return frame, unchanged


def _store_masks(merged: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Say per pulled row whether the store has it, and whether it is archived there."""
    in_store = (merged["_merge"] == "both").astype(bool)
    archived = (merged["status_store"] != ACTIVE).fillna(False).astype(bool)
    return in_store, in_store & archived


def _changed_fields(merged: pd.DataFrame, values: tuple[str, ...]) -> pd.Series:
    """Name, per row, the value columns whose pulled value differs from the store's."""
    names: list[list[str]] = [[] for _ in range(len(merged))]
    for column in values:
        new = merged[column]
        old = merged[column + "_store"]
        differs = _differs(new, old)
        for position in differs.to_numpy().nonzero()[0]:
            names[position].append(column)
    return pd.Series([tuple(n) for n in names], index=merged.index, dtype=object)


def _differs(new: pd.Series, old: pd.Series) -> pd.Series:
    if new.dtype == object or old.dtype == object:
        return pd.Series(
            [_normal(a) != _normal(b) for a, b in zip(new, old, strict=True)],
            index=new.index,
        )
    new_text = new.astype("string")
    old_text = old.astype("string")
    both_missing = new_text.isna() & old_text.isna()
    equal = (new_text == old_text).fillna(False)
    return ~(both_missing | equal)


def _normal(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(str(item) for item in value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


def _finish(frame: pd.DataFrame, values: tuple[str, ...]) -> pd.DataFrame:
    """Keep the plan's columns: action, store id, key, pulled values, before values."""
    before = {column + "_store": "before_" + column for column in values}
    kept = ["action", "id", "provider_id", *values, "changed", *before]
    for column in kept:
        if column not in frame.columns:
            frame = frame.assign(**{column: pd.NA})
    return frame[kept].rename(columns=before)


def _archived_rows(
    current: pd.DataFrame,
    present: pd.DataFrame,
    leaving: pd.DataFrame,
    *,
    bulk: bool,
    protected: set,
) -> pd.DataFrame:
    """Return store rows to archive: gone from a bulk pull, or marked to be deleted."""
    active = current[current["status"] == ACTIVE]
    if bulk:
        gone = ~active["provider_id"].isin(present["provider_id"])
    else:
        gone = pd.Series(False, index=active.index)
    gone |= active["provider_id"].isin(leaving["provider_id"])
    gone &= ~active["provider_id"].isin(protected)
    rows = active[gone]
    return rows.assign(action=ARCHIVE, changed=[("status",)] * len(rows))


def _plan_enrollments(
    roster: Roster,
    store: StoreSnapshot,
    protected: set,
    *,
    quarantined_sections: set,
    active_users: pd.Series,
    active_sections: pd.Series,
) -> tuple[pd.DataFrame, int]:
    """Plan enrollments keyed by section, user and role.

    ``active_users`` and ``active_sections`` are the provider ids that are active
    once the plan is applied. An enrollment of any other user or section is
    archived, even when the pull still lists it, and is neither created nor
    restored: a pull that lists an unshared student in a section must not bring
    back the enrollments archived with them. In a delta, a section of
    ``roster.full_enrollment_sections`` that passed its checks loses the stored
    enrollments the pull does not list.
    """
    key = list(ENROLLMENT_KEY)
    incoming = roster.enrollments.drop_duplicates(key, keep="last")
    leaving = incoming[incoming["status"] == TO_BE_DELETED]
    present = incoming[incoming["status"] != TO_BE_DELETED]
    present = present[
        _member(present["user_id"], active_users)
        & _member(present["section_id"], active_sections)
    ]
    current = store.enrollments

    merged = present.merge(
        current, on=key, how="left", suffixes=("", "_store"), indicator=True
    )
    in_store, was_archived = _store_masks(merged)
    create = merged[~in_store].assign(action=CREATE)
    restore = merged[was_archived].assign(action=RESTORE)
    unchanged = int((in_store & ~was_archived).sum())

    active = current[current["status"] == ACTIVE]
    active_keys = _keys(active, key)
    gone = active_keys.isin(_keys(leaving, key))
    if roster.modes["enrollments"] == "bulk":
        gone |= ~active_keys.isin(_keys(present, key))
    else:
        listed = roster.full_enrollment_sections - set(quarantined_sections)
        if listed:
            in_listed = active["section_id"].isin(listed).to_numpy(dtype=bool)
            gone |= in_listed & ~active_keys.isin(_keys(present, key))
    if protected:
        # A user with a quarantined enrollment keeps every stored enrollment until
        # the provider's data is fixed, since the bad row may be their only copy.
        protected_users = {key[1] for key in protected}
        gone &= ~active_keys.isin(pd.MultiIndex.from_tuples(list(protected)))
        gone &= ~active["user_id"].isin(protected_users).to_numpy(dtype=bool)
    gone |= ~_member(active["user_id"], active_users)
    gone |= ~_member(active["section_id"], active_sections)
    archive = active[gone].assign(action=ARCHIVE)

    columns = ["action", "id", *key]
    parts = [part.reindex(columns=columns) for part in (create, restore, archive)]
    frame = pd.concat(parts).reset_index(drop=True)
    return frame, unchanged


def _active_after(current: pd.DataFrame, planned: pd.DataFrame) -> pd.Series:
    """Return the provider ids that are active once ``planned`` is applied."""
    active = current.loc[(current["status"] == ACTIVE).fillna(False), "provider_id"]
    actions = planned["action"]
    archived = planned.loc[actions == ARCHIVE, "provider_id"]
    active = active[~_member(active, archived)]
    added = planned.loc[actions.isin([CREATE, RESTORE]), "provider_id"]
    return pd.concat([active, added], ignore_index=True).astype("string")


def _member(values: pd.Series, candidates: pd.Series) -> np.ndarray:
    """Return whether each value is one of ``candidates``; False for a missing one.

    pyarrow's ``is_in`` is used because ``Series.isin`` on arrow-backed strings
    converts every candidate to a Python object, several times slower at a million
    ids.
    """
    value_set = pa.array(candidates.astype("string").dropna(), type=pa.large_string())
    strings = pa.array(values.astype("string"), type=pa.large_string())
    return np.asarray(pc.is_in(strings, value_set=value_set), dtype=bool)


def _keys(frame: pd.DataFrame, key: list[str]) -> pd.MultiIndex:
    if frame.empty:
        return pd.MultiIndex.from_tuples([], names=key)
    return pd.MultiIndex.from_frame(frame[key].astype(str))
