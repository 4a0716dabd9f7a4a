"""The store's lock on a district's sync, which outlives a crashed run.

A running daily sync holds one row of ``district_locks`` and renews its expiry
while it works. A run whose process dies leaves the row behind; once the row has
expired, the next sync of the district takes it over and the dispatcher closes
the dead run. The lock is checked again inside the apply transaction, so a run
that lost its lock writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, update
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


def _now() -> datetime:
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
    now = _now()
    try:
        with engine.begin() as connection:
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
    except IntegrityError:
        holder = read_sync_lock(engine, district_id)
        if holder is None:
            # The holder released it in between; one more try settles it.
            return acquire_sync_lock(engine, district_id, run_id, lease_seconds)
        return holder
    return None


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
    """Move the lock's expiry on; return False when ``run_id`` no longer holds it."""
    with engine.begin() as connection:
        return _renew(connection, district_id, run_id, lease_seconds)


def check_sync_lock(
    connection: Connection, district_id: str, run_id: str, lease_seconds: float
) -> None:
    """Renew the lock inside a write transaction, or raise if the run lost it.

    The renewal is the transaction's own write, so a second run cannot take the
    lock over before the transaction commits.
    """
    if not _renew(connection, district_id, run_id, lease_seconds):
        raise StoreError(
            f"Run {run_id} no longer holds the sync lock of district {district_id}: "
            "it was not renewed in time and another sync took it over. "
            "Nothing was written; the next sync starts again.",
            transient=False,
        )


def _renew(
    connection: Connection, district_id: str, run_id: str, lease_seconds: float
) -> bool:
    # A lock past its expiry that nobody took over is still this run's.
    now = _now()
    renewed = connection.execute(
        update(DistrictLock)
        .where(
            DistrictLock.district_id == district_id,
            DistrictLock.run_id == run_id,
        )
        .values(expires_at=now + timedelta(seconds=lease_seconds))
    )
    return renewed.rowcount == 1


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
    now = _now()
    with engine.connect() as connection:
        rows = connection.execute(
            select(DistrictLock).where(DistrictLock.expires_at >= now)
        ).all()
    return {
        row.district_id: LockHolder(
            row.district_id, row.run_id, _aware(row.acquired_at), _aware(row.expires_at)
        )
        for row in rows
    }
