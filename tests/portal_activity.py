"""A year of generated Educator Portal activity for the users already in a district.

``add_year_of_activity`` adds a year of book assignments to students and sections,
some in the last 14 days, and bookshelf and "My Books" items. It adds book
requests in every status, reading activity and "My Students" rows for the ending
school year. It also adds rows of earlier years, most of them handled by an
earlier reset, and one assignment made for the new year. A seed makes it repeatable.
Some ids start with ``=``, ``+``, ``-`` or ``@`` so that the export's spreadsheet
guard has cells to protect.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from rostersync.store.models import (
    ACTIVE,
    EARLIER_YEARS,
    LAST_SCHOOL_YEAR,
    BookAssignment,
    BookRequest,
    BookshelfItem,
    MyStudent,
    ReadingActivity,
    Section,
    User,
)

# Book ids a spreadsheet would run as formulas, beside plain ones.
FORMULA_BOOK_IDS = ("=HYPERLINK(1)", "+42", "-7", "@SUM(1)")
BOOK_IDS = (*FORMULA_BOOK_IDS, *(f"book-{n:03d}" for n in range(40)))
REQUEST_STATUSES = ("pending", "approved", "denied")
# Days before ``now`` at which the first educator assigned books lately: the
# first two fall within the 14 days the reset reports, the last one does not.
RECENT_DAYS = (2, 10, 20)


def add_year_of_activity(
    connection: sa.Connection,
    district_id: str,
    ending_year: int,
    now: datetime,
    seed: int = 7,
) -> None:
    """Insert a year of portal activity for the district's active users."""
    rng = random.Random(seed)
    students = _ids(connection, district_id, "student")
    educators = _ids(connection, district_id, "educator")
    sections = list(
        connection.execute(
            sa.select(Section.id)
            .where(Section.district_id == district_id, Section.status == ACTIVE)
            .order_by(Section.id)
        ).scalars()
    )
    start = datetime(ending_year, 8, 1, 8, tzinfo=UTC)

    def during(year: int) -> datetime:
        offset = timedelta(seconds=rng.randrange(300 * 24 * 3600))
        return start.replace(year=year) + offset

    assignments, shelf_items, my_students = [], [], []
    for number, educator in enumerate(educators):
        for student in rng.sample(students, min(6, len(students))):
            assignments.append(
                _assignment(district_id, educator, ending_year, during(ending_year))
                | {"student_id": student}
            )
        for section in sections[:2]:
            assignments.append(
                _assignment(district_id, educator, ending_year, during(ending_year))
                | {"section_id": section}
            )
        # Assigned a year earlier and two years earlier, moved by earlier resets.
        for years_back, shelf in ((1, LAST_SCHOOL_YEAR), (2, EARLIER_YEARS)):
            year = ending_year - years_back
            assignments.append(
                _assignment(district_id, educator, year, during(year))
                | {"student_id": students[number % len(students)], "shelf": shelf}
            )
        if number == 0:
            for days in RECENT_DAYS:
                assignments.append(
                    _assignment(
                        district_id, educator, ending_year, now - timedelta(days=days)
                    )
                    | {"student_id": students[0]}
                )
            # Left on the current shelf by a year without a reset.
            assignments.append(
                _assignment(
                    district_id, educator, ending_year - 1, during(ending_year - 1)
                )
                | {"student_id": students[0]}
            )
            # Assigned for the new year before the reset: it stays where it is.
            assignments.append(
                _assignment(
                    district_id, educator, ending_year + 1, now - timedelta(days=1)
                )
                | {"student_id": students[0]}
            )
        for list_name, count in (("bookshelf", 3), ("my_books", 2)):
            for book in rng.sample(BOOK_IDS, count):
                shelf_items.append(
                    {
                        "educator_id": educator,
                        "book_id": book,
                        "school_year": ending_year,
                        "list_name": list_name,
                        "added_at": during(ending_year),
                        "cleared_at": None,
                    }
                )
        shelf_items.append(
            {
                "educator_id": educator,
                "book_id": BOOK_IDS[-1],
                "school_year": ending_year - 1,
                "list_name": "bookshelf",
                "added_at": during(ending_year - 1),
                "cleared_at": start - timedelta(days=365),
            }
        )
        for student in rng.sample(students, min(5, len(students))):
            my_students.append(
                {
                    "educator_id": educator,
                    "student_id": student,
                    "school_year": ending_year,
                    "added_at": during(ending_year),
                    "cleared_at": None,
                }
            )

    requests, reading = [], []
    for number, student in enumerate(students):
        status = REQUEST_STATUSES[number % len(REQUEST_STATUSES)]
        asked = during(ending_year)
        requests.append(
            {
                "student_id": student,
                "educator_id": educators[number % len(educators)]
                if educators
                else None,
                "book_id": rng.choice(BOOK_IDS),
                "school_year": ending_year,
                "status": status,
                "requested_at": asked,
                "decided_at": None
                if status == "pending"
                else asked + timedelta(days=1),
                "cleared_at": None,
            }
        )
        for book in rng.sample(BOOK_IDS, 3):
            first = during(ending_year)
            reading.append(
                {
                    "student_id": student,
                    "book_id": book,
                    "school_year": ending_year,
                    "seconds_read": rng.randrange(60, 20_000),
                    "pages_read": rng.choice([None, rng.randrange(1, 300)]),
                    "percent_complete": round(rng.random() * 100, 2),
                    "first_read_at": first,
                    "last_read_at": first + timedelta(days=rng.randrange(0, 30)),
                }
            )
        if number % 4 == 0:
            reading.append(
                {
                    "student_id": student,
                    "book_id": BOOK_IDS[-1],
                    "school_year": ending_year - 1,
                    "seconds_read": 600,
                    "pages_read": 12,
                    "percent_complete": 10.0,
                    "first_read_at": during(ending_year - 1),
                    "last_read_at": during(ending_year - 1),
                }
            )

    for model, rows in (
        (BookAssignment, assignments),
        (BookshelfItem, shelf_items),
        (MyStudent, my_students),
        (BookRequest, requests),
        (ReadingActivity, reading),
    ):
        if rows:
            connection.execute(sa.insert(model), rows)


def _assignment(
    district_id: str, educator: int, year: int, assigned_at: datetime
) -> dict:
    return {
        "district_id": district_id,
        "educator_id": educator,
        "student_id": None,
        "section_id": None,
        "book_id": BOOK_IDS[int(assigned_at.timestamp()) % len(BOOK_IDS)],
        "school_year": year,
        "shelf": "current",
        "assigned_at": assigned_at,
    }


def _ids(connection: sa.Connection, district_id: str, kind: str) -> list[int]:
    return list(
        connection.execute(
            sa.select(User.id)
            .where(
                User.district_id == district_id,
                User.kind == kind,
                User.status == ACTIVE,
            )
            .order_by(User.id)
        ).scalars()
    )
