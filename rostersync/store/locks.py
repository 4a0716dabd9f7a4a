"""The store's lock on a district's sync, which outlives a crashed run.

A running daily sync holds one row of ``district_locks`` and renews its expiry
while it works. A run whose process dies leaves the row behind; once the row has
expired, the next sync of the district takes it over and the dispatcher closes
the dead run. The lock is checked again inside each write transaction of the
sync, so a run that lost its lock writes nothing. Leases are measured by the
database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from rostersync.errors import StoreError
from rostersync.store.models import DistrictLock


@dataclass(frozen=True)
class LockHolder:
    """The run that holds a district's lock, and until when."""

    district_id: str
    run_id: str
    acquired_at: datetime
    expires_at: datetime


def database_now(connection: Connection) -> datetime:
    """Return the database server's current time in UTC.

    Every lease is measured by the database's clock, so that workers and the
    dispatcher on machines whose clocks disagree still agree on which lock has
    expired. PostgreSQL's clock_timestamp() moves within a transaction, unlike
    now().
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        moment = connection.execute(text("select clock_timestamp()")).scalar_one()
        return moment.astimezone(UTC)
    if dialect == "sqlite":
        shown = connection.execute(
            text("select strftime('%Y-%m-%d %H:%M:%f', 'now')")
        ).scalar_one()
        return datetime.fromisoformat(shown).replace(tzinfo=UTC)
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; the store writes only UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def acquire_sync_lock(
    engine: Engine, district_id: str, run_id: str, lease_seconds: float
) -> LockHolder | None:
    """Take the district's lock for ``run_id``; return the live holder if busy.

    An expired lock belongs to a run that stopped without releasing it, and is
    taken over.
    """
    for _ in range(2):
        try:
            with engine.begin() as connection:
                now = database_now(connection)
                connection.execute(
                    delete(DistrictLock).where(
                        DistrictLock.district_id == district_id,
                        DistrictLock.expires_at < now,
                    )
                )
                connection.execute(
                    insert(DistrictLock).values(
                        district_id=district_id,
                        run_id=run_id,
                        acquired_at=now,
                        expires_at=now + timedelta(seconds=lease_seconds),
                    )
                )
            return None
        except IntegrityError:
            holder = read_sync_lock(engine, district_id)
            if holder is not None:
                return holder
            # The holder released it in between; one more try settles it.
    raise StoreError(
        f"The sync lock of district {district_id} could not be taken: the "
        "district is not registered in this store. Register it with `rostersync "
        "district add`, or check ROSTERSYNC_DATABASE_URL.",
        transient=False,
    )


def read_sync_lock(engine: Engine, district_id: str) -> LockHolder | None:
    """Return the district's lock row, live or expired, or None."""
    with engine.connect() as connection:
        row = connection.execute(
            select(DistrictLock).where(DistrictLock.district_id == district_id)
        ).first()
    if row is None:
        return None
    return LockHolder(
        row.district_id, row.run_id, _aware(row.acquired_at), _aware(row.expires_at)
    )


def renew_sync_lock(
    engine: Engine, district_id: str, run_id: str, lease_seconds: float
) -> bool:
    """Move the lock's expiry on; return False when ``run_id`` no longer holds it.

    An expired lock is not renewed: the dispatcher may already have closed its
    run as stopped.
    """
    with engine.begin() as connection:
        now = database_now(connection)
        renewed = connection.execute(
            update(DistrictLock)
            .where(
                DistrictLock.district_id == district_id,
                DistrictLock.run_id == run_id,
                DistrictLock.expires_at >= now,
            )
            .values(expires_at=now + timedelta(seconds=lease_seconds))
        )
        return renewed.rowcount == 1


def check_sync_lock(connection: Connection, district_id: str, run_id: str) -> None:
    """Raise unless ``run_id`` holds the district's unexpired lock.

    Called inside each write transaction of a sync. It only reads the lock row,
    so the renewal, on its own connection, goes on while a long apply runs.
    NOTE: a lock that expires between this check and the commit is not noticed;
    that takes a renewal stalled for two thirds of the lease.
    """
    now = database_now(connection)
    holder = connection.execute(
        select(DistrictLock.run_id).where(
            DistrictLock.district_id == district_id,
            DistrictLock.expires_at >= now,
        )
    ).scalar_one_or_none()
    if holder != run_id:
        raise StoreError(
            f"Run {run_id} no longer holds the sync lock of district {district_id}: "
            "the lock expired before it was renewed (the store was unreachable or "
            "the process stalled), and the dispatcher may have closed the run as "
            "stopped. Nothing was written; the next sync starts again.",
            transient=False,
        )


def release_sync_lock(engine: Engine, district_id: str, run_id: str) -> None:
    """Delete the district's lock if ``run_id`` still holds it."""
    with engine.begin() as connection:
        connection.execute(
            delete(DistrictLock).where(
                DistrictLock.district_id == district_id,
                DistrictLock.run_id == run_id,
            )
        )


def live_sync_locks(engine: Engine) -> dict[str, LockHolder]:
    """Return every district's unexpired lock, by district id."""
    with engine.connect() as connection:
        now = database_now(connection)
        rows = connection.execute(
            select(DistrictLock).where(DistrictLock.expires_at >= now)
        ).all()
    return {
        row.district_id: LockHolder(
            row.district_id, row.run_id, _aware(row.acquired_at), _aware(row.expires_at)
        )
        for row in rows
    }
