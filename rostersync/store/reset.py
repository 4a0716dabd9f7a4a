"""The New School Year reset of one district, in the store.

A school year starts on August 1 and is named by the calendar year it starts in
(2025 is 2025-26). A district is due for the reset once its local date has reached
August 1 of a later school year than ``districts.school_year``. The reset ends that
year and starts the next, in one transaction with one set-based statement per
table, and records the step in ``reset_ledger``. A district more than one year
behind is reset one year per run.

Nothing is deleted: the ending year's assignments change shelf, and lists, book
requests and "My Students" rows get ``cleared_at``, so the portal stops showing
them and they stay as history. Reading activity is keyed by school year, so the
new year's figures start from zero without a change to the old year's rows.
Enrollments belong to the roster, which the daily sync keeps current, and the
reset leaves them alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Connection,
    LargeBinary,
    and_,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.store.models import (
    ACTIVE,
    CURRENT_SHELF,
    EARLIER_YEARS,
    LAST_SCHOOL_YEAR,
    NEEDS_UPDATE,
    BookAssignment,
    BookRequest,
    BookshelfItem,
    District,
    Integration,
    MyStudent,
    ReadingActivity,
    ResetLedger,
    School,
    User,
)

# Steps recorded in reset_ledger for a district and its ending school year.
EXPORTED = "exported"
RESET = "reset"

# Books assigned this many days before a reset are reported before it.
RECENT_ASSIGNMENT_DAYS = 14

# The keys of a reset's counts, in report order.
COUNT_KEYS = (
    "assignments_to_last_school_year",
    "assignments_to_earlier_years",
    "bookshelf_cleared",
    "my_books_cleared",
    "requests_pending_cleared",
    "requests_approved_cleared",
    "requests_denied_cleared",
    "my_students_cleared",
    "students_needs_update",
)


class ExportOutdatedError(RostersyncError):
    """Reading data of the ending year changed after its export was written."""


@dataclass(frozen=True)
class ReadingSummary:
    """Figures that show whether an export still matches the store.

    Totals of the integer columns, so that new reading, more seconds or pages,
    or a row moved to another student or to a book id of another length changes
    at least one figure. percent_complete is left out, because a float total
    depends on the order of addition and a NaN never equals itself.
    """

    rows: int
    students: int
    seconds_read: int
    pages_read: int
    student_id_total: int
    book_id_bytes: int
    first_read_at: datetime | None
    last_read_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        figures = dataclasses.asdict(self)
        for key in ("first_read_at", "last_read_at"):
            figures[key] = _iso(figures[key])
        return figures

    @classmethod
    def from_dict(cls, figures: dict[str, Any]) -> ReadingSummary:
        """Read figures written by ``as_dict``; raise KeyError or ValueError if bad."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = figures[field.name]
            if field.name.endswith("_at"):
                values[field.name] = datetime.fromisoformat(value) if value else None
            else:
                values[field.name] = int(value)
        return cls(**values)


@dataclass(frozen=True)
class ResetTarget:
    """A district's school years and reset state, read before a reset."""

    district_id: str
    timezone: str
    ending_year: int
    local_date: date
    integrated: bool
    ledger: dict[str, datetime]
    # When the year before the district's current one was reset, or None. A run
    # that finds it reports the district as already reset.
    previous_reset_at: datetime | None

    @property
    def new_year(self) -> int:
        return self.ending_year + 1

    @property
    def due(self) -> bool:
        return school_year_on(self.local_date) > self.ending_year


def school_year_on(day: date) -> int:
    """Return the school year in force on ``day``; a year starts on August 1."""
    return day.year if day.month >= 8 else day.year - 1


def year_label(year: int) -> str:
    """Return a school year as "2025-26"."""
    return f"{year}-{(year + 1) % 100:02d}"


def due_district_ids(connection: Connection, now: datetime) -> list[str]:
    """Return the districts whose local date has reached a later school year, sorted."""
    rows = connection.execute(
        select(District.id, District.timezone, District.school_year).order_by(
            District.id
        )
    ).all()
    due = []
    for district_id, timezone, year in rows:
        try:
            local = now.astimezone(ZoneInfo(timezone)).date()
        except (ZoneInfoNotFoundError, ValueError):
            # Listed, so that its reset fails alone and names the bad zone.
            due.append(district_id)
            continue
        if school_year_on(local) > year:
            due.append(district_id)
    return due


def read_target(connection: Connection, district_id: str, now: datetime) -> ResetTarget:
    """Read the district's reset state; raise ConfigurationError if it is unknown."""
    row = connection.execute(
        select(District.timezone, District.school_year).where(
            District.id == district_id
        )
    ).one_or_none()
    if row is None:
        raise ConfigurationError(
            f"District {district_id!r} is not registered; list the districts with "
            "`rostersync district list`."
        )
    timezone, year = row
    zone = _zone(district_id, timezone)
    integrated = (
        connection.execute(
            select(Integration.id).where(Integration.district_id == district_id)
        ).first()
        is not None
    )
    return ResetTarget(
        district_id=district_id,
        timezone=timezone,
        ending_year=year,
        local_date=now.astimezone(zone).date(),
        integrated=integrated,
        ledger=read_ledger(connection, district_id, year),
        previous_reset_at=read_ledger(connection, district_id, year - 1).get(RESET),
    )


def read_ledger(
    connection: Connection, district_id: str, school_year: int
) -> dict[str, datetime]:
    """Return the steps done for the district's school year, with when."""
    rows = connection.execute(
        select(ResetLedger.step, ResetLedger.done_at).where(
            ResetLedger.district_id == district_id,
            ResetLedger.school_year == school_year,
        )
    ).all()
    return dict(rows)


def record_step(
    connection: Connection,
    district_id: str,
    school_year: int,
    step: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a done step with its detail, replacing the detail of a recorded one."""
    if step in read_ledger(connection, district_id, school_year):
        connection.execute(
            update(ResetLedger)
            .where(
                ResetLedger.district_id == district_id,
                ResetLedger.school_year == school_year,
                ResetLedger.step == step,
            )
            .values(detail=detail)
        )
        return
    connection.execute(
        insert(ResetLedger).values(
            district_id=district_id,
            school_year=school_year,
            step=step,
            done_at=now,
            detail=detail,
        )
    )


def step_detail(
    connection: Connection, district_id: str, school_year: int, step: str
) -> dict[str, Any] | None:
    """Return the detail recorded with a done step, or None."""
    return connection.execute(
        select(ResetLedger.detail).where(
            ResetLedger.district_id == district_id,
            ResetLedger.school_year == school_year,
            ResetLedger.step == step,
        )
    ).scalar_one_or_none()


def reading_summary(
    connection: Connection, district_id: str, school_year: int
) -> ReadingSummary:
    """Return the totals of a year's reading in the district; see ReadingSummary."""
    reading = ReadingActivity
    row = connection.execute(
        select(
            func.count(),
            func.count(func.distinct(reading.student_id)),
            func.coalesce(func.sum(reading.seconds_read), 0),
            func.coalesce(func.sum(reading.pages_read), 0),
            func.coalesce(func.sum(reading.student_id), 0),
            func.coalesce(func.sum(utf8_bytes(connection, reading.book_id)), 0),
            func.max(reading.first_read_at),
            func.max(reading.last_read_at),
        ).where(
            reading.school_year == school_year,
            reading.student_id.in_(_district_users(district_id)),
        )
    ).one()
    *totals, first_read, last_read = row
    return ReadingSummary(
        *(int(total) for total in totals),
        first_read_at=_utc(first_read),
        last_read_at=_utc(last_read),
    )


def utf8_bytes(connection: Connection, column: Any) -> Any:
    """Return an expression for the length of a text column in UTF-8 bytes.

    SQLite's length() counts characters up to the first NUL, so the text is cast
    to a blob there. PostgreSQL has octet_length() and rejects NUL in text.
    """
    if connection.dialect.name == "sqlite":
        return func.length(cast(column, LargeBinary))
    return func.octet_length(column)


def reading_per_student(
    connection: Connection, district_id: str, school_year: int
) -> dict[int, tuple[int, int, int, int]]:
    """Return each reading student's rows, seconds, books and book id UTF-8 bytes.

    Only students with reading in the year are listed.
    """
    reading = ReadingActivity
    rows = connection.execute(
        select(
            reading.student_id,
            func.count(),
            func.coalesce(func.sum(reading.seconds_read), 0),
            func.count(func.distinct(reading.book_id)),
            func.coalesce(func.sum(utf8_bytes(connection, reading.book_id)), 0),
        )
        .where(
            reading.school_year == school_year,
            reading.student_id.in_(_district_users(district_id)),
        )
        .group_by(reading.student_id)
    )
    return {
        student_id: (int(count), int(seconds), int(books), int(characters))
        for student_id, count, seconds, books, characters in rows
    }


def count_changes(
    connection: Connection, district_id: str, ending_year: int, integrated: bool
) -> dict[str, int]:
    """Return what a reset of the ending year would change, keyed by COUNT_KEYS."""
    counts: dict[str, int] = {}
    for key, table, condition in _changes(district_id, ending_year, integrated):
        counts[key] = int(
            connection.execute(
                select(func.count()).select_from(table).where(condition)
            ).scalar_one()
        )
    return counts


def reset_district(
    connection: Connection,
    district_id: str,
    ending_year: int,
    now: datetime,
    export_summary: ReadingSummary | None = None,
) -> dict[str, int] | None:
    """End the district's school year and start the next, in the caller's transaction.

    The district's row is locked first, so a sync or a second reset waits. Returns
    the rows changed per COUNT_KEYS, or None when the ledger shows the year was
    reset already. Raises ConfigurationError when the district is in another
    school year than ``ending_year``, and ExportOutdatedError when the ending
    year's reading no longer matches ``export_summary``.
    """
    year = connection.execute(
        select(District.school_year).where(District.id == district_id).with_for_update()
    ).scalar_one_or_none()
    if year is None:
        raise ConfigurationError(f"District {district_id!r} is not registered.")
    if RESET in read_ledger(connection, district_id, ending_year):
        return None
    if year != ending_year:
        raise ConfigurationError(
            f"District {district_id!r} is in school year {year_label(year)}, not "
            f"{year_label(ending_year)}; nothing was reset. Run the reset again "
            "to reset its current year."
        )
    if export_summary is not None:
        current = reading_summary(connection, district_id, ending_year)
        if current != export_summary:
            raise ExportOutdatedError(
                f"District {district_id}: the reading data of "
                f"{year_label(ending_year)} changed after its export "
                f"({export_summary.rows} rows then, {current.rows} now); nothing "
                "was reset. The export is written again on the next try."
            )
    integrated = (
        connection.execute(
            select(Integration.id).where(Integration.district_id == district_id)
        ).first()
        is not None
    )
    counts: dict[str, int] = {}
    # Earlier years leave "Last School Year" before the ending year moves in.
    for key, table, condition in _changes(district_id, ending_year, integrated):
        counts[key] = connection.execute(
            update(table).where(condition).values(**_new_values(key, now))
        ).rowcount
    connection.execute(
        update(District)
        .where(District.id == district_id)
        .values(school_year=ending_year + 1)
    )
    record_step(connection, district_id, ending_year, RESET, now)
    return counts


def recent_assignments(
    connection: Connection, district_id: str, ending_year: int, now: datetime
) -> list[dict[str, Any]]:
    """Return the books of the ending year assigned in the last 14 days, per educator.

    These are the current-shelf assignments that the reset moves to Last School
    Year; books already assigned for the new year stay and are not listed.

    Each row has the educator's portal and provider ids, the provider id of the
    educator's school and the number of books, most books first. Ids only: the
    report goes to operators, who look the educators up in the portal.
    """
    since = now - timedelta(days=RECENT_ASSIGNMENT_DAYS)
    rows = connection.execute(
        select(
            User.id,
            User.provider_id,
            School.provider_id,
            func.count(BookAssignment.id),
        )
        .join(User, User.id == BookAssignment.educator_id)
        .outerjoin(School, School.id == User.school_id)
        .where(
            BookAssignment.district_id == district_id,
            BookAssignment.shelf == CURRENT_SHELF,
            BookAssignment.school_year <= ending_year,
            BookAssignment.assigned_at >= since,
        )
        .group_by(User.id, User.provider_id, School.provider_id)
        .order_by(func.count(BookAssignment.id).desc(), User.id)
    ).all()
    return [
        {
            "educator_id": educator_id,
            "educator_provider_id": provider_id,
            "school_provider_id": school_provider_id,
            "books": int(books),
        }
        for educator_id, provider_id, school_provider_id, books in rows
    ]


def _changes(district_id: str, ending_year: int, integrated: bool) -> list:
    """Return (count key, table, row condition) for each statement of a reset."""
    users = _district_users(district_id)
    uncleared = {
        table: and_(table.school_year <= ending_year, table.cleared_at.is_(None))
        for table in (BookshelfItem, BookRequest, MyStudent)
    }
    changes = [
        (
            "assignments_to_earlier_years",
            BookAssignment,
            and_(
                BookAssignment.district_id == district_id,
                or_(
                    BookAssignment.shelf == LAST_SCHOOL_YEAR,
                    and_(
                        BookAssignment.shelf == CURRENT_SHELF,
                        BookAssignment.school_year < ending_year,
                    ),
                ),
            ),
        ),
        (
            "assignments_to_last_school_year",
            BookAssignment,
            and_(
                BookAssignment.district_id == district_id,
                BookAssignment.shelf == CURRENT_SHELF,
                BookAssignment.school_year == ending_year,
            ),
        ),
        (
            "bookshelf_cleared",
            BookshelfItem,
            and_(
                BookshelfItem.educator_id.in_(users),
                BookshelfItem.list_name == "bookshelf",
                uncleared[BookshelfItem],
            ),
        ),
        (
            "my_books_cleared",
            BookshelfItem,
            and_(
                BookshelfItem.educator_id.in_(users),
                BookshelfItem.list_name != "bookshelf",
                uncleared[BookshelfItem],
            ),
        ),
        *(
            (
                f"requests_{status}_cleared",
                BookRequest,
                and_(
                    BookRequest.student_id.in_(users),
                    _request_status(status),
                    uncleared[BookRequest],
                ),
            )
            for status in ("pending", "approved", "denied")
        ),
        (
            "my_students_cleared",
            MyStudent,
            and_(MyStudent.educator_id.in_(users), uncleared[MyStudent]),
        ),
    ]
    if not integrated:
        changes.append(
            (
                "students_needs_update",
                User,
                and_(
                    User.district_id == district_id,
                    User.kind == "student",
                    User.status == ACTIVE,
                    User.profile_status.is_distinct_from(NEEDS_UPDATE),
                ),
            )
        )
    return changes


def _request_status(status: str):
    """Match a request status; a status outside the three counts as pending."""
    if status == "pending":
        return BookRequest.status.not_in(("approved", "denied"))
    return BookRequest.status == status


def _new_values(key: str, now: datetime) -> dict[str, Any]:
    if key == "assignments_to_earlier_years":
        return {"shelf": EARLIER_YEARS}
    if key == "assignments_to_last_school_year":
        return {"shelf": LAST_SCHOOL_YEAR}
    if key == "students_needs_update":
        return {"profile_status": NEEDS_UPDATE, "updated_at": now}
    return {"cleared_at": now}


def _zone(district_id: str, timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"District {district_id!r} has the time zone {timezone!r}, which is not "
            "a known IANA zone, so its August 1 cannot be found. Set "
            "districts.timezone to a zone such as America/Chicago; registration "
            "checks the zone, so a later edit or an older tz database set it."
        ) from None


def _district_users(district_id: str):
    return select(User.id).where(User.district_id == district_id)


def _utc(value: datetime | None) -> datetime | None:
    """Return a time in UTC; SQLite returns times without their zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=ZoneInfo("UTC"))
    return value.astimezone(ZoneInfo("UTC"))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
