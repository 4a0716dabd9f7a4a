"""Change a district's school mapping: add a school, merge campuses.

A merge moves users and sections of the merged portal schools to the surviving
one in one transaction, with set-based statements over staging tables. It logs
every moved row in the change log under its run, so that the undo-run flow can
reverse it. The undo gives users and sections their schools back, makes the
merged schools active again, and points the mapping rows where they pointed
before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import pandas as pd
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    insert,
    select,
    update,
)

from rostersync.errors import ConfigurationError
from rostersync.roster import shown_id
from rostersync.rules import REGULAR_SET_NAME, RuleSet
from rostersync.store.models import (
    ACTIVE,
    ARCHIVED,
    OPERATOR_MANAGED,
    ChangeLogEntry,
    District,
    Integration,
    School,
    SchoolMapping,
    Section,
    SyncRun,
    User,
)
from rostersync.store.rules import (
    audit,
    integration_id_of,
    load_rule_sets,
    save_rule_set,
)

BATCH_ROWS = 10_000
# The length of schools.name.
MAX_SCHOOL_NAME = 300
MAPPING_ENTITY = "school_mappings"
UPDATE = "update"
_LOG = cast(Table, ChangeLogEntry.__table__)


def _mapping(connection: Connection, district_id: str) -> dict[str, tuple[int, bool]]:
    rows = connection.execute(
        select(
            SchoolMapping.provider_school_id,
            SchoolMapping.school_id,
            SchoolMapping.is_alias,
        ).where(SchoolMapping.district_id == district_id)
    ).all()
    return {row.provider_school_id: (row.school_id, row.is_alias) for row in rows}


# Add a school


@dataclass(frozen=True)
class AddedSchool:
    provider_school_id: str
    portal_school_id: int
    created: bool
    rule_set: str
    added_to_rules: bool


def add_school(
    connection: Connection,
    district_id: str,
    provider_school_id: str,
    *,
    portal_school_id: int | None,
    name: str | None,
    changed_by: str,
    reason: str | None,
    now: datetime,
) -> AddedSchool:
    """Map a provider school id to a new or existing portal school; one transaction.

    With ``portal_school_id`` the id resolves to that school, as an alias of it.
    Otherwise a portal school named ``name`` is created, which a sync never
    archives. The id is added to a regular set that lists its schools (a set of
    every school shares it already).
    """
    mapping = _mapping(connection, district_id)
    if provider_school_id in mapping:
        school, alias = mapping[provider_school_id]
        raise ConfigurationError(
            f"School {shown_id(provider_school_id)} already maps to portal school "
            f"{school}{' as a merged campus' if alias else ''}; nothing was changed. "
            "To move its people elsewhere, merge it instead."
        )
    created = portal_school_id is None
    if portal_school_id is not None:
        exists = connection.execute(
            select(School.id)
            .where(School.id == portal_school_id)
            .where(School.district_id == district_id)
            .where(School.status == ACTIVE)
        ).scalar_one_or_none()
        if exists is None:
            raise ConfigurationError(
                f"Portal school {portal_school_id} is not an active school of "
                f"district {district_id}; `rostersync mapping list {district_id}` "
                "shows the district's schools."
            )
    else:
        if name and len(name.strip()) > MAX_SCHOOL_NAME:
            raise ConfigurationError(
                f"The school name has {len(name.strip())} characters; keep it to "
                f"{MAX_SCHOOL_NAME}."
            )
        if not name or not name.strip():
            raise ConfigurationError(
                "A new portal school needs a name; pass --name NAME, or "
                "--portal-school ID to map the provider id to an existing school."
            )
        portal_school_id = connection.execute(
            insert(School)
            .values(
                district_id=district_id,
                provider_id=provider_school_id,
                name=name.strip(),
                managed_by=OPERATOR_MANAGED,
                status=ACTIVE,
                created_at=now,
                updated_at=now,
            )
            .returning(School.id)
        ).scalar_one()
    connection.execute(
        insert(SchoolMapping).values(
            district_id=district_id,
            provider_school_id=provider_school_id,
            school_id=portal_school_id,
            is_alias=not created,
        )
    )
    regular = _regular_set(connection, district_id)
    added = bool(regular.school_ids)
    if added:
        regular = save_rule_set(
            connection,
            district_id,
            RuleSet(
                **{
                    **regular.__dict__,
                    "school_ids": regular.school_ids | {provider_school_id},
                }
            ),
            changed_by=changed_by,
            reason=reason,
            now=now,
        )
    lock_district(connection, district_id)
    audit(
        connection,
        district_id,
        "school_mapping_added",
        changed_by=changed_by,
        reason=reason,
        before=None,
        after={
            "provider_school_id": provider_school_id,
            "portal_school_id": portal_school_id,
            "created": created,
            "rule_set": regular.label,
        },
        now=now,
    )
    return AddedSchool(
        provider_school_id, portal_school_id, created, regular.label, added
    )


def _regular_set(connection: Connection, district_id: str) -> RuleSet:
    sets = load_rule_sets(connection, integration_id_of(connection, district_id))
    return next(s for s in sets if s.name == REGULAR_SET_NAME)


def lock_district(connection: Connection, district_id: str) -> None:
    """Move the store version on, so held plans made before the change are stale.

    As the transaction's first write it also locks the district's row, so a
    second change of the same district waits until this one commits.
    """
    version = connection.execute(
        select(District.store_version)
        .where(District.id == district_id)
        .with_for_update()
    ).scalar_one()
    connection.execute(
        update(District)
        .where(District.id == district_id)
        .values(store_version=version + 1)
    )


# Merge campuses


@dataclass
class MergePlan:
    """The rows a merge moves: users, sections and mapping rows of merged schools."""

    district_id: str
    into_school_id: str
    into_portal_id: int
    merged: dict[str, int]
    users: pd.DataFrame
    sections: pd.DataFrame
    mappings: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        kinds = self.users["kind"].value_counts() if len(self.users) else {}
        return {
            "students": int(kinds.get("student", 0)),
            "educators": int(kinds.get("educator", 0)),
            "sections": len(self.sections),
            "schools": len(self.merged),
            "mappings": len(self.mappings),
        }


def plan_merge(
    connection: Connection,
    district_id: str,
    merged_school_ids: Iterable[str],
    into_school_id: str,
) -> MergePlan:
    """Return what merging ``merged_school_ids`` into ``into_school_id`` moves.

    Raises ConfigurationError, naming the bad id, when a school is not mapped, is
    already a merged campus, or is the surviving school.
    """
    mapping = _mapping(connection, district_id)
    merged_ids = sorted({pid.strip() for pid in merged_school_ids if pid.strip()})
    if not merged_ids:
        raise ConfigurationError(
            "Name at least one provider school id to merge; pass --merge ID."
        )
    into = _mapped_school(mapping, into_school_id, district_id, "surviving")
    merged: dict[str, int] = {}
    for pid in merged_ids:
        if pid == into_school_id:
            raise ConfigurationError(
                f"School {shown_id(pid)} is the surviving school and cannot be merged "
                "into itself; list only the campuses that close."
            )
        merged[pid] = _mapped_school(mapping, pid, district_id, "merged")
        if merged[pid] == into:
            raise ConfigurationError(
                f"School {shown_id(pid)} already resolves to portal school {into}; "
                "nothing to merge."
            )
    portal = set(merged.values())
    summer = connection.execute(
        select(School.id)
        .where(School.id.in_(portal | {into}))
        .where(School.is_summer_school.is_(True))
    ).scalars()
    for school in summer:
        pid = (
            into_school_id
            if school == into
            else next(p for p, s in merged.items() if s == school)
        )
        raise ConfigurationError(
            f"School {shown_id(pid)} is a summer school, and a merge would move the "
            "regular year's people into the summer rules or the summer people out "
            "of them; merge only regular schools. The reversion deactivates a "
            "summer school at the end of its program."
        )
    users = pd.read_sql(
        select(User.id, User.kind, User.school_id, User.school_ids).where(
            User.district_id == district_id
        ),
        connection,
    )
    users["school_ids"] = users["school_ids"].map(_id_list)
    moving = users["school_id"].isin(portal) | users["school_ids"].map(
        lambda ids: bool(set(ids) & portal)
    ).astype(bool)
    users = users[moving].copy()
    users["new_school_id"] = users["school_id"].map(
        lambda sid: into if sid in portal else sid
    )
    users["new_school_ids"] = users["school_ids"].map(
        lambda ids: sorted({into if sid in portal else sid for sid in ids})
    )
    sections = pd.read_sql(
        select(Section.id, Section.school_id)
        .where(Section.district_id == district_id)
        .where(Section.school_id.in_(portal)),
        connection,
    )
    mappings = [
        {"provider_school_id": pid, "school_id": school, "is_alias": alias}
        for pid, (school, alias) in sorted(mapping.items())
        if school in portal
    ]
    return MergePlan(
        district_id, into_school_id, into, merged, users, sections, mappings
    )


def _mapped_school(
    mapping: dict[str, tuple[int, bool]], pid: str, district_id: str, role: str
) -> int:
    if pid not in mapping:
        raise ConfigurationError(
            f"The {role} school {shown_id(pid)} is not in district {district_id}'s "
            f"school mapping; `rostersync mapping list {district_id}` shows the "
            "mapped provider ids."
        )
    school, alias = mapping[pid]
    if alias:
        raise ConfigurationError(
            f"The {role} school {shown_id(pid)} is an alias of portal school "
            f"{school} (a merged campus or an id added to an existing school); name "
            "a school that maps to its own portal school."
        )
    return school


def apply_merge(
    connection: Connection,
    plan: MergePlan,
    run_id: str,
    *,
    changed_by: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Move the plan's users and sections, alias the merged schools; log each row.

    The caller owns the transaction, in which it called ``lock_district`` before
    ``plan_merge``. No user or section is archived or created, and the merged
    portal schools are archived with ``merged_into_id`` set.
    """
    district_id = plan.district_id
    metadata = MetaData()
    users = plan.users
    user_stage = _stage(
        connection,
        metadata,
        "stage_merge_users",
        [Column("school_id", Integer), Column("school_ids", JSON)],
        (
            {"id": int(uid), "school_id": _int(new), "school_ids": list(ids)}
            for uid, new, ids in zip(
                users["id"],
                users["new_school_id"],
                users["new_school_ids"],
                strict=True,
            )
        ),
    )
    user_table = cast(Table, User.__table__)
    connection.execute(
        update(user_table)
        .where(user_table.c.id == user_stage.c.id)
        .values(
            school_id=user_stage.c.school_id,
            school_ids=user_stage.c.school_ids,
            updated_at=now,
        )
    )
    user_stage.drop(connection)
    section_stage = _stage(
        connection,
        metadata,
        "stage_merge_sections",
        [Column("school_id", Integer)],
        (
            {"id": int(sid), "school_id": plan.into_portal_id}
            for sid in plan.sections["id"]
        ),
    )
    section_table = cast(Table, Section.__table__)
    connection.execute(
        update(section_table)
        .where(section_table.c.id == section_stage.c.id)
        .values(school_id=section_stage.c.school_id, updated_at=now)
    )
    section_stage.drop(connection)

    merged_portal = sorted(set(plan.merged.values()))
    connection.execute(
        update(School)
        .where(School.id.in_(merged_portal))
        .values(
            status=ARCHIVED,
            archived_at=now,
            merged_into_id=plan.into_portal_id,
            updated_at=now,
        )
    )
    mapping_ids = dict(
        connection.execute(
            select(SchoolMapping.provider_school_id, SchoolMapping.id)
            .where(SchoolMapping.district_id == district_id)
            .where(SchoolMapping.school_id.in_(merged_portal))
        ).all()
    )
    connection.execute(
        update(SchoolMapping)
        .where(SchoolMapping.district_id == district_id)
        .where(SchoolMapping.school_id.in_(merged_portal))
        .values(school_id=plan.into_portal_id, is_alias=True)
    )
    _log_merge(connection, plan, run_id, mapping_ids, now)
    audit(
        connection,
        district_id,
        "campuses_merged",
        changed_by=changed_by,
        reason=reason,
        before={"mappings": plan.mappings},
        after={
            "into_school_id": plan.into_school_id,
            "into_portal_school_id": plan.into_portal_id,
            "merged": plan.merged,
            "moved": plan.counts(),
        },
        now=now,
        run_id=run_id,
    )


def _log_merge(
    connection: Connection,
    plan: MergePlan,
    run_id: str,
    mapping_ids: dict[str, int],
    now: datetime,
) -> None:
    def entry(entity: str, entity_id: int, action: str, before: Any, after: Any):
        return {
            "run_id": run_id,
            "district_id": plan.district_id,
            "entity": entity,
            "entity_id": int(entity_id),
            "action": action,
            "before": before,
            "after": after,
            "changed_at": now,
        }

    users = plan.users
    rows: Iterable[dict[str, Any]] = (
        entry(
            "users",
            uid,
            UPDATE,
            {"school_id": _int(old), "school_ids": [int(s) for s in old_ids]},
            {"school_id": _int(new), "school_ids": [int(s) for s in new_ids]},
        )
        for uid, old, old_ids, new, new_ids in zip(
            users["id"],
            users["school_id"],
            users["school_ids"],
            users["new_school_id"],
            users["new_school_ids"],
            strict=True,
        )
    )
    _insert_batches(connection, rows)
    sections = plan.sections
    _insert_batches(
        connection,
        (
            entry(
                "sections",
                sid,
                UPDATE,
                {"school_id": _int(old)},
                {"school_id": plan.into_portal_id},
            )
            for sid, old in zip(sections["id"], sections["school_id"], strict=True)
        ),
    )
    _insert_batches(
        connection,
        [
            entry(
                "schools", school, "archive", {"status": ACTIVE}, {"status": ARCHIVED}
            )
            for school in sorted(set(plan.merged.values()))
        ],
    )
    _insert_batches(
        connection,
        [
            entry(
                MAPPING_ENTITY,
                mapping_ids[row["provider_school_id"]],
                UPDATE,
                {"school_id": row["school_id"], "is_alias": row["is_alias"]},
                {"school_id": plan.into_portal_id, "is_alias": True},
            )
            for row in plan.mappings
        ],
    )


def undo_mappings(
    connection: Connection, run_id: str, undo_run_id: str, now: datetime
) -> int:
    """Point the mapping rows that run ``run_id`` changed back; log it; return how many.

    A school that a mapping row points to again as its own (not an alias) is no
    longer merged. A school that the row leaves, as it becomes an alias again, is
    merged into the row's school again.
    """
    entries = connection.execute(
        select(
            _LOG.c.id, _LOG.c.entity_id, _LOG.c.district_id, _LOG.c.before, _LOG.c.after
        )
        .where(_LOG.c.run_id == run_id)
        .where(_LOG.c.entity == MAPPING_ENTITY)
        .order_by(_LOG.c.id)
    ).all()
    restored: list[dict[str, Any]] = []
    for entry in entries:
        before = _json(entry.before)
        after = _json(entry.after)
        restored.append(
            {"mapping_id": entry.entity_id, "before": after, "after": before}
        )
        connection.execute(
            update(SchoolMapping)
            .where(SchoolMapping.id == entry.entity_id)
            .values(school_id=before["school_id"], is_alias=before["is_alias"])
        )
        if not before["is_alias"]:
            connection.execute(
                update(School)
                .where(School.id == before["school_id"])
                .values(merged_into_id=None, updated_at=now)
            )
        elif not after["is_alias"]:
            connection.execute(
                update(School)
                .where(School.id == after["school_id"])
                .values(merged_into_id=before["school_id"], updated_at=now)
            )
        connection.execute(
            insert(_LOG).values(
                run_id=undo_run_id,
                district_id=entry.district_id,
                entity=MAPPING_ENTITY,
                entity_id=entry.entity_id,
                action=UPDATE,
                before=after,
                after=before,
                changed_at=now,
            )
        )
    if restored:
        # The store no longer matches the last applied pull under the old mapping,
        # and a user that a later run changed keeps the merged school until the
        # next sync plans again.
        connection.execute(
            update(Integration)
            .where(Integration.district_id == entries[0].district_id)
            .values(last_roster_fingerprint=None)
        )
        undo = connection.execute(
            select(
                SyncRun.district_id, SyncRun.decided_by, SyncRun.decision_reason
            ).where(SyncRun.id == undo_run_id)
        ).one()
        audit(
            connection,
            undo.district_id,
            "school_mapping_undone",
            changed_by=undo.decided_by or "undo-run",
            reason=undo.decision_reason,
            before={"mappings": [row["before"] for row in restored]},
            after={
                "mappings": [row["after"] for row in restored],
                "undone_run": run_id,
            },
            now=now,
            run_id=undo_run_id,
        )
    return len(entries)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _stage(
    connection: Connection,
    metadata: MetaData,
    name: str,
    columns: list[Column],
    rows: Iterable[dict[str, Any]],
) -> Table:
    stage = Table(
        name, metadata, Column("id", Integer, primary_key=True), *columns,
        prefixes=["TEMPORARY"],
    )  # fmt: skip
    stage.create(connection)
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            connection.execute(insert(stage), batch)
            batch = []
    if batch:
        connection.execute(insert(stage), batch)
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {name}")
    return stage


def _insert_batches(connection: Connection, rows: Iterable[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            connection.execute(insert(_LOG), batch)
            batch = []
    if batch:
        connection.execute(insert(_LOG), batch)


def _int(value: Any) -> int | None:
    if value is None or (not isinstance(value, int) and pd.isna(value)):
        return None
    return int(value)


def _id_list(value: Any) -> list[int]:
    if isinstance(value, str):
        value = json.loads(value)
    return [int(item) for item in value or ()]
