"""Which districts the hourly dispatcher starts a daily sync for, and why not others.

A district is due when its integration is active, its contract is current on its
local date, its local hour has reached its sync hour, and no daily sync of it has
finished on its local date. A daily-sync row that is still ``running`` while its
district's lock is gone belongs to a run whose process stopped (a worker killed,
a machine lost); the dispatcher closes it as ``stopped`` and syncs the district
again.
Nothing of such a run was applied, because a sync applies in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, delete, func, select, update

from rostersync.store.districts import contract_state_of
from rostersync.store.locks import database_now
from rostersync.store.models import District, DistrictLock, Integration, SyncRun
from rostersync.store.runs import RUNNING

DAILY_SYNC = "daily-sync"
# The status of a run closed because its process stopped; it is no finished sync.
STOPPED = "stopped"

# Decisions, as the dispatcher's artifact and summary name them.
DISPATCH = "dispatch"
NOT_DUE = "not_due"
SYNCED_TODAY = "synced_today"
RUNNING_NOW = "running"
QUEUED = "queued"
SUSPENDED = "suspended"
NO_CONTRACT = "no_contract"
BAD_TIMEZONE = "bad_timezone"

STOPPED_REASON = (
    "The run stopped renewing its district lock before it finished: its process "
    "ended (a worker or machine was lost) or stalled, and the lock expired. Every "
    "write of a sync checks the lock and a sync applies in one transaction, so "
    "nothing of this run was applied; the dispatcher starts the district's sync "
    "again."
)


@dataclass(frozen=True)
class DistrictClock:
    """The fields the dispatcher reads of one district with an integration."""

    district_id: str
    provider: str
    timezone: str
    sync_hour: int
    status: str
    contract_start: date | None
    contract_end: date | None
    last_finished_at: datetime | None


@dataclass(frozen=True)
class StoppedRun:
    """A daily-sync run left running by a process that stopped."""

    run_id: str
    district_id: str
    flow_run_id: str | None


@dataclass(frozen=True)
class Decision:
    """The dispatcher's decision for one district at one time."""

    district_id: str
    provider: str
    local_time: str
    decision: str
    reason: str


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_district_clocks(engine: Engine) -> list[DistrictClock]:
    """Read every district with an integration and its last finished daily sync."""
    last = (
        select(
            SyncRun.district_id,
            func.max(SyncRun.started_at).label("last_finished_at"),
        )
        .where(
            SyncRun.flow_name == DAILY_SYNC,
            SyncRun.dry_run.is_(False),
            SyncRun.status.not_in((RUNNING, STOPPED)),
        )
        .group_by(SyncRun.district_id)
        .subquery()
    )
    query = (
        select(
            District.id,
            Integration.provider,
            District.timezone,
            District.sync_hour,
            Integration.status,
            District.contract_start,
            District.contract_end,
            last.c.last_finished_at,
        )
        .join(Integration, Integration.district_id == District.id)
        .outerjoin(last, last.c.district_id == District.id)
        .order_by(District.id)
    )
    with engine.connect() as connection:
        return [
            DistrictClock(*row[:7], _aware(row[7])) for row in connection.execute(query)
        ]


def close_stopped_runs(engine: Engine) -> list[StoppedRun]:
    """Close, as stopped, every running daily sync whose district lock is gone.

    One statement decides and closes, so a sync that takes its lock meanwhile is
    left alone. The expired lock rows of the closed runs go in the same
    transaction, so those runs can neither renew them nor write.
    """
    with engine.begin() as connection:
        now = database_now(connection)
        holds_lock = (
            select(DistrictLock.run_id)
            .where(
                DistrictLock.district_id == SyncRun.district_id,
                DistrictLock.run_id == SyncRun.id,
                DistrictLock.expires_at >= now,
            )
            .exists()
        )
        closed = connection.execute(
            update(SyncRun)
            .where(
                SyncRun.flow_name == DAILY_SYNC,
                SyncRun.status == RUNNING,
                ~holds_lock,
            )
            .values(status=STOPPED, reason=STOPPED_REASON, finished_at=now)
            .returning(SyncRun.id, SyncRun.district_id, SyncRun.flow_run_id)
        ).all()
        run_ids = [run_id for run_id, _, _ in closed]
        for first in range(0, len(run_ids), 500):
            connection.execute(
                delete(DistrictLock).where(
                    DistrictLock.run_id.in_(run_ids[first : first + 500]),
                    DistrictLock.expires_at < now,
                )
            )
    return [StoppedRun(*row) for row in closed]


def decide(
    clock: DistrictClock,
    now: datetime,
    *,
    locked: bool,
    queued: bool,
) -> Decision:
    """Decide whether to start the district's daily sync at ``now``.

    ``locked`` is True when a sync of the district holds its lock, and ``queued``
    when a daily-sync flow run for it waits in Prefect or runs without the lock yet.
    """
    try:
        local = now.astimezone(ZoneInfo(clock.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return Decision(
            clock.district_id,
            clock.provider,
            "unknown",
            BAD_TIMEZONE,
            f"Time zone {clock.timezone!r} is not a known IANA zone; set one with "
            f"`rostersync district update {clock.district_id} --timezone ZONE`.",
        )
    shown = local.strftime("%Y-%m-%d %H:%M %Z")

    def decision(kind: str, reason: str) -> Decision:
        return Decision(clock.district_id, clock.provider, shown, kind, reason)

    if clock.status == SUSPENDED:
        return decision(
            SUSPENDED,
            "The integration is suspended until a data manager is named with "
            f"`rostersync district set-data-manager {clock.district_id} USER_ID`.",
        )
    contract = contract_state_of(
        clock.district_id, clock.contract_start, clock.contract_end, local.date()
    )
    if not contract.current:
        return decision(NO_CONTRACT, contract.reason or "No current contract.")
    if local.hour < clock.sync_hour:
        return decision(NOT_DUE, f"Its sync hour is {clock.sync_hour}:00 local time.")
    if locked:
        return decision(RUNNING_NOW, "A sync of the district holds its lock.")
    if queued:
        return decision(QUEUED, "A daily-sync flow run of the district is queued.")
    last = clock.last_finished_at
    if last is not None and last.astimezone(local.tzinfo).date() == local.date():
        return decision(
            SYNCED_TODAY,
            f"A daily sync finished today, local time (started {last:%H:%M} UTC).",
        )
    return decision(DISPATCH, "Its sync hour has come and it has not synced today.")
