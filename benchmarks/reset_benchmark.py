"""Measure the New School Year reset of one district at a chosen size.

Registers a district without an integration and fills a school year of portal
data with set-based INSERT ... SELECT statements. The data is N students and
N/25 educators in 3 schools. Each student has 10 reading rows and 1 book
request, and each educator has 30 book assignments, 5 bookshelf items, 3 "My
Books" items and 25 "My Students" rows. Then it times each step of the reset
with the functions that the flow's tasks call, without Prefect. The steps are
the dry run's counts, the recent assignments, the reading-history export, the
export check with Great Expectations (its import timed on its own), and the
reset in one transaction. Prints seconds and the process's peak resident
memory, and writes them as JSON to benchmarks/results/.

    uv run python benchmarks/reset_benchmark.py --students 100000
    uv run python benchmarks/reset_benchmark.py --students 100000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Float,
    String,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    select,
    true,
    union_all,
)
from sync_benchmark import RESULTS, peak_rss_mb, timed

import rostersync  # noqa: F401 - sets the no-telemetry environment first
from rostersync.export import export_folder, export_reading_history, manifest_summary
from rostersync.export_checks import check_export
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.models import (
    ACTIVE,
    CURRENT_SHELF,
    BookAssignment,
    BookRequest,
    BookshelfItem,
    District,
    MyStudent,
    ReadingActivity,
    School,
    User,
)
from rostersync.store.reset import (
    count_changes,
    reading_per_student,
    reading_summary,
    recent_assignments,
    reset_district,
)

ENDING_YEAR = 2025
SCHOOLS = 3
STUDENTS_PER_EDUCATOR = 25
READING_ROWS_PER_STUDENT = 10
ASSIGNMENTS_PER_EDUCATOR = 30
# The last RECENT_PER_EDUCATOR assignments of each educator fall in the 14 days
# before the reset, so recent_assignments lists every educator.
RECENT_PER_EDUCATOR = 2
BOOKSHELF_ITEMS = 5
MY_BOOKS_ITEMS = 3
REQUEST_STATUSES = ("pending", "approved", "denied")
# The reset runs on August 1 of the new school year, in UTC.
RESET_AT = datetime(ENDING_YEAR + 1, 8, 1, 12, tzinfo=UTC)
YEAR_START = datetime(ENDING_YEAR, 9, 1, 8, tzinfo=UTC)
TIMESTAMP = DateTime(timezone=True)


def sequence(count: int):
    """Return a recursive CTE of the integers 0 to count - 1, in column ``i``."""
    numbers = select(literal(0).label("i")).cte("numbers", recursive=True)
    return numbers.union_all(select(numbers.c.i + 1).where(numbers.c.i < count - 1))


def constant_rows(rows: list[dict]):
    """Return a subquery of literal rows, one SELECT per row joined by UNION ALL."""
    selects = []
    for row in rows:
        columns = []
        for name, value in row.items():
            type_ = TIMESTAMP if isinstance(value, datetime) else None
            columns.append(literal(value, type_).label(name))
        selects.append(select(*columns))
    return union_all(*selects).subquery()


def id_text(prefix: str, number) -> object:
    """Return the SQL expression ``prefix || CAST(number AS VARCHAR)``."""
    return literal(prefix) + cast(number, String)


def insert_users(
    connection: Connection,
    district_id: str,
    kind: str,
    count: int,
    school_ids: list[int],
) -> int:
    """Insert ``count`` users of one kind split over the schools in equal ranges.

    Returns the first id. Raises RuntimeError when the ids are not consecutive,
    because the later inserts compute user ids from positions.
    """
    role = "student" if kind == "student" else "teacher"
    prefix = "stu-" if kind == "student" else "edu-"
    for index, school_id in enumerate(school_ids):
        first = count * index // len(school_ids)
        size = count * (index + 1) // len(school_ids) - first
        if size == 0:
            continue
        numbers = sequence(size)
        position = numbers.c.i + first
        rows = select(
            literal(district_id),
            id_text(prefix, position),
            literal(kind),
            literal(role),
            id_text(f"sis-{prefix}", position),
            cast(position % 13, String) if kind == "student" else null(),
            literal("eligible") if kind == "student" else null(),
            literal(school_id),
            literal([school_id], JSON),
            literal(ACTIVE),
            literal(YEAR_START, TIMESTAMP),
            literal(YEAR_START, TIMESTAMP),
        ).order_by(numbers.c.i)
        connection.execute(
            insert(User).from_select(
                [
                    "district_id",
                    "provider_id",
                    "kind",
                    "role",
                    "sis_id",
                    "grade",
                    "eligibility",
                    "school_id",
                    "school_ids",
                    "status",
                    "created_at",
                    "updated_at",
                ],
                rows,
            )
        )
    low, high, stored = connection.execute(
        select(func.min(User.id), func.max(User.id), func.count()).where(
            User.district_id == district_id, User.kind == kind
        )
    ).one()
    if stored != count or high - low + 1 != count:
        raise RuntimeError(
            f"The {kind} ids run from {low} to {high} for {stored} rows, so they "
            f"are not {count} consecutive ids. Run the benchmark on a new database."
        )
    return low


def generate(engine, district_id: str, students: int) -> dict[str, int]:
    """Fill one school year of the district's portal data and return its size."""
    educators = students // STUDENTS_PER_EDUCATOR
    with engine.begin() as connection:
        school_ids = []
        for number in range(1, SCHOOLS + 1):
            school_ids.append(
                connection.execute(
                    insert(School)
                    .values(
                        district_id=district_id,
                        provider_id=f"bench-sch-{number}",
                        name=f"School {number}",
                        created_at=YEAR_START,
                        updated_at=YEAR_START,
                    )
                    .returning(School.id)
                ).scalar_one()
            )
        first_student = insert_users(
            connection, district_id, "student", students, school_ids
        )
        first_educator = insert_users(
            connection, district_id, "educator", educators, school_ids
        )
        student_rows = select(User.id).where(
            User.district_id == district_id, User.kind == "student"
        )
        student_rows = student_rows.subquery()
        educator_rows = select(User.id).where(
            User.district_id == district_id, User.kind == "educator"
        )
        educator_rows = educator_rows.subquery()
        student_position = student_rows.c.id - first_student
        # Educator j's students are the students at positions 25j to 25j + 24.
        first_listed = (
            educator_rows.c.id - first_educator
        ) * STUDENTS_PER_EDUCATOR + first_student

        books = constant_rows(
            [
                {
                    "k": k,
                    "first_read_at": YEAR_START + timedelta(days=30 * k),
                    "last_read_at": YEAR_START + timedelta(days=30 * k + 10),
                }
                for k in range(READING_ROWS_PER_STUDENT)
            ]
        )
        # k * 101 stays below 20,000, so a student's 10 book ids differ.
        connection.execute(
            insert(ReadingActivity).from_select(
                [
                    "student_id",
                    "book_id",
                    "school_year",
                    "seconds_read",
                    "pages_read",
                    "percent_complete",
                    "first_read_at",
                    "last_read_at",
                ],
                select(
                    student_rows.c.id,
                    id_text("bk-", (student_rows.c.id * 7 + books.c.k * 101) % 20000),
                    literal(ENDING_YEAR),
                    (student_rows.c.id * 37 + books.c.k * 613) % 3600 + 60,
                    (student_rows.c.id + books.c.k * 17) % 300 + 1,
                    cast((student_rows.c.id + books.c.k) % 101, Float) / 100.0,
                    books.c.first_read_at,
                    books.c.last_read_at,
                ).select_from(student_rows.join(books, true())),
            )
        )
        status = student_position % len(REQUEST_STATUSES)
        connection.execute(
            insert(BookRequest).from_select(
                [
                    "student_id",
                    "educator_id",
                    "book_id",
                    "school_year",
                    "status",
                    "requested_at",
                ],
                select(
                    student_rows.c.id,
                    student_position // STUDENTS_PER_EDUCATOR + first_educator,
                    id_text("bk-", student_rows.c.id % 20000),
                    literal(ENDING_YEAR),
                    case(
                        (status == 0, REQUEST_STATUSES[0]),
                        (status == 1, REQUEST_STATUSES[1]),
                        else_=REQUEST_STATUSES[2],
                    ),
                    literal(YEAR_START + timedelta(days=60), TIMESTAMP),
                ),
            )
        )
        older = ASSIGNMENTS_PER_EDUCATOR - RECENT_PER_EDUCATOR
        assignments = constant_rows(
            [
                {
                    "k": k,
                    "assigned_at": (
                        YEAR_START + timedelta(days=10 * k)
                        if k < older
                        else RESET_AT - timedelta(days=k - older + 1)
                    ),
                }
                for k in range(ASSIGNMENTS_PER_EDUCATOR)
            ]
        )
        connection.execute(
            insert(BookAssignment).from_select(
                [
                    "district_id",
                    "educator_id",
                    "student_id",
                    "book_id",
                    "school_year",
                    "shelf",
                    "assigned_at",
                ],
                select(
                    literal(district_id),
                    educator_rows.c.id,
                    first_listed + assignments.c.k % STUDENTS_PER_EDUCATOR,
                    id_text("bk-", assignments.c.k * 211),
                    literal(ENDING_YEAR),
                    literal(CURRENT_SHELF),
                    assignments.c.assigned_at,
                ).select_from(educator_rows.join(assignments, true())),
            )
        )
        lists = constant_rows(
            [
                {
                    "k": k,
                    "list_name": "bookshelf" if k < BOOKSHELF_ITEMS else "my_books",
                }
                for k in range(BOOKSHELF_ITEMS + MY_BOOKS_ITEMS)
            ]
        )
        connection.execute(
            insert(BookshelfItem).from_select(
                ["educator_id", "book_id", "school_year", "list_name", "added_at"],
                select(
                    educator_rows.c.id,
                    id_text("bk-", lists.c.k * 307),
                    literal(ENDING_YEAR),
                    lists.c.list_name,
                    literal(YEAR_START, TIMESTAMP),
                ).select_from(educator_rows.join(lists, true())),
            )
        )
        listed = sequence(STUDENTS_PER_EDUCATOR)
        connection.execute(
            insert(MyStudent).from_select(
                ["educator_id", "student_id", "school_year", "added_at"],
                select(
                    educator_rows.c.id,
                    first_listed + listed.c.i,
                    literal(ENDING_YEAR),
                    literal(YEAR_START, TIMESTAMP),
                ).select_from(educator_rows.join(listed, true())),
            )
        )
        if connection.dialect.name == "postgresql":
            # Autovacuum analyzes new rows at a time of its own choosing. Analyzing
            # here gives every run the same planner statistics.
            connection.exec_driver_sql("ANALYZE")
    return {"students": students, "educators": educators}


def expected_counts(students: int, educators: int) -> dict[str, int]:
    """Return the counts a reset of the generated year must report."""
    return {
        "assignments_to_last_school_year": educators * ASSIGNMENTS_PER_EDUCATOR,
        "assignments_to_earlier_years": 0,
        "bookshelf_cleared": educators * BOOKSHELF_ITEMS,
        "my_books_cleared": educators * MY_BOOKS_ITEMS,
        "requests_pending_cleared": (students + 2) // 3,
        "requests_approved_cleared": (students + 1) // 3,
        "requests_denied_cleared": students // 3,
        "my_students_cleared": educators * STUDENTS_PER_EDUCATOR,
        "students_needs_update": students,
    }


def run_reset(engine, district_id: str, work: Path) -> tuple[dict, list[str]]:
    """Time each step of the district's reset and return the figures and problems."""
    figures: dict = {}
    problems: list[str] = []
    with engine.connect() as connection:
        counts = timed(
            figures,
            "count_changes_s",
            count_changes,
            connection,
            district_id,
            ENDING_YEAR,
            False,
        )
        recent = timed(
            figures,
            "recent_assignments_s",
            recent_assignments,
            connection,
            district_id,
            ENDING_YEAR,
            RESET_AT,
        )
        summary = timed(
            figures,
            "reading_summary_s",
            reading_summary,
            connection,
            district_id,
            ENDING_YEAR,
        )
        folder = export_folder(work / "exports", district_id, ENDING_YEAR)
        batches: list[int] = []
        manifest = timed(
            figures,
            "export_s",
            export_reading_history,
            connection,
            district_id,
            ENDING_YEAR,
            folder,
            progress=batches.append,
        )
        figures["peak_rss_after_export_mib"] = round(peak_rss_mb())
        per_student = timed(
            figures,
            "rows_per_student_s",
            reading_per_student,
            connection,
            district_id,
            ENDING_YEAR,
        )
    timed(
        figures,
        "import_great_expectations_s",
        importlib.import_module,
        "great_expectations",
    )
    check = timed(
        figures, "check_export_s", check_export, folder, manifest, per_student
    )
    # The first check of a process also creates the Great Expectations context.
    timed(figures, "check_export_again_s", check_export, folder, manifest, per_student)
    figures["peak_rss_after_check_mib"] = round(peak_rss_mb())

    def reset() -> dict[str, int] | None:
        with engine.begin() as connection:
            return reset_district(
                connection,
                district_id,
                ENDING_YEAR,
                RESET_AT,
                export_summary=manifest_summary(manifest),
            )

    changed = timed(figures, "reset_s", reset)

    files = {entry["format"]: entry for entry in manifest["files"]}
    figures.update(
        counts=counts,
        reset_counts=changed,
        recent_educators=len(recent),
        recent_books=sum(row["books"] for row in recent),
        exported_rows=files["csv"]["rows"],
        export_batches=len(batches),
        csv_mib=round(files["csv"]["bytes"] / 2**20, 1),
        parquet_mib=round(files["parquet"]["bytes"] / 2**20, 1),
        checked_students=check.students,
    )
    if summary.rows != files["csv"]["rows"]:
        problems.append(
            f"the export has {files['csv']['rows']} rows, the store {summary.rows}"
        )
    if not check.passed:
        problems.append("the export check failed: " + "; ".join(check.problems))
    if changed != counts:
        problems.append(f"the reset changed {changed}, the dry run counted {counts}")
    with engine.connect() as connection:
        new_year = connection.execute(
            select(District.school_year).where(District.id == district_id)
        ).scalar_one()
    if new_year != ENDING_YEAR + 1:
        problems.append(f"the district is in school year {new_year} after the reset")
    return figures, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--students",
        type=int,
        default=100_000,
        help="number of students (at least 25), with 1 educator per 25 students",
    )
    parser.add_argument(
        "--database-url",
        help="store URL (default: a new SQLite file in a temporary folder)",
    )
    args = parser.parse_args()
    if args.students < STUDENTS_PER_EDUCATOR:
        parser.error(f"--students must be at least {STUDENTS_PER_EDUCATOR}")

    work = Path(tempfile.mkdtemp(prefix="rostersync-bench-"))
    url = args.database_url or f"sqlite:///{work / 'store.db'}"
    engine = get_engine(url)
    district_id = f"bench-reset-{args.students}-{int(time.time())}"
    add_district(
        engine,
        district_id,
        name="Benchmark",
        provider="none",
        source="",
        school_year=ENDING_YEAR,
    )
    started = time.perf_counter()
    sizes = generate(engine, district_id, args.students)
    generate_s = round(time.perf_counter() - started, 2)
    peak_after_generate = round(peak_rss_mb())

    figures, problems = run_reset(engine, district_id, work)
    expected = expected_counts(sizes["students"], sizes["educators"])
    if figures["counts"] != expected:
        problems.append(
            f"the dry run counted {figures['counts']}, the benchmark made {expected}"
        )
    if figures["exported_rows"] != args.students * READING_ROWS_PER_STUDENT:
        problems.append(
            f"the export has {figures['exported_rows']} rows, the benchmark made "
            f"{args.students * READING_ROWS_PER_STUDENT}"
        )
    figures["peak_rss_mib"] = round(peak_rss_mb())

    result = {
        "students": args.students,
        "educators": sizes["educators"],
        "store": engine.dialect.name,
        "generate_s": generate_s,
        "peak_rss_after_generate_mib": peak_after_generate,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "figures": figures,
        "problems": problems,
    }
    step_seconds = ", ".join(f"{k} {v}" for k, v in figures.items() if k.endswith("_s"))
    print(f"{args.students} students, {sizes['educators']} educators: {step_seconds}")
    print(
        f"generated in {generate_s} s; exported {figures['exported_rows']} rows, "
        f"CSV {figures['csv_mib']} MiB, Parquet {figures['parquet_mib']} MiB; "
        f"peak RSS {figures['peak_rss_mib']} MiB"
    )
    print(f"reset counts: {figures['reset_counts']}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"reset-{engine.dialect.name}-{args.students}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
