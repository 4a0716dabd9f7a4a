"""Delete archived users after their district's retention period, with their rows.

This is the only code that deletes users. A user is purged when archived before
``now`` minus the district's ``retention_days``. The purge runs in the caller's
transaction with one set-based statement per table, and each statement finds the
purged users through a subquery, so no list of ids goes to the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
    update,
)

from rostersync.errors import ConfigurationError
from rostersync.store.models import (
    ARCHIVED,
    Base,
    BookAssignment,
    BookRequest,
    BookshelfItem,
    ChangeLogEntry,
    District,
    Enrollment,
    MyStudent,
    ReadingActivity,
    User,
)

# The status of a book request that no educator has decided yet.
PENDING = "pending"

# The keys of the counts a purge returns, in report order. book_requests_unlinked
# counts the decided requests of kept students whose educator was purged. Those
# requests stay, with educator_id set to NULL.
COUNT_KEYS = (
    "users",
    "enrollments",
    "book_assignments",
    "bookshelf_items",
    "book_requests",
    "book_requests_unlinked",
    "reading_activity",
    "my_students",
    "change_log",
)


def purge_archived_users(
    connection: Connection, district_id: str, now: datetime, *, dry_run: bool = False
) -> dict[str, int]:
    """Delete the district's users archived before its retention period.

    With each user go their enrollments, book assignments (as student or
    educator), bookshelf items, book requests, reading activity and "My Students"
    rows (either side). The change log entries of the user and of the deleted
    enrollments go too, because they contain names and emails. A decided request
    of a student who stays keeps its row with ``educator_id`` set to NULL. An
    archived user without ``archived_at`` is kept.

    The caller owns the transaction. Unless ``dry_run`` is set, the district row
    is locked and, when users are purged, its ``store_version`` is incremented, so
    a plan made before the purge is rejected as stale instead of referring to
    deleted users. A dry run deletes nothing and returns the same counts.

    Returns the number of rows deleted per table (see ``COUNT_KEYS``). Raises
    ConfigurationError when the district is not registered or its retention
    period is negative, and ValueError when ``now`` has no time zone.
    """
    cutoff = _retention_cutoff(connection, district_id, now, lock=not dry_run)
    is_purged = _is_purged(district_id, cutoff)
    purged = select(User.id).where(is_purged).correlate(None)
    counts: dict[str, int] = {}
    for key, model, condition, values in _dependent_statements(purged):
        if dry_run:
            counts[key] = _count(connection, model, condition)
        elif values is None:
            counts[key] = connection.execute(delete(model).where(condition)).rowcount
        else:
            statement = update(model).where(condition).values(**values)
            counts[key] = connection.execute(statement).rowcount

    # The users go last, because every statement above finds rows through them.
    if dry_run:
        counts["users"] = _count(connection, User, is_purged)
    else:
        counts["users"] = connection.execute(delete(User).where(is_purged)).rowcount
    if counts["users"] and not dry_run:
        connection.execute(
            update(District)
            .where(District.id == district_id)
            .values(store_version=District.store_version + 1)
        )
    return {key: counts[key] for key in COUNT_KEYS}


def purgeable_count(connection: Connection, district_id: str, now: datetime) -> int:
    """Return how many of the district's users a purge at ``now`` would delete."""
    cutoff = _retention_cutoff(connection, district_id, now, lock=False)
    return _count(connection, User, _is_purged(district_id, cutoff))


def read_retention_days(connection: Connection, district_id: str) -> int:
    """Return the district's retention period in days.

    Raises ConfigurationError when the district is not registered.
    """
    return _read_retention_days(connection, district_id, lock=False)


def _read_retention_days(connection: Connection, district_id: str, lock: bool) -> int:
    query = select(District.retention_days).where(District.id == district_id)
    if lock:
        query = query.with_for_update()
    days = connection.execute(query).scalar_one_or_none()
    if days is None:
        raise ConfigurationError(
            f"District {district_id!r} is not registered; add it with "
            "`rostersync district add`."
        )
    return days


def _retention_cutoff(
    connection: Connection, district_id: str, now: datetime, lock: bool
) -> datetime:
    """Return the time before which archived users are purged, in UTC."""
    if now.tzinfo is None:
        raise ValueError(
            f"now has no time zone (received {now.isoformat()}). Pass an aware "
            "datetime such as datetime.now(UTC)."
        )
    days = _read_retention_days(connection, district_id, lock)
    if days < 0:
        raise ConfigurationError(
            f"District {district_id!r} has a retention period of {days} days, "
            "which is invalid because it must be 0 or more. Set it with "
            f"`rostersync district update {district_id} --retention-days N`."
        )
    # SQLite stores times without their zone, and the store writes them in UTC.
    utc_now = now.astimezone(UTC)
    try:
        return utc_now - timedelta(days=days)
    except OverflowError:
        # A period that reaches back before year 1 purges no user.
        return datetime.min.replace(tzinfo=UTC)


def _is_purged(district_id: str, cutoff: datetime) -> ColumnElement[bool]:
    # archived_at < cutoff is false for NULL, so archived users without a date stay.
    return and_(
        User.district_id == district_id,
        User.status == ARCHIVED,
        User.archived_at < cutoff,
    )


def _dependent_statements(
    purged: Select,
) -> list[tuple[str, type[Base], ColumnElement[bool], dict[str, None] | None]]:
    """Return the condition of each table that names users, in execution order.

    An entry with values is an UPDATE, the others are DELETEs. The change log goes
    before the enrollments, because its condition finds the enrollments of purged
    users.
    """
    purged_enrollments = (
        select(Enrollment.id).where(Enrollment.user_id.in_(purged)).correlate(None)
    )
    change_log = or_(
        and_(ChangeLogEntry.entity == "users", ChangeLogEntry.entity_id.in_(purged)),
        and_(
            ChangeLogEntry.entity == "enrollments",
            ChangeLogEntry.entity_id.in_(purged_enrollments),
        ),
    )
    deleted_requests = or_(
        BookRequest.student_id.in_(purged),
        and_(BookRequest.educator_id.in_(purged), BookRequest.status == PENDING),
    )
    unlinked_requests = and_(
        BookRequest.educator_id.in_(purged),
        BookRequest.status != PENDING,
        not_(BookRequest.student_id.in_(purged)),
    )
    return [
        ("change_log", ChangeLogEntry, change_log, None),
        ("enrollments", Enrollment, Enrollment.user_id.in_(purged), None),
        (
            "book_assignments",
            BookAssignment,
            or_(
                BookAssignment.student_id.in_(purged),
                BookAssignment.educator_id.in_(purged),
            ),
            None,
        ),
        (
            "bookshelf_items",
            BookshelfItem,
            BookshelfItem.educator_id.in_(purged),
            None,
        ),
        ("book_requests", BookRequest, deleted_requests, None),
        (
            "book_requests_unlinked",
            BookRequest,
            unlinked_requests,
            {"educator_id": None},
        ),
        (
            "reading_activity",
            ReadingActivity,
            ReadingActivity.student_id.in_(purged),
            None,
        ),
        (
            "my_students",
            MyStudent,
            or_(MyStudent.educator_id.in_(purged), MyStudent.student_id.in_(purged)),
            None,
        ),
    ]


def _count(
    connection: Connection, model: type[Base], condition: ColumnElement[bool]
) -> int:
    query = select(func.count()).select_from(model).where(condition)
    return connection.execute(query).scalar_one()
