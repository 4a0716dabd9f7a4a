"""Summer-school onboarding, reversion and mapping changes that go wrong or repeat."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.revert_rules import revert_sharing_rules
from flows.school_mapping import ADD_SCHOOL, MERGE, update_school_mapping
from flows.summer_school import check_program, summer_school_onboarding
from flows.undo_run import undo_run
from rostersync.cli import main
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district, load_integration, update_district
from rostersync.store.models import School, SchoolMapping, User
from rostersync.store.rules import set_regular_rules
from rostersync.store.runs import utc_now
from tests.flows.test_summer import (
    DISTRICT,
    SUMMER,
    summer_district,
    sync,
    table_rows,
    today,
)
from tests.summer_roster import Person, regular_district, write_oneroster

pytestmark = pytest.mark.usefixtures("prefect_harness")

STORE_TABLES = (
    "schools", "school_mappings", "users", "sections", "enrollments",
    "sharing_rule_sets", "integration_changes", "share_requests", "districts",
)  # fmt: skip


@pytest.fixture
def district(store_url, tmp_path: Path) -> Path:
    """A synced two-school district whose provider already shares a summer school."""
    source = tmp_path / "provider"
    write_oneroster(source, regular_district(students_per_school=4))
    add_district(
        get_engine(), DISTRICT, name="District", provider="oneroster-csv",
        source=str(source),
    )  # fmt: skip
    assert sync().status == "completed"
    write_oneroster(source, summer_district(regular_district(students_per_school=4)))
    return source


def onboard(**overrides):
    parameters = {
        "district_id": DISTRICT,
        "school_id": SUMMER,
        "school_name": "Summer Academy",
        "start_date": today() - timedelta(days=1),
        "end_date": today() + timedelta(days=20),
        "by": "ops",
        **overrides,
    }
    return summer_school_onboarding(**parameters, return_state=True)


def snapshot() -> dict[str, list]:
    return {table: table_rows(table) for table in STORE_TABLES}


def test_end_before_start_changes_nothing(district):
    before = snapshot()

    state = onboard(end_date=today() - timedelta(days=5))

    assert state.is_failed()
    assert "before it starts" in state.message
    assert snapshot() == before


def test_summer_roster_without_the_school_changes_nothing(district, tmp_path):
    other = regular_district(students_per_school=1)
    roster = write_oneroster(tmp_path / "roster", other)
    before = snapshot()

    state = onboard(summer_roster=str(roster))

    assert state.is_failed()
    assert f"no users of school {SUMMER}" in state.message
    assert snapshot() == before


def test_limited_sync_leaves_other_schools_alone(district):
    summer = summer_district(regular_district(students_per_school=4))
    summer.people["stu-2"].grade = "12"
    write_oneroster(district, summer)

    assert onboard().is_completed()

    assert _grade("stu-2") == "03"
    assert sync().status == "completed"
    assert _grade("stu-2") == "12"


def test_second_onboarding_adds_a_version_and_no_school(district):
    assert onboard().is_completed()

    again = onboard(end_date=today() + timedelta(days=40))

    assert again.result()["rule_set"] == "summer@2"
    with get_engine().connect() as connection:
        schools = connection.execute(
            sa.select(sa.func.count())
            .select_from(School)
            .where(School.provider_id == SUMMER)
        ).scalar_one()
    assert schools == 1


def test_reversion_without_a_custom_set_changes_nothing(district):
    before = snapshot()

    state = revert_sharing_rules(district_id=DISTRICT, by="ops", return_state=True)

    assert state.is_completed()
    assert "no custom sharing rule set" in state.result()["districts"][0]["reason"]
    assert snapshot() == before


def test_reversion_dry_run_writes_no_rule_or_school(district):
    assert onboard().is_completed()
    before = {t: table_rows(t) for t in ("sharing_rule_sets", "schools", "users")}

    state = revert_sharing_rules(
        district_id=DISTRICT, by="ops", dry_run=True, return_state=True
    )

    report = state.result()["districts"][0]
    assert report["archived_students"] == 4
    for table, rows in before.items():
        assert table_rows(table) == rows, table


def test_scheduled_reversion_reverts_only_due_districts(district, tmp_path):
    source = write_oneroster(tmp_path / "other", regular_district(2))
    add_district(
        get_engine(), "later", name="Later", provider="oneroster-csv",
        source=str(source),
    )  # fmt: skip
    assert onboard(
        start_date=today() - timedelta(days=30), end_date=today() - timedelta(days=2)
    ).is_completed()
    later = summer_district(regular_district(2))
    write_oneroster(source, later)
    assert onboard(
        district_id="later", end_date=today() + timedelta(days=30)
    ).is_completed()

    state = revert_sharing_rules(by="schedule", return_state=True)

    reverted = [report["district_id"] for report in state.result()["districts"]]
    assert reverted == [DISTRICT]
    assert load_integration(get_engine(), "later").rule_set.label == "summer@1"


def test_overdue_custom_set_warns_and_keeps_everyone(district):
    assert onboard(
        start_date=today() - timedelta(days=30), end_date=today() - timedelta(days=2)
    ).is_completed()

    result = sync()

    checks = [finding["check"] for finding in result.findings]
    assert "reversion_overdue" in checks
    assert result.counts["students"]["archived"] == 0


def test_merge_of_an_unknown_school_names_it(district):
    state = update_school_mapping(
        district_id=DISTRICT, action=MERGE, school_id="sch-a",
        merge_school_ids=["sch-zz"], by="ops", return_state=True,
    )  # fmt: skip

    assert state.is_failed()
    assert "sch-zz" in state.message


def test_second_merge_is_rejected(district):
    merge = {
        "district_id": DISTRICT, "action": MERGE, "school_id": "sch-a",
        "merge_school_ids": ["sch-b"], "by": "ops", "return_state": True,
    }  # fmt: skip
    assert update_school_mapping(**merge).is_completed()

    again = update_school_mapping(**merge)

    assert again.is_failed()
    assert "is an alias of portal school" in again.message


def test_added_school_joins_a_listed_regular_set(district):
    with get_engine().begin() as connection:
        set_regular_rules(
            connection, DISTRICT, frozenset({"sch-a", "sch-b"}), frozenset(),
            changed_by="ops", reason=None, now=utc_now(),
        )  # fmt: skip

    state = update_school_mapping(
        district_id=DISTRICT, action=ADD_SCHOOL, school_id="sch-new",
        school_name="New School", by="ops", return_state=True,
    )  # fmt: skip

    assert state.result()["rule_set"] == "regular@3"
    rules = load_integration(get_engine(), DISTRICT).rule_set
    assert rules.school_ids == frozenset({"sch-a", "sch-b", "sch-new"})


def test_added_school_is_kept_until_its_data_arrives(district):
    state = update_school_mapping(
        district_id=DISTRICT, action=ADD_SCHOOL, school_id="sch-new",
        school_name="New School", by="ops", return_state=True,
    )  # fmt: skip
    assert state.is_completed(), state.message

    assert sync().status == "completed"

    with get_engine().connect() as connection:
        status = connection.execute(
            sa.select(School.status)
            .join(SchoolMapping, SchoolMapping.school_id == School.id)
            .where(SchoolMapping.provider_school_id == "sch-new")
        ).scalar_one()
    assert status == "active"


def test_listed_regular_set_archives_others(district):
    regular = regular_district(students_per_school=4)
    regular.add_person(Person("stu-extra", "student", ("sch-b",), "03"))
    with get_engine().begin() as connection:
        set_regular_rules(
            connection, DISTRICT, frozenset({"sch-a"}), frozenset(),
            changed_by="ops", reason=None, now=utc_now(),
        )  # fmt: skip
    write_oneroster(district, regular)

    result = sync()

    assert result.counts["students"]["archived"] == 4
    assert _status("stu-5") == "archived"
    assert _status("stu-1") == "active"


def test_cli_lists_rules_and_mapping(district, capsys):
    assert main(["rules", "list", DISTRICT]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in rules["rule_sets"]] == ["regular"]

    assert main(["mapping", "list", DISTRICT]) == 0
    mapping = json.loads(capsys.readouterr().out)["mapping"]
    assert [row["provider_school_id"] for row in mapping] == ["sch-a", "sch-b"]


def test_cli_merge_dry_run_reports_counts(district, capsys):
    status = main(
        ["mapping", "merge", DISTRICT, "--into", "sch-a", "--merge", "sch-b",
         "--dry-run", "--by", "ops"]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert status == 0
    assert "would move 4 students, 1 educator and 1 section of 1 school" in out


def test_cli_rejected_onboarding_exits_1(store_url, tmp_path, capsys):
    source = write_oneroster(tmp_path / "p", regular_district(2))
    add_district(
        get_engine(), DISTRICT, name="D", provider="oneroster-csv", source=str(source)
    )

    status = main(
        ["summer-school", DISTRICT, "--school", SUMMER, "--name", "Summer",
         "--start", str(today()), "--end", str(today() + timedelta(days=9)),
         "--by", "ops"]
    )  # fmt: skip

    assert status == 1
    assert "ClassLink does not share school" in capsys.readouterr().err


def test_cli_unknown_district_exits_2(store_url, capsys):
    status = main(["rules", "revert", "nowhere", "--by", "ops"])

    assert status == 2
    assert "not registered" in capsys.readouterr().err


def test_cli_set_regular_saves_a_version(district, capsys):
    status = main(
        ["rules", "set-regular", DISTRICT, "--school", "sch-a", "--by", "ops"]
    )

    saved = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (saved["version"], saved["school_ids"]) == (2, ["sch-a"])


def _grade(provider_id: str) -> str:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.select(User.grade).where(User.provider_id == provider_id)
        ).scalar_one()


def _status(provider_id: str) -> str:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.select(User.status).where(User.provider_id == provider_id)
        ).scalar_one()


def test_reversion_whose_sync_failed_finishes_when_run_again(district):
    assert onboard().is_completed()
    assert sync().rule_set == "summer@1"
    users_file = district / "users.csv"
    saved = users_file.read_bytes()
    users_file.unlink()

    failed = revert_sharing_rules(district_id=DISTRICT, by="ops", return_state=True)

    report = failed.result(raise_on_failure=False)["districts"][0]
    assert report["sync_status"] == "failed"
    users_file.write_bytes(saved)
    again = revert_sharing_rules(district_id=DISTRICT, by="ops", return_state=True)
    report = again.result()["districts"][0]
    assert (report["status"], report["archived_students"]) == ("completed", 4)
    assert _status("sum-1") == "archived"


def test_limited_sync_archives_who_left_the_school(district):
    assert onboard().is_completed()
    summer = summer_district(regular_district(students_per_school=4))
    del summer.people["sum-1"]
    summer.members["sec-s"].remove("sum-1")
    summer.people["stu-2"].grade = "12"
    write_oneroster(district, summer)

    result = sync(limit_to_schools=[SUMMER], rule_set="summer")

    assert result.status == "completed", result.reason
    assert result.counts["students"]["archived"] == 1
    assert _status("sum-1") == "archived"
    assert _grade("stu-2") == "03"


@pytest.mark.parametrize(
    ("into", "merged"), [("sch-a", SUMMER), (SUMMER, "sch-b")], ids=["from", "into"]
)
def test_merge_with_summer_school_rejected(district, into, merged):
    assert onboard().is_completed()
    before = snapshot()

    state = update_school_mapping(
        district_id=DISTRICT, action=MERGE, school_id=into,
        merge_school_ids=[merged], by="ops", return_state=True,
    )  # fmt: skip

    assert state.is_failed()
    assert f"School {SUMMER} is a summer school" in state.message
    assert snapshot()["school_mappings"] == before["school_mappings"]


def test_sync_after_merge_undo_repairs_a_skipped_user(district):
    regular = regular_district(students_per_school=4)
    write_oneroster(district, regular)
    merged = update_school_mapping(
        district_id=DISTRICT, action=MERGE, school_id="sch-a",
        merge_school_ids=["sch-b"], by="ops", return_state=True,
    )  # fmt: skip
    regular.people["stu-5"].grade = "12"
    write_oneroster(district, regular)
    assert sync().counts["students"]["updated"] == 1
    undone = undo_run(
        run_id=merged.result()["run_id"], by="ops", reason="undo", return_state=True
    )
    assert undone.result().counts["users"]["skipped"] == 1
    assert _school("stu-5") == "sch-a"

    repaired = sync()

    assert repaired.counts["students"]["updated"] == 1
    assert _school("stu-5") == "sch-b"


def test_onboarding_before_the_start_syncs_nothing_yet(district):
    users = table_rows("users")

    state = onboard(
        start_date=today() + timedelta(days=3), end_date=today() + timedelta(days=30)
    )

    assert state.result()["sync_status"] == "not run before the start date"
    assert table_rows("users") == users
    assert sync().counts["students"]["archived"] == 0


def test_relative_summer_roster_is_stored_absolute(tmp_path, monkeypatch):
    roster = write_oneroster(tmp_path / "roster", regular_district(1))
    monkeypatch.chdir(tmp_path)

    program = check_program(
        DISTRICT, SUMMER, "Summer", today(), today(), None, "summer", None, None,
        "roster",
    )  # fmt: skip

    assert program.extra_source == str(roster.resolve())


def test_cli_date_out_of_range_exits_2(district, capsys):
    status = main(
        ["summer-school", DISTRICT, "--school", SUMMER, "--name", "Summer",
         "--start", str(today()), "--end", "9999-12-31", "--by", "ops"]
    )  # fmt: skip

    assert status == 2
    assert "The end date 9999-12-31 is out of range" in capsys.readouterr().err


def test_cli_reversed_dates_exit_2(district, capsys):
    status = main(
        ["summer-school", DISTRICT, "--school", SUMMER, "--name", "Summer",
         "--start", str(today()), "--end", str(today() - timedelta(days=1)),
         "--by", "ops"]
    )  # fmt: skip

    assert status == 2
    assert "before it starts" in capsys.readouterr().err


def test_cli_long_id_is_cut_in_the_error(district, capsys):
    status = main(
        ["mapping", "merge", DISTRICT, "--into", "sch-a", "--merge", "x" * 5000,
         "--by", "ops"]
    )  # fmt: skip

    err = capsys.readouterr().err
    assert status == 2
    assert len(err) < 400


def _school(provider_id: str) -> str:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.select(School.provider_id)
            .join(User, User.school_id == School.id)
            .where(User.provider_id == provider_id)
        ).scalar_one()


def test_cli_reversion_held_by_other_removals_exits_1(district, capsys):
    assert onboard().is_completed()
    update_district(get_engine(), DISTRICT, changed_by="ops", removal_threshold=0)
    summer = summer_district(regular_district(students_per_school=4))
    del summer.people["stu-3"]
    summer.members["sec-a"].remove("stu-3")
    write_oneroster(district, summer)

    status = main(["rules", "revert", DISTRICT, "--by", "ops"])

    assert status == 1
    assert "the sync ended held" in capsys.readouterr().err
    assert _status("sum-1") == "active"


def test_narrowed_regular_set_holds_the_reversion(district):
    assert onboard().is_completed()
    update_district(get_engine(), DISTRICT, changed_by="ops", removal_threshold=2)
    with get_engine().begin() as connection:
        set_regular_rules(
            connection, DISTRICT, frozenset({"sch-a"}), frozenset(),
            changed_by="ops", reason=None, now=utc_now(),
        )  # fmt: skip

    state = revert_sharing_rules(district_id=DISTRICT, by="ops", return_state=True)

    # The summer-only students and stu-5, of schools B and S, leave with the
    # summer set; school B's other students count against the threshold.
    report = state.result()["districts"][0]
    assert report["leaving_students"] == 5
    assert report["sync_status"] == "held"
    assert report["archived_students"] == 0
    assert _status("stu-6") == "active"
