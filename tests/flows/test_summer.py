"""A whole summer on one district, on SQLite and PostgreSQL.

The regular year, a summer-school onboarding rejected and then accepted, a CSV
summer roster merged, the reversion, a campus merge and its undo. After each step
the store is compared, table by table, with the state the district's files
describe.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from flows.daily_sync import daily_sync
from flows.revert_rules import revert_sharing_rules
from flows.school_mapping import MERGE, update_school_mapping
from flows.summer_school import summer_school_onboarding
from flows.undo_run import undo_run
from rostersync.results import SyncResult
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.models import BookAssignment, ReadingActivity, User
from tests.summer_roster import (
    District,
    Person,
    regular_district,
    write_clever,
    write_oneroster,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

DISTRICT = "d"
SUMMER = "sch-s"
SUMMER_ONLY = {"sum-1", "sum-2", "sum-3", "sum-4", "tch-s"}
CSV_ONLY = "csv-1"
# Users in a regular school and the summer school.
IN_BOTH = {"stu-1": "sch-a", "stu-16": "sch-b"}
# Every table a rejected onboarding must leave alone.
INTEGRATION_TABLES = (
    "schools", "school_mappings", "users", "sections", "enrollments",
    "sharing_rule_sets", "integration_changes", "share_requests", "integrations",
)  # fmt: skip


def today() -> date:
    return datetime.now(ZoneInfo("America/New_York")).date()


def summer_district(regular: District) -> District:
    """The regular district with the summer school shared: its own teacher, four
    summer-only students, and the first student of each regular school."""
    summer = regular.copy()
    summer.add_school(SUMMER, "Summer Academy")
    summer.add_person(Person("tch-s", "teacher", (SUMMER,)))
    for number in range(1, 5):
        summer.add_person(Person(f"sum-{number}", "student", (SUMMER,), "05"))
    in_both = {}
    for person in regular.people.values():
        school = person.schools[0]
        if person.role == "student" and school not in in_both.values():
            in_both[person.id] = school
            summer.people[person.id].schools = (school, SUMMER)
    members = ["tch-s", *sorted(SUMMER_ONLY - {"tch-s"}), *in_both]
    summer.add_section("sec-s", SUMMER, members)
    return summer


def summer_csv() -> District:
    """The district's own summer roster: one student the provider lacks, and
    stu-1 with another grade than the provider's."""
    extra = District()
    extra.add_school(SUMMER, "Summer Academy")
    extra.add_person(Person(CSV_ONLY, "student", (SUMMER,), "06"))
    extra.add_person(Person("stu-1", "student", (SUMMER,), "11"))
    extra.add_section("sec-s2", SUMMER, [CSV_ONLY, "stu-1"])
    return extra


# Reading the store


def table_rows(table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` as text, ordered by its first column."""
    with get_engine().connect() as connection:
        rows = connection.execute(sa.text(f"select * from {table} order by 1"))
        return [{k: str(v) for k, v in row._mapping.items()} for row in rows]


def roster_state() -> dict[str, dict]:
    """The roster tables keyed by provider ids, schools named by provider id."""
    with get_engine().connect() as connection:
        schools = {
            row.id: row
            for row in connection.execute(
                sa.text(
                    "select id, provider_id, status, is_summer_school, managed_by, "
                    "merged_into_id from schools"
                )
            )
        }
        name = {sid: row.provider_id for sid, row in schools.items()}
        users = {}
        for row in connection.execute(
            sa.text(
                "select provider_id, status, grade, school_id, school_ids from users"
            )
        ):
            ids = row.school_ids
            if isinstance(ids, str):
                import json

                ids = json.loads(ids)
            users[row.provider_id] = (
                row.status,
                name.get(row.school_id),
                tuple(sorted(name[s] for s in ids or ())),
            )
        sections = {
            row.provider_id: (row.status, name.get(row.school_id))
            for row in connection.execute(
                sa.text("select provider_id, status, school_id from sections")
            )
        }
        enrollments = {
            (row.section, row.user_id, row.role): row.status
            for row in connection.execute(
                sa.text(
                    "select s.provider_id as section, u.provider_id as user_id, "
                    "e.role, e.status from enrollments e join sections s on "
                    "s.id = e.section_id join users u on u.id = e.user_id"
                )
            )
        }
        mapping = {
            row.provider_school_id: (name[row.school_id], bool(row.is_alias))
            for row in connection.execute(
                sa.text(
                    "select provider_school_id, school_id, is_alias "
                    "from school_mappings"
                )
            )
        }
    return {
        "schools": {
            row.provider_id: (
                row.status,
                bool(row.is_summer_school),
                row.managed_by,
                name.get(row.merged_into_id),
            )
            for row in schools.values()
        },
        "mapping": mapping,
        "users": users,
        "sections": sections,
        "enrollments": enrollments,
    }


def expected_state(
    district: District,
    *,
    archived_users: dict[str, tuple[str, ...]] | None = None,
    archived_sections: dict[str, str] | None = None,
    schools: dict[str, tuple] | None = None,
    extra_users: dict[str, tuple[str, ...]] | None = None,
    extra_sections: dict[str, tuple[str, list[tuple[str, str]]]] | None = None,
) -> dict[str, dict]:
    """The store a sync of ``district`` leaves, plus archived and merged rows.

    ``archived_users`` maps a user to the schools it had when archived;
    ``extra_users`` and ``extra_sections`` come from a second source.
    """
    users = {
        p.id: ("active", p.schools[0], tuple(sorted(p.schools)))
        for p in district.people.values()
    }
    for uid, ids in (extra_users or {}).items():
        users[uid] = ("active", ids[0], tuple(sorted(ids)))
    for uid, ids in (archived_users or {}).items():
        users[uid] = ("archived", ids[0], tuple(sorted(ids)))
    sections = {sid: ("active", school) for sid, school in district.sections.items()}
    enrollments = {
        (sid, member, district.people[member].role): "active"
        for sid, members in district.members.items()
        for member in members
    }
    for sid, (school, members) in (extra_sections or {}).items():
        sections[sid] = ("active", school)
        for member, role in members:
            enrollments[(sid, member, role)] = "active"
    for sid, school in (archived_sections or {}).items():
        sections[sid] = ("archived", school)
        for key in enrollments:
            if key[0] == sid:
                enrollments[key] = "archived"
    for key in enrollments:
        if users.get(key[1], ("active",))[0] == "archived":
            enrollments[key] = "archived"
    school_rows = {sid: ("active", False, "sync", None) for sid in district.schools}
    school_rows.update(schools or {})
    return {
        "schools": school_rows,
        "mapping": {sid: (sid, False) for sid in school_rows},
        "users": users,
        "sections": sections,
        "enrollments": enrollments,
    }


def assert_store(expected: dict[str, dict]) -> None:
    actual = roster_state()
    for table in ("schools", "mapping", "users", "sections", "enrollments"):
        assert actual[table] == expected[table], table


def sync(**parameters: Any) -> SyncResult:
    state = daily_sync(
        district_id=DISTRICT, wait_for_approval=False, return_state=True, **parameters
    )
    return state.result(raise_on_failure=False)


def run_row(run_id: str) -> Any:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select status, findings from sync_runs where id = :id"),
            {"id": run_id},
        ).one()


def findings_of(run_id: str) -> list[dict]:
    findings = run_row(run_id).findings
    if isinstance(findings, str):
        import json

        findings = json.loads(findings)
    return findings


# The ClassLink (OneRoster) summer


def test_summer_of_one_district(store_url, tmp_path: Path):
    source = tmp_path / "provider"
    regular = regular_district()
    write_oneroster(source, regular)
    add_district(
        get_engine(),
        DISTRICT,
        name="Summer district",
        provider="oneroster-csv",
        source=str(source),
        removal_threshold=2,
    )

    # The regular school year.
    first = sync()
    assert first.status == "completed"
    assert_store(expected_state(regular))

    # The district has not shared the summer school with the product yet.
    extra_folder = write_oneroster(tmp_path / "summer-csv", summer_csv())
    onboarding = {
        "district_id": DISTRICT,
        "school_id": SUMMER,
        "school_name": "Summer Academy",
        "start_date": today() - timedelta(days=1),
        "end_date": today() + timedelta(days=30),
        "summer_roster": str(extra_folder),
        "by": "ops",
        "reason": "summer program",
    }
    before = {table: table_rows(table) for table in INTEGRATION_TABLES}
    rejected = summer_school_onboarding(**onboarding, return_state=True)
    assert rejected.is_failed()
    assert "Ask the district to share the summer school" in rejected.message
    for table in INTEGRATION_TABLES:
        assert table_rows(table) == before[table], table

    # The district shares it; the onboarding enrolls it and syncs that school.
    summer = summer_district(regular)
    write_oneroster(source, summer)
    accepted = summer_school_onboarding(**onboarding, return_state=True)
    summary = accepted.result()
    assert accepted.is_completed(), accepted.message
    assert summary["share_request"] == "not needed"
    assert summary["rule_set"] == "summer@1"
    assert summary["counts"]["students"]["archived"] == 0
    summer_school_row = ("active", True, "operator", None)
    during = expected_state(
        summer,
        schools={SUMMER: summer_school_row},
        extra_users={CSV_ONLY: (SUMMER,)},
        extra_sections={
            "sec-s2": (SUMMER, [(CSV_ONLY, "student"), ("stu-1", "student")])
        },
    )
    assert_store(during)
    conflicts = [
        f for f in findings_of(summary["sync_run_id"])
        if f["check"] == "second_source_conflict"
    ]  # fmt: skip
    assert [f["provider_id"] for f in conflicts] == ["stu-1"]
    assert "grade" in conflicts[0]["message"]
    with get_engine().connect() as connection:
        grade = connection.execute(
            sa.select(User.grade).where(User.provider_id == "stu-1")
        ).scalar_one()
    assert grade == regular.people["stu-1"].grade

    # A daily sync under the summer set keeps everyone.
    daily = sync()
    assert daily.status == "completed"
    assert daily.rule_set == "summer@1"
    assert_store(during)

    # The reversion archives exactly the summer-only users, without a hold.
    reverted = revert_sharing_rules(district_id=DISTRICT, by="ops", return_state=True)
    assert reverted.is_completed(), reverted.message
    report = reverted.result()["districts"][0]
    assert report["sync_status"] == "completed"
    assert report["leaving_students"] == 5
    assert report["leaving_educators"] == 1
    assert report["kept_in_both_sets"] == 2
    after = expected_state(
        regular,
        archived_users={
            **{uid: (SUMMER,) for uid in SUMMER_ONLY},
            CSV_ONLY: (SUMMER,),
        },
        archived_sections={"sec-s": SUMMER},
        schools={SUMMER: ("archived", True, "operator", None)},
    )
    after["sections"]["sec-s2"] = ("archived", SUMMER)
    after["enrollments"].update(
        {
            (
                "sec-s",
                uid,
                "teacher" if uid.startswith("tch") else "student",
            ): "archived"
            for uid in [*SUMMER_ONLY, *IN_BOTH]
        }
    )
    after["enrollments"].update(
        {
            ("sec-s2", CSV_ONLY, "student"): "archived",
            ("sec-s2", "stu-1", "student"): "archived",
        }
    )
    assert_store(after)

    # Write the summer roster away: the regular set no longer reads it.
    write_oneroster(source, regular)
    # Portal activity of school B's people, which a merge must keep.
    _add_activity(["stu-16", "stu-17", "stu-18"], "tch-b")
    activity = {t: table_rows(t) for t in ("book_assignments", "reading_activity")}

    # A dry run of the merge moves nothing.
    preview = update_school_mapping(
        district_id=DISTRICT, action=MERGE, school_id="sch-a",
        merge_school_ids=["sch-b"], dry_run=True, by="ops", return_state=True,
    )  # fmt: skip
    assert preview.is_completed(), preview.message
    assert preview.result()["moved"]["students"] == 15
    assert_store(after)

    merged = update_school_mapping(
        district_id=DISTRICT, action=MERGE, school_id="sch-a",
        merge_school_ids=["sch-b"], by="ops", reason="campus merge",
        return_state=True,
    )  # fmt: skip
    assert merged.is_completed(), merged.message
    merge_run = merged.result()["run_id"]
    moved = _moved_to_a(after)
    assert_store(moved)
    for table, rows in activity.items():
        assert table_rows(table) == rows, table

    # The next sync (one grade changed) keeps the merge and archives no account.
    regular.people["stu-2"].grade = "12"
    write_oneroster(source, regular)
    next_sync = sync()
    assert next_sync.counts["students"] == {
        "created": 0, "updated": 1, "archived": 0, "restored": 0, "unchanged": 29,
    }  # fmt: skip
    assert_store(moved)

    # Undoing the merge restores the mapping and everyone's school.
    undone = undo_run(
        run_id=merge_run, by="ops", reason="wrong campus", return_state=True
    )
    assert undone.is_completed(), undone.message
    assert_store(after)
    for table, rows in activity.items():
        assert table_rows(table) == rows, table

    # The rule sets: the regular one, and the summer set before and after it was
    # reverted.
    with get_engine().connect() as connection:
        rule_sets = connection.execute(
            sa.text(
                "select name, version, kind, reverted_at is not null, school_ids "
                "from sharing_rule_sets order by id"
            )
        ).all()
    assert [tuple(row[:4]) for row in rule_sets] == [
        ("regular", 1, "regular", False),
        ("summer", 1, "custom", False),
        ("summer", 2, "custom", True),
    ]
    assert table_rows("share_requests") == []

    # Every change of rules or mapping is audited with who made it.
    with get_engine().connect() as connection:
        audited = connection.execute(
            sa.text("select kind, changed_by from integration_changes order by id")
        ).all()
    assert [tuple(row) for row in audited] == [
        ("integration_created", "cli"),
        ("sharing_rules_changed", "ops"),
        ("summer_school_onboarded", "ops"),
        ("sharing_rules_reverted", "ops"),
        ("campuses_merged", "ops"),
        ("school_mapping_undone", "ops"),
    ]


def _moved_to_a(state: dict[str, dict]) -> dict[str, dict]:
    """``state`` after school B merged into school A."""
    moved = {table: dict(rows) for table, rows in state.items()}
    for uid, (status, primary, ids) in state["users"].items():
        moved["users"][uid] = (
            status,
            "sch-a" if primary == "sch-b" else primary,
            tuple(sorted({"sch-a" if s == "sch-b" else s for s in ids})),
        )
    for sid, (status, school) in state["sections"].items():
        moved["sections"][sid] = (status, "sch-a" if school == "sch-b" else school)
    moved["schools"]["sch-b"] = ("archived", False, "sync", "sch-a")
    moved["mapping"]["sch-b"] = ("sch-a", True)
    return moved


def _add_activity(student_ids: list[str], educator_id: str) -> None:
    now = datetime.now(UTC)
    with get_engine().begin() as connection:
        ids = dict(
            connection.execute(
                sa.select(User.provider_id, User.id).where(
                    User.provider_id.in_([*student_ids, educator_id])
                )
            ).all()
        )
        for number, student in enumerate(student_ids):
            connection.execute(
                sa.insert(BookAssignment).values(
                    district_id=DISTRICT, educator_id=ids[educator_id],
                    student_id=ids[student], book_id=f"book-{number}",
                    school_year=2026, shelf="current", assigned_at=now,
                )
            )  # fmt: skip
            connection.execute(
                sa.insert(ReadingActivity).values(
                    student_id=ids[student], book_id=f"book-{number}",
                    school_year=2026, seconds_read=600 * (number + 1),
                    pages_read=10, percent_complete=12.5,
                    first_read_at=now, last_read_at=now,
                )
            )  # fmt: skip


# Clever: the product adds the school, then the district shares it


def test_clever_share_request_is_fulfilled_when_data_arrives(store_url, tmp_path):
    source = tmp_path / "clever"
    regular = regular_district(students_per_school=5)
    write_clever(source, regular)
    add_district(
        get_engine(), DISTRICT, name="Clever district", provider="clever",
        source=str(source),
    )  # fmt: skip
    assert sync().status == "completed"

    onboarded = summer_school_onboarding(
        district_id=DISTRICT, school_id=SUMMER, school_name="Summer Academy",
        start_date=today(), end_date=today() + timedelta(days=20), by="ops",
        return_state=True,
    )  # fmt: skip
    assert onboarded.is_completed(), onboarded.message
    assert onboarded.result()["share_request"] == "pending"
    assert _share_requests() == [(SUMMER, "pending")]

    waiting = sync()
    pending = [f for f in waiting.findings if f["check"] == "share_request_pending"]
    assert [f["provider_id"] for f in pending] == [SUMMER]
    assert waiting.share_requests["pending"] == [SUMMER]

    # The district shares the school: its data arrives with the next sync.
    summer = regular.copy()
    summer.add_school(SUMMER, "Summer Academy")
    summer.add_person(Person("tch-s", "teacher", (SUMMER,)))
    summer.add_person(Person("sum-1", "student", (SUMMER,), "05"))
    summer.people["stu-1"].schools = ("sch-a", SUMMER)
    summer.add_section("sec-s", SUMMER, ["tch-s", "sum-1", "stu-1"])
    write_clever(source, summer)
    arrived = sync()
    assert arrived.status == "completed"
    assert arrived.share_requests["fulfilled"] == [SUMMER]
    assert _share_requests() == [(SUMMER, "fulfilled")]
    assert_store(
        expected_state(summer, schools={SUMMER: ("active", True, "operator", None)})
    )


def _share_requests() -> list[tuple[str, str]]:
    with get_engine().connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "select provider_school_id, status from share_requests order by id"
                )
            )
        ]
