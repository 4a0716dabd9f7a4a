"""Apply a plan to the store in one transaction, with set-based statements.

Each entity's planned rows go into a temporary staging table in batches. Then one
INSERT ... SELECT creates rows, one UPDATE ... FROM updates or restores them, one
UPDATE archives them, and one INSERT ... SELECT writes the change log. No statement
runs per row, and a failure anywhere rolls the whole run back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    update,
)

from rostersync.errors import StaleStoreError
from rostersync.planning import (
    ARCHIVE,
    CREATE,
    NEW_SCHOOL_PREFIX,
    RESTORE,
    SCHOOL_VALUES,
    SECTION_VALUES,
    UPDATE,
    USER_VALUES,
    Plan,
)
from rostersync.store.models import (
    ACTIVE,
    ARCHIVED,
    ELIGIBLE,
    ChangeLogEntry,
    District,
    Enrollment,
    School,
    SchoolMapping,
    Section,
    User,
)

BATCH_ROWS = 10_000
# The change log columns that a keyed entity's INSERT ... SELECT fills.
CHANGE_LOG_COLUMNS = [
    "run_id",
    "district_id",
    "entity",
    "entity_id",
    "action",
    "before",
    "after",
    "changed_at",
]

logger = logging.getLogger(__name__)


def apply_plan(connection: Connection, plan: Plan, run_id: str, now: datetime) -> None:
    """Apply every change of ``plan`` and log it under ``run_id``.

    The caller owns the transaction. Raises StaleStoreError when another run
    changed the district after this plan was made.
    """
    _claim_version(connection, plan)
    context = _Context(connection, plan.district_id, run_id, now)

    _apply_schools(context, plan.changes["schools"])
    _log_progress(context, "schools", plan.changes["schools"])
    mapping = _load_mapping(connection, plan.district_id)
    _apply_users(context, _resolve_user_schools(plan.changes["users"], mapping))
    _log_progress(context, "users", plan.changes["users"])
    _apply_sections(
        context, _resolve_section_schools(plan.changes["sections"], mapping)
    )
    _log_progress(context, "sections", plan.changes["sections"])
    _apply_enrollments(context, plan.changes["enrollments"])
    _log_progress(context, "enrollments", plan.changes["enrollments"])


def _log_progress(context: _Context, entity: str, changes: pd.DataFrame) -> None:
    counts = changes["action"].value_counts()
    logger.info(
        "district %s: %s written: %d created, %d updated, %d restored, %d archived",
        context.district_id,
        entity,
        counts.get(CREATE, 0),
        counts.get(UPDATE, 0),
        counts.get(RESTORE, 0),
        counts.get(ARCHIVE, 0),
    )


class _Context:
    def __init__(
        self, connection: Connection, district_id: str, run_id: str, now: datetime
    ) -> None:
        self.connection = connection
        self.district_id = district_id
        self.run_id = run_id
        self.now = now
        self.metadata = MetaData()


def _claim_version(connection: Connection, plan: Plan) -> None:
    version = connection.execute(
        select(District.store_version)
        .where(District.id == plan.district_id)
        .with_for_update()
    ).scalar_one()
    if version != plan.store_version:
        raise StaleStoreError(
            f"District {plan.district_id} changed after this plan was made (store "
            f"version {version}, plan made at version {plan.store_version}); run "
            "the sync again to plan against the current store."
        )
    connection.execute(
        update(District)
        .where(District.id == plan.district_id)
        .values(store_version=version + 1)
    )


# Schools


def _apply_schools(context: _Context, changes: pd.DataFrame) -> None:
    columns = {"name": Text(), "sis_id": String(128)}
    stage = _stage(context, "schools", changes, columns, SCHOOL_VALUES)
    school = School.__table__
    _insert_created(context, stage, school, SCHOOL_VALUES, extra={})
    _update_changed(context, stage, school, SCHOOL_VALUES)
    _archive(context, stage, school)

    created = (
        select(
            literal(context.district_id),
            school.c.provider_id,
            school.c.id,
            literal(False),
        )
        .join_from(
            stage,
            school,
            and_(
                school.c.district_id == context.district_id,
                school.c.provider_id == stage.c.provider_id,
            ),
        )
        .where(stage.c.action == CREATE)
    )
    context.connection.execute(
        insert(SchoolMapping.__table__).from_select(
            ["district_id", "provider_school_id", "school_id", "is_alias"], created
        )
    )
    _log_keyed(context, stage, school, "schools")
    _drop(context, stage)


def _load_mapping(connection: Connection, district_id: str) -> dict[str, int]:
    rows = connection.execute(
        select(SchoolMapping.provider_school_id, SchoolMapping.school_id).where(
            SchoolMapping.district_id == district_id
        )
    ).all()
    return {row.provider_school_id: row.school_id for row in rows}


def _resolve(value: Any, mapping: dict[str, int]) -> int | None:
    """Turn a planned school reference (portal id or placeholder) into a portal id."""
    if value is None or (not isinstance(value, str | int) and pd.isna(value)):
        return None
    text = str(value)
    if text.startswith(NEW_SCHOOL_PREFIX):
        return mapping.get(text.removeprefix(NEW_SCHOOL_PREFIX))
    return int(text)


def _resolve_ids(values: Any, mapping: dict[str, int]) -> list[int] | None:
    if not isinstance(values, tuple | list):
        return None
    resolved = {_resolve(value, mapping) for value in values}
    return sorted(item for item in resolved if item is not None)


def _resolve_user_schools(
    changes: pd.DataFrame, mapping: dict[str, int]
) -> pd.DataFrame:
    return changes.assign(
        school_id=changes["school_id"].map(lambda v: _resolve(v, mapping)),
        school_ids=changes["school_ids"].map(lambda v: _resolve_ids(v, mapping)),
        before_school_ids=changes["before_school_ids"].map(
            lambda v: _resolve_ids(v, mapping)
        ),
    )


def _resolve_section_schools(
    changes: pd.DataFrame, mapping: dict[str, int]
) -> pd.DataFrame:
    return changes.assign(
        school_id=changes["school_id"].map(lambda v: _resolve(v, mapping))
    )


# Users and sections


def _apply_users(context: _Context, changes: pd.DataFrame) -> None:
    columns: dict[str, Any] = {name: Text() for name in USER_VALUES}
    columns.update(school_id=Integer(), school_ids=JSON())
    stage = _stage(context, "users", changes, columns, USER_VALUES)
    table = User.__table__
    # New students start eligible; eligibility is the portal's, never the provider's.
    eligibility = case((stage.c.kind == "student", literal(ELIGIBLE)), else_=None)
    extra = {"eligibility": eligibility}
    _insert_created(context, stage, table, USER_VALUES, extra=extra)
    _update_changed(context, stage, table, USER_VALUES)
    _archive(context, stage, table)
    _log_keyed(context, stage, table, "users")
    _drop(context, stage)


def _apply_sections(context: _Context, changes: pd.DataFrame) -> None:
    columns: dict[str, Any] = {"school_id": Integer(), "name": Text(), "sis_id": Text()}
    stage = _stage(context, "sections", changes, columns, SECTION_VALUES)
    table = Section.__table__
    _insert_created(context, stage, table, SECTION_VALUES, extra={})
    _update_changed(context, stage, table, SECTION_VALUES)
    _archive(context, stage, table)
    _log_keyed(context, stage, table, "sections")
    _drop(context, stage)


# Enrollments


def _apply_enrollments(context: _Context, changes: pd.DataFrame) -> None:
    stage = Table(
        "stage_enrollments",
        context.metadata,
        Column("action", String(16)),
        Column("id", Integer),
        Column("section_id", Text),
        Column("user_id", Text),
        Column("role", Text),
        prefixes=["TEMPORARY"],
    )
    stage.create(context.connection)
    _insert_batches(
        context.connection, stage, _records(changes, ["action", "id", *_ENROLLMENT_KEY])
    )
    _analyze(context.connection, stage)

    enrollment = Enrollment.__table__
    section = Section.__table__
    user = User.__table__
    joined = stage.join(
        section,
        and_(
            section.c.district_id == context.district_id,
            section.c.provider_id == stage.c.section_id,
        ),
    ).join(
        user,
        and_(
            user.c.district_id == context.district_id,
            user.c.provider_id == stage.c.user_id,
        ),
    )
    created = (
        select(
            literal(context.district_id),
            section.c.id,
            user.c.id,
            stage.c.role,
            literal(ACTIVE),
            literal(context.now),
            literal(context.now),
        )
        .select_from(joined)
        .where(stage.c.action == CREATE)
    )
    context.connection.execute(
        insert(enrollment).from_select(
            [
                "district_id",
                "section_id",
                "user_id",
                "role",
                "status",
                "created_at",
                "updated_at",
            ],
            created,
        )
    )
    _restore_or_archive(context, stage, enrollment)

    logged = select(
        literal(context.run_id),
        literal(context.district_id),
        literal("enrollments"),
        func.coalesce(stage.c.id, enrollment.c.id),
        stage.c.action,
        literal(context.now),
    ).select_from(
        joined.outerjoin(
            enrollment,
            and_(
                enrollment.c.section_id == section.c.id,
                enrollment.c.user_id == user.c.id,
                enrollment.c.role == stage.c.role,
            ),
        )
    )
    context.connection.execute(
        insert(ChangeLogEntry.__table__).from_select(
            ["run_id", "district_id", "entity", "entity_id", "action", "changed_at"],
            logged,
        )
    )
    _drop(context, stage)


_ENROLLMENT_KEY = ["section_id", "user_id", "role"]


# Shared statements


def _stage(
    context: _Context,
    entity: str,
    changes: pd.DataFrame,
    columns: dict[str, Any],
    values: tuple[str, ...],
) -> Table:
    """Create and fill the staging table of a keyed entity."""
    stage = Table(
        f"stage_{entity}",
        context.metadata,
        Column("action", String(16)),
        Column("id", Integer),
        Column("provider_id", Text),
        *(Column(name, type_) for name, type_ in columns.items()),
        Column("before", JSON(none_as_null=True)),
        Column("after", JSON(none_as_null=True)),
        prefixes=["TEMPORARY"],
    )
    stage.create(context.connection)
    rows = (_with_log_values(record, values) for record in _records_all(changes))
    _insert_batches(context.connection, stage, rows, columns=stage.c.keys())
    _analyze(context.connection, stage)
    return stage


def _with_log_values(record: dict[str, Any], values: tuple[str, ...]) -> dict:
    """Add the change log's before and after values to one planned row."""
    action = record["action"]
    if action == CREATE:
        before = None
        after = {name: record[name] for name in values}
    elif action == ARCHIVE:
        before = {"status": ACTIVE}
        after = {"status": ARCHIVED}
    else:
        changed = record["changed"] or ()
        before = {name: record["before_" + name] for name in changed}
        after = {name: record[name] for name in changed}
        if action == RESTORE:
            before["status"] = ARCHIVED
            after["status"] = ACTIVE
    return {**record, "before": before, "after": after}


def _insert_created(
    context: _Context,
    stage: Table,
    table: Table,
    values: tuple[str, ...],
    extra: dict[str, Any],
) -> None:
    names = ["district_id", "provider_id", *values, *extra, "status", "created_at"]
    names.append("updated_at")
    selected = select(
        literal(context.district_id),
        stage.c.provider_id,
        *(stage.c[name] for name in values),
        *extra.values(),
        literal(ACTIVE),
        literal(context.now),
        literal(context.now),
    ).where(stage.c.action == CREATE)
    context.connection.execute(insert(table).from_select(names, selected))


def _update_changed(
    context: _Context, stage: Table, table: Table, values: tuple[str, ...]
) -> None:
    assignments = {name: stage.c[name] for name in values}
    context.connection.execute(
        update(table)
        .where(table.c.id == stage.c.id)
        .where(stage.c.action.in_([UPDATE, RESTORE]))
        .values(
            **assignments,
            status=ACTIVE,
            archived_at=None,
            updated_at=context.now,
        )
    )


def _restore_or_archive(context: _Context, stage: Table, table: Table) -> None:
    context.connection.execute(
        update(table)
        .where(table.c.id == stage.c.id)
        .where(stage.c.action == RESTORE)
        .values(status=ACTIVE, archived_at=None, updated_at=context.now)
    )
    _archive(context, stage, table)


def _archive(context: _Context, stage: Table, table: Table) -> None:
    archived = select(stage.c.id).where(stage.c.action == ARCHIVE)
    context.connection.execute(
        update(table)
        .where(table.c.id.in_(archived))
        .values(status=ARCHIVED, archived_at=context.now, updated_at=context.now)
    )


def _log_keyed(context: _Context, stage: Table, table: Table, entity: str) -> None:
    logged = select(
        literal(context.run_id),
        literal(context.district_id),
        literal(entity),
        func.coalesce(stage.c.id, table.c.id),
        stage.c.action,
        stage.c.before,
        stage.c.after,
        literal(context.now),
    ).select_from(
        stage.outerjoin(
            table,
            and_(
                table.c.district_id == context.district_id,
                table.c.provider_id == stage.c.provider_id,
            ),
        )
    )
    context.connection.execute(
        insert(ChangeLogEntry.__table__).from_select(
            CHANGE_LOG_COLUMNS,
            logged,
        )
    )


def _drop(context: _Context, stage: Table) -> None:
    stage.drop(context.connection)
    context.metadata.remove(stage)


def _records_all(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    yield from _records(frame, list(frame.columns))


def _records(frame: pd.DataFrame, columns: list[str]) -> Iterator[dict[str, Any]]:
    """Yield plain-Python rows (``None`` for missing) one batch at a time."""
    for start in range(0, len(frame), BATCH_ROWS):
        chunk = frame.iloc[start : start + BATCH_ROWS][columns].astype(object)
        chunk = chunk.where(chunk.notna(), None)
        yield from chunk.to_dict("records")


def _analyze(connection: Connection, stage: Table) -> None:
    """Give PostgreSQL row counts for a filled staging table.

    Without them the planner misjudges the temporary table's size and picks slow
    joins: applying a first sync of 20,000 students took 45 s instead of 5 s.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {stage.name}")


def _insert_batches(
    connection: Connection,
    table: Table,
    rows: Iterator[dict[str, Any]],
    columns: list[str] | None = None,
) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        if columns is not None:
            row = {name: row.get(name) for name in columns}
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            connection.execute(insert(table), batch)
            batch = []
    if batch:
        connection.execute(insert(table), batch)
