"""Undo an applied run: revert every change its change log records, set-based.

The run's change log entries go, one entity at a time and in batches, into a
temporary staging table that holds, per row, the values to set back. Then one
UPDATE marks the rows that a later run changed as skipped, one UPDATE ... FROM
reverts the others, and one INSERT ... SELECT logs the undo's own changes under
the undo run's id, so that the undo is audited and can be undone in turn.

Per action of the undone run:

- archive: the row is active again;
- restore: the row is archived again, and the fields the restore changed get
  their before values. ``archived_at`` is the one the restore entry logged, else
  the time of the row's latest earlier archive entry, else ``now``;
- update: the changed fields get their before values;
- create: the row is archived, never deleted, and a created school keeps its
  school mapping rows.

Schools, users and sections log the before values of the fields that an update or
a restore changed; enrollments log only the action.

NOTE: a change that bypasses the change log (a portal edit, the New School Year
reset) does not count as a later change, so the undo overwrites it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    case,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)

from rostersync.errors import ConfigurationError, StaleStoreError
from rostersync.planning import (
    ARCHIVE,
    CREATE,
    RESTORE,
    SCHOOL_VALUES,
    SECTION_VALUES,
    UPDATE,
    USER_VALUES,
)
from rostersync.store.apply import CHANGE_LOG_COLUMNS
from rostersync.store.models import (
    ACTIVE,
    ARCHIVED,
    ChangeLogEntry,
    District,
    Enrollment,
    School,
    Section,
    SyncRun,
    User,
)
from rostersync.store.runs import MAX_MESSAGE, RUNNING, storable_text

BATCH_ROWS = 10_000
COMPLETED = "completed"
UNDO_FLOW_NAME = "undo-run"
# The length of sync_runs.decided_by.
MAX_DECIDER = 128

# The keys of the counts an undo returns per entity: updates undone, archives
# undone, creates and restores undone, and rows left alone because a later run
# changed them or they no longer exist.
COUNT_KEYS = ("reverted", "restored", "archived", "skipped")
_COUNT_KEY = {
    UPDATE: "reverted",
    ARCHIVE: "restored",
    CREATE: "archived",
    RESTORE: "archived",
}

# The action that the undo of each action logs.
_UNDO_ACTION = {ARCHIVE: RESTORE, RESTORE: ARCHIVE, UPDATE: UPDATE, CREATE: ARCHIVE}

logger = logging.getLogger(__name__)


class UndoRejectedError(ConfigurationError):
    """A request to undo a run that is unknown, applied nothing or was undone."""


@dataclass(frozen=True)
class _Entity:
    name: str
    table: Table
    # The value columns whose before values the change log records.
    fields: tuple[str, ...]


_ENTITIES = (
    _Entity("schools", cast(Table, School.__table__), SCHOOL_VALUES),
    _Entity("users", cast(Table, User.__table__), USER_VALUES),
    _Entity("sections", cast(Table, Section.__table__), SECTION_VALUES),
    _Entity("enrollments", cast(Table, Enrollment.__table__), ()),
)
_LOG = cast(Table, ChangeLogEntry.__table__)


def undo_changes(
    connection: Connection, run_id: str, undo_run_id: str, now: datetime
) -> dict[str, dict[str, int]]:
    """Revert the changes run ``run_id`` logged, and log each under ``undo_run_id``.

    The caller owns the transaction, and the ``sync_runs`` row of ``undo_run_id``
    must exist in it. A row that a run other than these two changed after
    ``run_id`` is left as it is and counted as skipped. The district's store
    version goes up by one, so a plan made before the undo is stale. The last
    pull's fingerprint stays. While the provider sends the same roster, the sync
    reports it unchanged and plans nothing, so the next sync keeps the undo. The
    first pull that differs is planned against the store as it is then.

    NOTE: an enrollment is reverted even when its user or section was skipped. It
    can then be active while its user stays archived, until the next sync archives
    it.

    Returns the counts per entity (see ``COUNT_KEYS``). Raises UndoRejectedError
    when the run cannot be undone (see ``check_undoable``).
    """
    district_id = check_undoable(connection, run_id)
    _claim_version(connection, district_id)
    # Checked again under the district's lock, so two undos of one run never both
    # apply.
    check_undoable(connection, run_id)

    counts: dict[str, dict[str, int]] = {}
    for entity in _ENTITIES:
        context = _Context(connection, entity, district_id, run_id, undo_run_id, now)
        counts[entity.name] = _undo_entity(context)
        logger.info(
            "district %s: undo of run %s: %s: %d reverted, %d restored, %d archived, "
            "%d skipped",
            district_id,
            run_id,
            entity.name,
            *(counts[entity.name][key] for key in COUNT_KEYS),
        )
    # A campus merge also logged its school mapping rows.
    from rostersync.store.mapping import undo_mappings

    reverted = undo_mappings(connection, run_id, undo_run_id, now)
    if reverted:
        counts["school_mappings"] = {
            **dict.fromkeys(COUNT_KEYS, 0),
            "reverted": reverted,
        }
    return counts


def check_undoable(connection: Connection, run_id: str) -> str:
    """Return the district of run ``run_id`` if the run can be undone.

    Raises UndoRejectedError when the run does not exist, is a dry run, is not
    completed, was undone by a completed undo run, or logged no changes or changes
    of an action that an undo cannot revert.
    """
    run = connection.execute(
        select(SyncRun.district_id, SyncRun.status, SyncRun.dry_run).where(
            SyncRun.id == run_id
        )
    ).one_or_none()
    if run is None:
        raise UndoRejectedError(
            f"Run {run_id!r} was not found, so there is nothing to undo. Use the run "
            "id that the sync reported (the id of its sync_runs row)."
        )
    if run.dry_run:
        raise UndoRejectedError(
            f"Run {run_id} was a dry run and wrote no changes, so there is nothing "
            "to undo."
        )
    if run.status != COMPLETED:
        raise UndoRejectedError(
            f"Run {run_id} is {run.status}, not completed, so it applied no changes "
            "and there is nothing to undo. Only a completed run can be undone."
        )
    undone_by = connection.execute(
        select(SyncRun.id)
        .where(SyncRun.undoes_run_id == run_id)
        .where(SyncRun.status == COMPLETED)
        .limit(1)
    ).scalar_one_or_none()
    if undone_by is not None:
        raise UndoRejectedError(
            f"Run {run_id} was already undone by run {undone_by}, so nothing was "
            f"changed. To bring back its changes, undo run {undone_by} instead."
        )
    _check_logged_actions(connection, run_id)
    return run.district_id


def start_undo_run(
    connection: Connection,
    *,
    undo_run_id: str,
    run_id: str,
    district_id: str,
    by: str,
    reason: str,
    flow_run_id: str | None,
    now: datetime,
) -> None:
    """Insert the running ``sync_runs`` row of an undo, with who decided it and why.

    ``by`` and ``reason`` are cut to the sizes the store keeps.
    """
    connection.execute(
        insert(SyncRun).values(
            id=undo_run_id,
            district_id=district_id,
            flow_name=UNDO_FLOW_NAME,
            flow_run_id=flow_run_id,
            status=RUNNING,
            dry_run=False,
            counts={},
            findings=[],
            timings={},
            decided_by=storable_text(by, MAX_DECIDER),
            decision_reason=storable_text(reason, MAX_MESSAGE),
            decided_at=now,
            undoes_run_id=run_id,
            started_at=now,
        )
    )


def read_store_version(connection: Connection, district_id: str) -> int:
    """Return the district's current store version."""
    return connection.execute(
        select(District.store_version).where(District.id == district_id)
    ).scalar_one()


# Checks


def _check_logged_actions(connection: Connection, run_id: str) -> None:
    rows = connection.execute(
        select(ChangeLogEntry.action, func.count())
        .where(ChangeLogEntry.run_id == run_id)
        .group_by(ChangeLogEntry.action)
    ).all()
    if not rows:
        raise UndoRejectedError(
            f"Run {run_id} logged no changes, so there is nothing to undo."
        )
    unknown = sorted(action for action, _ in rows if action not in _UNDO_ACTION)
    if unknown:
        raise UndoRejectedError(
            f"Run {run_id} logged changes of the action(s) {', '.join(unknown)}, "
            "which an undo cannot revert (it reverts create, update, archive and "
            "restore), so nothing was changed."
        )


def _claim_version(connection: Connection, district_id: str) -> int:
    """Lock the district row, increment its store version and return the new one."""
    version = connection.execute(
        select(District.store_version)
        .where(District.id == district_id)
        .with_for_update()
    ).scalar_one()
    claimed = connection.execute(
        update(District)
        .where(District.id == district_id)
        .where(District.store_version == version)
        .values(store_version=version + 1)
    )
    if claimed.rowcount != 1:
        raise StaleStoreError(
            f"District {district_id} changed while the undo started (store version "
            f"{version} is no longer current). Run the undo again."
        )
    return version + 1


# One entity


class _Context:
    def __init__(
        self,
        connection: Connection,
        entity: _Entity,
        district_id: str,
        run_id: str,
        undo_run_id: str,
        now: datetime,
    ) -> None:
        self.connection = connection
        self.entity = entity
        self.district_id = district_id
        self.run_id = run_id
        self.undo_run_id = undo_run_id
        self.now = now
        self.metadata = MetaData()
        # The columns an undo may set back: the logged fields and the status.
        self.targets = (*entity.fields, "status", "archived_at")
        # A staging row that sets nothing, copied for each log entry.
        self.unset: dict[str, Any] = {}
        for name in self.targets:
            self.unset.update({name: None, f"set_{name}": False})
        self.integer_fields = {
            name
            for name in entity.fields
            if isinstance(entity.table.c[name].type, Integer)
        }


def _undo_entity(context: _Context) -> dict[str, int]:
    stage = _create_stage(context)
    for entries in _read_entries(context):
        rows = [_stage_row(context, entry) for entry in entries]
        context.connection.execute(insert(stage), rows)
    _analyze(context.connection, stage)
    _mark_skipped(context, stage)
    _find_archived_at(context, stage)
    _revert(context, stage)
    _log_undo(context, stage)
    counts = _count(context, stage)
    # A failed undo rolls back, and the staging table with it.
    stage.drop(context.connection)
    return counts


def _create_stage(context: _Context) -> Table:
    """Create the staging table: one row per log entry, with the values to set.

    Each target column has a ``set_`` flag, because NULL is also a value to set.
    """
    table = context.entity.table
    targets = []
    for name in context.targets:
        targets.append(Column(name, table.c[name].type))
        targets.append(Column(f"set_{name}", Boolean, nullable=False))
    stage = Table(
        f"stage_undo_{context.entity.name}",
        context.metadata,
        Column("log_id", BigInteger().with_variant(Integer, "sqlite")),
        Column("entity_id", Integer),
        Column("action", String(16)),
        Column("undo_action", String(16)),
        Column("skipped", Boolean, nullable=False),
        Column("log_before", JSON(none_as_null=True)),
        Column("log_after", JSON(none_as_null=True)),
        *targets,
        prefixes=["TEMPORARY"],
    )
    stage.create(context.connection)
    return stage


def _read_entries(context: _Context) -> Iterator[Sequence[Row]]:
    """Yield the run's log entries of the entity, BATCH_ROWS at a time, by id."""
    last_id = 0
    while True:
        entries = context.connection.execute(
            select(
                _LOG.c.id, _LOG.c.entity_id, _LOG.c.action, _LOG.c.before, _LOG.c.after
            )
            .where(_LOG.c.run_id == context.run_id)
            .where(_LOG.c.entity == context.entity.name)
            .where(_LOG.c.id > last_id)
            .order_by(_LOG.c.id)
            .limit(BATCH_ROWS)
        ).all()
        if not entries:
            return
        yield entries
        last_id = entries[-1].id


def _stage_row(context: _Context, entry: Row) -> dict[str, Any]:
    """Turn one log entry into the values to set back and the undo's own log values.

    The undo logs the entry's after values as its before values and the other way
    round, so undoing the undo sets back the after values.
    """
    action = entry.action
    undo_action = _UNDO_ACTION[action]
    targets: dict[str, Any] = {}
    log_before: dict[str, Any] = {}
    log_after: dict[str, Any] = {}
    if action != CREATE:
        before = _logged_fields(context, entry, entry.before)
        after = _logged_fields(context, entry, entry.after)
        targets.update(before)
        log_after.update(before)
        log_before.update({name: after.get(name) for name in before})
    if undo_action == RESTORE:
        targets.update(status=ACTIVE, archived_at=None)
        log_before["status"], log_after["status"] = ARCHIVED, ACTIVE
    elif undo_action == ARCHIVE:
        # Without a logged archived_at, _find_archived_at sets an undone restore's
        # from the change log.
        archived_at: datetime | None = context.now
        if action != CREATE:
            archived_at = _logged_archived_at(entry.before)
        targets.update(status=ARCHIVED, archived_at=archived_at)
        log_before["status"], log_after["status"] = ACTIVE, ARCHIVED

    row: dict[str, Any] = {
        **context.unset,
        "log_id": entry.id,
        "entity_id": entry.entity_id,
        "action": action,
        "undo_action": undo_action,
        "skipped": False,
        "log_before": log_before or None,
        "log_after": log_after or None,
    }
    for name, value in targets.items():
        row[name] = value
        row[f"set_{name}"] = True
    return row


def _logged_fields(
    context: _Context, entry: Row, values: dict[str, Any] | None
) -> dict[str, Any]:
    """Return the value fields of a logged before or after, typed for the table.

    The status and archived_at are left out, because the action decides them. Raises
    UndoRejectedError on a field that the entity does not log, because the undo
    would be inexact without it.
    """
    fields: dict[str, Any] = {}
    for name, value in (values or {}).items():
        if name in ("status", "archived_at"):
            continue
        if name not in context.entity.fields:
            raise UndoRejectedError(
                f"Change log entry {entry.id} of run {context.run_id} names the "
                f"{context.entity.name} field {name!r}, which an undo cannot set "
                "back, so nothing was changed."
            )
        # A school id that the plan read from the store is logged as text ("12").
        if name in context.integer_fields and isinstance(value, str):
            value = int(value)
        fields[name] = value
    return fields


def _logged_archived_at(before: dict[str, Any] | None) -> datetime | None:
    """Return the archived_at that a restore entry logged, as ISO 8601 text, if any.

    apply.py logs none today, so _find_archived_at derives it from the change log.
    """
    value = (before or {}).get("archived_at")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _mark_skipped(context: _Context, stage: Table) -> None:
    """Skip rows that a later run changed, and rows that no longer exist."""
    later = _LOG.alias("later")
    changed_later = exists().where(
        later.c.entity == context.entity.name,
        later.c.entity_id == stage.c.entity_id,
        later.c.id > stage.c.log_id,
        later.c.run_id.not_in([context.run_id, context.undo_run_id]),
    )
    table = context.entity.table
    present = exists().where(
        table.c.id == stage.c.entity_id,
        table.c.district_id == context.district_id,
    )
    context.connection.execute(
        update(stage).where(or_(changed_later, ~present)).values(skipped=True)
    )


def _find_archived_at(context: _Context, stage: Table) -> None:
    """Set an undone restore's missing archived_at to its row's latest earlier
    archive entry's time, or to now when there is none.

    NOTE: the undo of an undo's restore can pick the undo's archive entry, so the
    third undo in a chain gets that entry's time instead of the original one.
    """
    earlier = _LOG.alias("earlier")
    archived_at = (
        select(earlier.c.changed_at)
        .where(
            earlier.c.entity == context.entity.name,
            earlier.c.entity_id == stage.c.entity_id,
            earlier.c.action == ARCHIVE,
            earlier.c.id < stage.c.log_id,
        )
        .order_by(earlier.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    now = literal(context.now, DateTime(timezone=True))
    context.connection.execute(
        update(stage)
        .where(stage.c.action == RESTORE)
        .where(stage.c.archived_at.is_(None))
        .where(not_(stage.c.skipped))
        .values(archived_at=func.coalesce(archived_at, now))
    )


def _revert(context: _Context, stage: Table) -> None:
    table = context.entity.table
    values = {
        name: case((stage.c[f"set_{name}"], stage.c[name]), else_=table.c[name])
        for name in context.targets
    }
    context.connection.execute(
        update(table)
        .where(table.c.id == stage.c.entity_id)
        .where(not_(stage.c.skipped))
        .values(**values, updated_at=context.now)
    )


def _log_undo(context: _Context, stage: Table) -> None:
    logged = (
        select(
            literal(context.undo_run_id),
            literal(context.district_id),
            literal(context.entity.name),
            stage.c.entity_id,
            stage.c.undo_action,
            stage.c.log_before,
            stage.c.log_after,
            literal(context.now, DateTime(timezone=True)),
        )
        .where(not_(stage.c.skipped))
        .order_by(stage.c.log_id)
    )
    context.connection.execute(
        insert(_LOG).from_select(
            CHANGE_LOG_COLUMNS,
            logged,
        )
    )


def _count(context: _Context, stage: Table) -> dict[str, int]:
    counts = dict.fromkeys(COUNT_KEYS, 0)
    rows = context.connection.execute(
        select(stage.c.action, stage.c.skipped, func.count()).group_by(
            stage.c.action, stage.c.skipped
        )
    ).all()
    for action, skipped, number in rows:
        counts["skipped" if skipped else _COUNT_KEY[action]] += number
    return counts


def _analyze(connection: Connection, stage: Table) -> None:
    """Give PostgreSQL the row count of a filled staging table for its joins."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {stage.name}")
