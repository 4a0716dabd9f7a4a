"""The purge of archived users, in the store and as a flow, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker

import flows.purge
from flows.purge import purge_archived_users_flow
from rostersync.errors import ConfigurationError, StoreError
from rostersync.store.database import get_engine
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
    School,
    Section,
    SyncRun,
    User,
)
from rostersync.store.purge import purge_archived_users, purgeable_count

pytestmark = pytest.mark.usefixtures("prefect_harness")

REPOSITORY = Path(__file__).resolve().parents[2]

# Distinctive values, so that finding one in an output is conclusive.
GIVEN = "Qwzarbindle"
EMAIL_DOMAIN = "qwzarbindle.invalid"

# What a purge deletes from one district built by build_district at 365 days: the
# old archived student and educator and every row that names them.
EXPECTED_365 = {
    "users": 2,
    "enrollments": 2,
    "book_assignments": 3,
    "bookshelf_items": 1,
    "book_requests": 3,
    "book_requests_unlinked": 2,
    "reading_activity": 1,
    "my_students": 2,
    "change_log": 6,
}
# The same district at 30 days: the student archived 100 days ago goes too.
EXPECTED_30 = {
    "users": 3,
    "enrollments": 3,
    "book_assignments": 4,
    "bookshelf_items": 1,
    "book_requests": 4,
    "book_requests_unlinked": 1,
    "reading_activity": 2,
    "my_students": 3,
    "change_log": 9,
}
NOTHING = dict.fromkeys(EXPECTED_365, 0)


@dataclass
class BuiltDistrict:
    """Ids of one district's rows, by the name build_district gave them."""

    district_id: str
    users: dict[str, int] = field(default_factory=dict)
    enrollments: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)


# Users: (name, kind, role, status, days since archived or None)
USERS = [
    ("student_active", "student", "student", "active", None),
    ("educator_active", "educator", "teacher", "active", None),
    ("student_old", "student", "student", ARCHIVED, 400),
    ("educator_old", "educator", "teacher", ARCHIVED, 400),
    ("student_recent", "student", "student", ARCHIVED, 100),
    ("student_no_date", "student", "student", ARCHIVED, None),
]


def build_district(
    connection: sa.Connection, district_id: str, now: datetime, retention_days=365
) -> BuiltDistrict:
    """Insert a district with users in every state and a row per portal table."""
    built = BuiltDistrict(district_id)
    connection.execute(
        sa.insert(District).values(
            id=district_id,
            name=f"District {district_id}",
            school_year=2026,
            retention_days=retention_days,
            created_at=now,
        )
    )
    school_id = _insert(
        connection,
        School,
        district_id=district_id,
        provider_id=f"{district_id}-school",
        name="School",
        created_at=now,
        updated_at=now,
    )
    section_id = _insert(
        connection,
        Section,
        district_id=district_id,
        provider_id=f"{district_id}-section",
        school_id=school_id,
        name="Section",
        created_at=now,
        updated_at=now,
    )
    for name, kind, role, status, days in USERS:
        built.users[name] = _insert(
            connection,
            User,
            district_id=district_id,
            provider_id=f"{district_id}-{name}",
            kind=kind,
            role=role,
            given_name=GIVEN,
            family_name=name,
            email=f"{name}@{EMAIL_DOMAIN}",
            school_id=school_id,
            school_ids=[school_id],
            status=status,
            archived_at=None if days is None else now - timedelta(days=days),
            created_at=now,
            updated_at=now,
        )
        built.enrollments[name] = _insert(
            connection,
            Enrollment,
            district_id=district_id,
            section_id=section_id,
            user_id=built.users[name],
            role=role,
            status=status,
            created_at=now,
            updated_at=now,
        )
    _insert_portal_rows(connection, built, section_id, now)
    _insert_change_log(connection, built, school_id, section_id, now)
    return built


def _insert(connection: sa.Connection, model: type[Base], **values: Any) -> int:
    result = connection.execute(sa.insert(model).values(**values))
    return result.inserted_primary_key[0]


def _insert_portal_rows(
    connection: sa.Connection, built: BuiltDistrict, section_id: int, now: datetime
) -> None:
    users = built.users
    district = built.district_id
    for educator, student in [
        ("educator_active", "student_active"),
        ("educator_active", "student_old"),
        ("educator_old", "student_active"),
        ("educator_active", "student_recent"),
        ("educator_active", "student_no_date"),
    ]:
        _insert(
            connection,
            BookAssignment,
            district_id=district,
            educator_id=users[educator],
            student_id=users[student],
            book_id="book-1",
            school_year=2026,
            assigned_at=now,
        )
    # A section assignment of the old educator, with no student.
    _insert(
        connection,
        BookAssignment,
        district_id=district,
        educator_id=users["educator_old"],
        section_id=section_id,
        book_id="book-2",
        school_year=2026,
        assigned_at=now,
    )
    for educator in ("educator_active", "educator_old"):
        _insert(
            connection,
            BookshelfItem,
            educator_id=users[educator],
            book_id="book-1",
            school_year=2026,
            added_at=now,
        )
    for name, student, educator, status in [
        ("active_by_active", "student_active", "educator_active", "approved"),
        ("old_by_active", "student_old", "educator_active", "approved"),
        ("active_by_old", "student_active", "educator_old", "approved"),
        ("recent_by_old", "student_recent", "educator_old", "denied"),
        ("active_pending_old", "student_active", "educator_old", "pending"),
        ("old_by_old", "student_old", "educator_old", "approved"),
        ("no_date_pending", "student_no_date", None, "pending"),
    ]:
        built.requests[name] = _insert(
            connection,
            BookRequest,
            student_id=users[student],
            educator_id=None if educator is None else users[educator],
            book_id="book-3",
            school_year=2026,
            status=status,
            requested_at=now,
            decided_at=None if status == "pending" else now,
        )
    for student in ("student_active", "student_old", "student_recent"):
        _insert(
            connection,
            ReadingActivity,
            student_id=users[student],
            book_id="book-1",
            school_year=2026,
            seconds_read=60,
        )
    _insert(
        connection,
        ReadingActivity,
        student_id=users["student_no_date"],
        book_id="book-1",
        school_year=2026,
        seconds_read=60,
    )
    for educator, student in [
        ("educator_active", "student_active"),
        ("educator_active", "student_old"),
        ("educator_old", "student_active"),
        ("educator_active", "student_recent"),
    ]:
        _insert(
            connection,
            MyStudent,
            educator_id=users[educator],
            student_id=users[student],
            school_year=2026,
            added_at=now,
        )


def _insert_change_log(
    connection: sa.Connection,
    built: BuiltDistrict,
    school_id: int,
    section_id: int,
    now: datetime,
) -> None:
    run_id = str(uuid.uuid4())
    connection.execute(
        sa.insert(SyncRun).values(
            id=run_id,
            district_id=built.district_id,
            flow_name="daily-sync",
            status="completed",
            started_at=now,
        )
    )
    entries = []
    for name, _, _, status, _ in USERS:
        user_id = built.users[name]
        after = {"given_name": GIVEN, "email": f"{name}@{EMAIL_DOMAIN}"}
        entries.append(("users", user_id, "create", after))
        if status == ARCHIVED:
            entries.append(("users", user_id, "archive", {"status": ARCHIVED}))
        entries.append(("enrollments", built.enrollments[name], "create", None))
    # Entries of other entities whose ids equal purged users' ids stay.
    entries.append(("schools", built.users["student_old"], "update", None))
    entries.append(("sections", built.users["educator_old"], "update", None))
    entries.append(("schools", school_id, "create", None))
    entries.append(("sections", section_id, "create", None))
    connection.execute(
        sa.insert(ChangeLogEntry),
        [
            {
                "run_id": run_id,
                "district_id": built.district_id,
                "entity": entity,
                "entity_id": entity_id,
                "action": action,
                "after": after,
                "changed_at": now,
            }
            for entity, entity_id, action, after in entries
        ],
    )


# Reading the store


def store_rows(connection: sa.Connection) -> dict[str, dict[Any, tuple]]:
    """Every row of every table, keyed by table name and primary key."""
    rows = {}
    for table in Base.metadata.sorted_tables:
        key = list(table.primary_key.columns)[0]
        rows[table.name] = {
            row._mapping[key.name]: tuple(row)
            for row in connection.execute(sa.select(table))
        }
    return rows


def read_store() -> dict[str, dict[Any, tuple]]:
    with get_engine().connect() as connection:
        return store_rows(connection)


def purged_ids(built: BuiltDistrict, purged_names: set[str]) -> dict[str, set[int]]:
    """Return the ids a purge of ``purged_names`` deletes, read from the store.

    ``book_requests_unlinked`` has the ids of the requests that stay with
    educator_id set to NULL.
    """
    users = {built.users[name] for name in purged_names}
    enrollments = {built.enrollments[name] for name in purged_names}
    by_purged_student = BookRequest.student_id.in_(users)
    by_purged_educator = BookRequest.educator_id.in_(users)
    pending = BookRequest.status == "pending"
    conditions = {
        "book_assignments": BookAssignment.student_id.in_(users)
        | BookAssignment.educator_id.in_(users),
        "bookshelf_items": BookshelfItem.educator_id.in_(users),
        "book_requests": by_purged_student | (by_purged_educator & pending),
        "book_requests_unlinked": by_purged_educator & ~pending & ~by_purged_student,
        "reading_activity": ReadingActivity.student_id.in_(users),
        "my_students": MyStudent.educator_id.in_(users)
        | MyStudent.student_id.in_(users),
        "change_log": (
            (ChangeLogEntry.entity == "users") & ChangeLogEntry.entity_id.in_(users)
        )
        | (
            (ChangeLogEntry.entity == "enrollments")
            & ChangeLogEntry.entity_id.in_(enrollments)
        ),
    }
    ids = {"users": users, "enrollments": enrollments}
    with get_engine().connect() as connection:
        for key, condition in conditions.items():
            table = condition_table(key)
            query = sa.select(table.c.id).where(condition)
            ids[key] = set(connection.execute(query).scalars())
    return ids


def condition_table(key: str) -> sa.Table:
    name = "book_requests" if key == "book_requests_unlinked" else key
    return Base.metadata.tables[name]


# Tables whose rows a purge may change without deleting them, so only their ids
# are compared. A purge increments districts.store_version, and a flow adds runs.
CHANGED_TABLES = frozenset({"districts", "sync_runs"})


def assert_only_deleted(
    before: dict[str, dict[Any, tuple]],
    after: dict[str, dict[Any, tuple]],
    deleted: dict[str, set[int]],
) -> None:
    """Check that each table lost exactly its ``deleted`` ids and kept the rest.

    The kept rows are compared value by value, except that the requests in
    ``deleted["book_requests_unlinked"]`` are expected with educator_id NULL.
    """
    educator = list(BookRequest.__table__.columns.keys()).index("educator_id")
    unlinked = deleted.get("book_requests_unlinked", set())
    for table, rows in before.items():
        deleted_ids = deleted.get(table, set())
        expected = {key: row for key, row in rows.items() if key not in deleted_ids}
        if table == "book_requests":
            for key in unlinked:
                row = list(expected[key])
                row[educator] = None
                expected[key] = tuple(row)
        if table in CHANGED_TABLES:
            assert set(after[table]) >= set(expected), f"rows kept in {table}"
            continue
        assert len(after[table]) == len(rows) - len(deleted_ids), (
            f"row count of {table}"
        )
        assert after[table] == expected, f"rows kept in {table}"


def user_ids(connection: sa.Connection, district_id: str) -> set[int]:
    return set(
        connection.execute(
            sa.select(User.id).where(User.district_id == district_id)
        ).scalars()
    )


def store_version(district_id: str) -> int:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.select(District.store_version).where(District.id == district_id)
        ).scalar_one()


def build(district_id: str, now: datetime, retention_days: int = 365) -> BuiltDistrict:
    with get_engine().begin() as connection:
        return build_district(connection, district_id, now, retention_days)


def purge(district_id: str, now: datetime, dry_run: bool = False) -> dict[str, int]:
    with get_engine().begin() as connection:
        return purge_archived_users(connection, district_id, now, dry_run=dry_run)


NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
OLD = {"student_old", "educator_old"}


# The store function


def test_purge_deletes_only_users_past_retention(store_url):
    built = build("d", NOW)
    build("other", NOW)
    before = read_store()
    deleted = purged_ids(built, OLD)

    counts = purge("d", NOW)

    after = read_store()
    assert counts == EXPECTED_365
    assert set(before["users"]) - set(after["users"]) == deleted["users"]
    # book_requests also keeps two rows whose educator_id becomes NULL.
    assert_only_deleted(before, after, deleted)


def test_purge_keeps_archived_users_without_date(store_url):
    built = build("d", NOW)

    purge("d", NOW)

    with get_engine().connect() as connection:
        remaining = user_ids(connection, "d")
    assert built.users["student_no_date"] in remaining
    assert built.users["student_recent"] in remaining
    assert built.users["student_active"] in remaining
    assert built.users["educator_active"] in remaining


def test_purge_counts_match_deleted_ids(store_url):
    built = build("d", NOW)
    deleted = purged_ids(built, OLD)

    counts = purge("d", NOW)

    for table, ids in deleted.items():
        assert counts[table] == len(ids), table


def test_district_retention_of_30_days(store_url):
    built = build("d", NOW, retention_days=30)
    before = read_store()
    deleted = purged_ids(built, OLD | {"student_recent"})

    counts = purge("d", NOW)

    assert counts == EXPECTED_30
    assert_only_deleted(before, read_store(), deleted)


def test_purge_at_retention_boundary_keeps_user(store_url):
    build("d", NOW)

    # The old users were archived exactly 400 days before NOW.
    counts = purge("d", NOW - timedelta(days=35))

    assert counts["users"] == 0


def test_dry_run_counts_without_deleting(store_url):
    build("d", NOW)
    before = read_store()

    dry = purge("d", NOW, dry_run=True)
    unchanged = read_store()
    real = purge("d", NOW)

    assert dry == EXPECTED_365
    assert unchanged == before
    assert real == dry


def test_second_purge_deletes_nothing(store_url):
    build("d", NOW)
    purge("d", NOW)
    before = read_store()

    counts = purge("d", NOW)

    assert counts == NOTHING
    assert read_store() == before


def test_kept_students_requests_lose_educator(store_url):
    built = build("d", NOW)
    before = read_store()["book_requests"]

    purge("d", NOW)

    after = read_store()["book_requests"]
    columns = [column.name for column in BookRequest.__table__.columns]
    educator = columns.index("educator_id")
    for name in ("active_by_old", "recent_by_old"):
        request_id = built.requests[name]
        expected = list(before[request_id])
        expected[educator] = None
        assert list(after[request_id]) == expected, name


def test_pending_request_of_purged_educator_deleted(store_url):
    built = build("d", NOW)

    purge("d", NOW)

    remaining = set(read_store()["book_requests"])
    assert built.requests["active_pending_old"] not in remaining
    assert built.requests["no_date_pending"] in remaining
    assert built.requests["active_by_active"] in remaining


def test_store_version_increments_when_users_purged(store_url):
    build("d", NOW)

    purge("d", NOW, dry_run=True)
    after_dry_run = store_version("d")
    purge("d", NOW)
    after_purge = store_version("d")
    purge("d", NOW)
    after_empty_purge = store_version("d")

    assert after_dry_run == 0
    assert after_purge == 1
    assert after_empty_purge == 1


def test_purgeable_count_matches_purge(store_url):
    build("d", NOW, retention_days=30)

    with get_engine().connect() as connection:
        count = purgeable_count(connection, "d", NOW)

    assert count == 3


def test_purge_of_unknown_district_raises(store_url):
    with pytest.raises(ConfigurationError, match="'nowhere' is not registered"):
        purge("nowhere", NOW)


def test_negative_retention_raises(store_url):
    build("d", NOW, retention_days=-1)

    with pytest.raises(ConfigurationError, match="retention period of -1 days"):
        purge("d", NOW)


def test_purge_without_time_zone_raises(store_url):
    build("d", NOW)

    with pytest.raises(ValueError, match="time zone"):
        purge("d", NOW.replace(tzinfo=None))


def test_retention_beyond_calendar_purges_nothing(store_url):
    build("d", NOW, retention_days=2_000_000_000)

    counts = purge("d", NOW)

    assert counts == NOTHING


# The flow


def run_flow(**parameters: Any) -> tuple[Any, list[dict[str, Any]]]:
    state = purge_archived_users_flow(**parameters, return_state=True)
    return state, state.result(raise_on_failure=False)


def sync_runs(district_id: str) -> list[sa.Row]:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.select(SyncRun)
            .where(SyncRun.district_id == district_id)
            .where(SyncRun.flow_name == "purge-archived-users")
        ).all()


def test_flow_purges_every_registered_district(store_url):
    now = datetime.now(UTC)
    first = build("d", now)
    second = build("other", now, retention_days=30)
    before = read_store()
    deleted = purged_ids(first, OLD)
    for table, ids in purged_ids(second, OLD | {"student_recent"}).items():
        deleted[table] = deleted[table] | ids

    state, summaries = run_flow()

    by_district = {summary["district_id"]: summary for summary in summaries}
    assert state.is_completed()
    assert state.message == "5 users purged in 2 districts."
    assert by_district["d"]["counts"] == EXPECTED_365
    assert by_district["other"]["counts"] == EXPECTED_30
    assert by_district["d"]["status"] == "completed"
    assert_only_deleted(before, read_store(), deleted)


def test_flow_records_a_run_per_district(store_url):
    build("d", datetime.now(UTC))

    state, summaries = run_flow(district_id="d")

    (run,) = sync_runs("d")
    assert run.id == summaries[0]["run_id"]
    assert run.status == "completed"
    assert run.dry_run is False
    assert run.finished_at is not None
    assert run.flow_run_id == str(state.state_details.flow_run_id)
    assert run.counts["users"] == {"purged": 2}
    assert run.counts["book_requests"] == {"purged": 3, "unlinked": 2}
    assert run.counts["change_log"] == {"purged": 6}


def test_flow_dry_run_deletes_nothing(store_url):
    build("d", datetime.now(UTC))
    before = read_store()

    state, summaries = run_flow(dry_run=True)

    (run,) = sync_runs("d")
    assert state.is_completed()
    assert summaries[0]["counts"] == EXPECTED_365
    assert run.dry_run is True
    assert run.counts["users"] == {"purged": 2}
    assert_only_deleted(before, read_store(), {})


def test_failed_district_does_not_stop_others(store_url):
    now = datetime.now(UTC)
    # Districts are purged in id order, so the failing one goes first.
    build("a-broken", now, retention_days=-1)
    built = build("b-good", now)
    before = read_store()
    deleted = purged_ids(built, OLD)

    state, summaries = run_flow()

    by_district = {summary["district_id"]: summary for summary in summaries}
    (failed_run,) = sync_runs("a-broken")
    assert state.is_failed()
    assert state.message == "The purge failed in 1 of 2 districts: a-broken."
    assert by_district["a-broken"]["status"] == "failed"
    assert "retention period of -1 days" in by_district["a-broken"]["reason"]
    assert failed_run.status == "failed"
    assert "retention period of -1 days" in failed_run.reason
    assert failed_run.finished_at is not None
    assert by_district["b-good"]["status"] == "completed"
    assert by_district["b-good"]["counts"] == EXPECTED_365
    assert_only_deleted(before, read_store(), deleted)


def test_unknown_district_fails_without_run(store_url):
    build("d", datetime.now(UTC))
    before = read_store()

    state, summaries = run_flow(district_id="nowhere")

    assert state.is_failed()
    assert summaries[0]["status"] == "failed"
    assert summaries[0]["run_id"] is None
    assert "'nowhere' is not registered" in summaries[0]["reason"]
    assert read_store() == before


def test_failed_run_update_rolls_back_purge(store_url, monkeypatch):
    now = datetime.now(UTC)
    build("a-first", now)
    second = build("b-second", now)
    original = flows.purge.finish_run

    def finish_failing_first(connection, run_id, **values):
        district = connection.execute(
            sa.select(SyncRun.district_id).where(SyncRun.id == run_id)
        ).scalar_one()
        if district == "a-first" and values["status"] == "completed":
            raise StoreError("Forced failure of the run's update.", transient=False)
        original(connection, run_id, **values)

    monkeypatch.setattr(flows.purge, "finish_run", finish_failing_first)
    before = read_store()
    deleted = purged_ids(second, OLD)

    state, summaries = run_flow()

    (failed_run,) = sync_runs("a-first")
    assert state.is_failed()
    assert summaries[0]["reason"] == "Forced failure of the run's update."
    assert failed_run.status == "failed"
    assert summaries[1]["status"] == "completed"
    # a-first keeps every row; b-second loses its old users.
    assert_only_deleted(before, read_store(), deleted)


def test_flow_publishes_ids_and_counts_only(store_url):
    build("d", datetime.now(UTC))

    state, summaries = run_flow()

    APILogWorker.drain_all(timeout=5)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    report = by_key["purge-archived-users"]
    counts = "| 2 | 2 | 3 | 1 | 3 | 2 | 1 | 2 | 6 |"
    row = f"| d | {summaries[0]['run_id']} | completed {counts}"
    published = json.dumps(report.data) + "\n".join(log.message for log in logs)
    assert report.type == "markdown"
    assert row in report.data
    assert "district d: purged 2 users" in published
    assert GIVEN not in published
    assert EMAIL_DOMAIN not in published
    assert json.dumps(summaries).count(GIVEN) == 0


def test_flow_with_no_districts_completes(store_url):
    state, summaries = run_flow()

    assert state.is_completed()
    assert summaries == []


# The only deletion of users


# Forms of a DELETE on the users table: SQLAlchemy Core and ORM, and SQL text.
USER_DELETE_PATTERNS = [
    r"\bdelete\(\s*(User|Student|Educator)\b",
    r"\b(User|Student|Educator)\.__table__\.delete\(",
    r"\busers?_table\.delete\(",
    r"\bdelete\(\s*(User|Student|Educator)\.__table__",
    r"\bDELETE\s+FROM\s+[\"`]?users\b",
    r"\btable\(\s*[\"']users[\"']",
    r"session\.delete\(\s*(user|student|educator)\b",
    r"\.query\(\s*(User|Student|Educator)\b.*\.delete\(",
]


def modules_deleting_users() -> set[str]:
    found = set()
    for folder in ("rostersync", "flows", "tasks"):
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for pattern in USER_DELETE_PATTERNS:
                if re.search(pattern, text, flags=re.IGNORECASE):
                    found.add(path.relative_to(REPOSITORY).as_posix())
    return found


def test_purge_module_alone_deletes_users():
    assert modules_deleting_users() == {"rostersync/store/purge.py"}
