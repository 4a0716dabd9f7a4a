"""Held plans decided by operators, expected removals, contracts, data managers and
unchanged pulls, on a generated OneRoster CSV district."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.daily_sync import daily_sync
from rostersync.cli import main, run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district, update_district
from tests import datasets
from tests.flows.test_daily_sync import store_rows as roster_rows

pytestmark = pytest.mark.usefixtures("prefect_harness")

DISTRICT = "safe-1"


def make_district(tmp_path: Path, **options) -> Path:
    """Register a generated 60-student district read from OneRoster CSV files."""
    folder = write_demo_district(
        tmp_path / "roster", DemoSize(students=60, schools=2), district=DISTRICT
    )
    add_district(
        get_engine(),
        DISTRICT,
        name="Safety test district",
        provider="oneroster-csv",
        source=str(folder),
        **options,
    )
    return folder


def students(folder: Path) -> list[str]:
    return [
        user["sourcedid"]
        for user in datasets.oneroster_users(folder)
        if user["role"] == "student"
    ]


def teachers(folder: Path) -> list[str]:
    return [
        user["sourcedid"]
        for user in datasets.oneroster_users(folder)
        if user["role"] == "teacher"
    ]


def statuses(provider_ids: list[str]) -> set[str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            sa.text("select provider_id, status from users")
        ).all()
    wanted = set(provider_ids)
    return {status for provider_id, status in rows if provider_id in wanted}


def run_row(run_id: str) -> sa.Row:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text(
                "select status, decision, decided_by, decision_reason, decided_at "
                "from sync_runs where id = :id"
            ),
            {"id": run_id},
        ).one()


def stored_plans(run_id: str) -> int:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select count(*) from stored_plans where run_id = :id"),
            {"id": run_id},
        ).scalar_one()


def held_run(tmp_path: Path, removed: int = 15) -> tuple[Path, list[str], str]:
    """Sync the district, unshare ``removed`` students, and return the held run."""
    folder = make_district(tmp_path)
    assert run_sync(DISTRICT).status == "completed"
    gone = students(folder)[:removed]
    datasets.remove_oneroster_users(folder, set(gone))
    result = run_sync(DISTRICT)
    assert result.status == "held"
    return folder, gone, result.run_id or ""


# Held plans


def test_approve_applies_exactly_the_stored_plan(store_url, tmp_path, capsys):
    folder, gone, run_id = held_run(tmp_path)
    before = roster_rows()
    # The files change again after the hold: approval must apply the stored
    # plan, not a new pull.
    datasets.remove_oneroster_users(folder, set(students(folder)[:5]))

    status = main(["runs", "approve", run_id, "--by", "ops-1", "--reason", "moved"])

    assert status == 0
    assert statuses(gone) == {"archived"}
    with get_engine().connect() as connection:
        archived = connection.execute(
            sa.text(
                "select u.provider_id from change_log c join users u "
                "on u.id = c.entity_id where c.run_id = :id and c.entity = 'users'"
            ),
            {"id": run_id},
        ).scalars()
        assert sorted(archived) == sorted(gone)
    after = roster_rows()
    assert len(after["users"]) == len(before["users"])


def test_approval_records_who_when_and_why(store_url, tmp_path):
    _, _, run_id = held_run(tmp_path)

    main(["runs", "approve", run_id, "--by", "ops-1", "--reason", "moved away"])

    row = run_row(run_id)
    assert row.status == "completed"
    assert row.decision == "approved"
    assert row.decided_by == "ops-1"
    assert row.decision_reason == "moved away"
    assert row.decided_at is not None
    assert stored_plans(run_id) == 0


def test_reject_archives_nothing(store_url, tmp_path):
    _, gone, run_id = held_run(tmp_path)
    before = roster_rows()

    status = main(["runs", "reject", run_id, "--by", "ops-2", "--reason", "mistake"])

    assert status == 0
    assert roster_rows() == before
    assert statuses(gone) == {"active"}
    row = run_row(run_id)
    assert (row.status, row.decision, row.decided_by) == (
        "rejected",
        "rejected",
        "ops-2",
    )


def test_stale_plan_is_refused(store_url, tmp_path, capsys):
    folder, gone, run_id = held_run(tmp_path)
    # Another applied run changes the store after the plan was made.
    write_demo_district(folder, DemoSize(students=61, schools=2), district=DISTRICT)
    assert run_sync(DISTRICT).status == "completed"
    before = roster_rows()
    capsys.readouterr()

    status = main(["runs", "approve", run_id, "--by", "ops-1", "--reason", "ok"])

    assert status == 1
    assert "run the sync again" in capsys.readouterr().err.lower()
    assert roster_rows() == before
    assert run_row(run_id).status == "stale"


def test_decided_run_cannot_be_decided_again(store_url, tmp_path, capsys):
    _, _, run_id = held_run(tmp_path)
    main(["runs", "reject", run_id, "--by", "ops-2", "--reason", "mistake"])
    capsys.readouterr()

    status = main(["runs", "approve", run_id, "--by", "ops-1", "--reason", "ok"])

    assert status == 2
    assert "is rejected (rejected by 'ops-2'), not held" in capsys.readouterr().err


def test_unknown_run_is_a_usage_error(store_url, tmp_path, capsys):
    make_district(tmp_path)

    status = main(["runs", "approve", "no-such-run", "--by", "a", "--reason", "b"])

    assert status == 2
    assert "'no-such-run' does not exist" in capsys.readouterr().err


def test_runs_list_shows_held_runs(store_url, tmp_path, capsys):
    _, _, run_id = held_run(tmp_path)
    capsys.readouterr()

    main(["runs", "list", "--status", "held"])

    assert run_id in capsys.readouterr().out


def test_expected_removals_pass_without_hold(store_url, tmp_path):
    folder = make_district(tmp_path)
    run_sync(DISTRICT)
    gone = students(folder)[:15]
    datasets.remove_oneroster_users(folder, set(gone))

    state = daily_sync(
        DISTRICT, expected_removals=gone, wait_for_approval=False, return_state=True
    )

    assert state.result().status == "completed"
    assert statuses(gone) == {"archived"}


def test_removals_outside_the_expected_set_still_count(store_url, tmp_path):
    folder = make_district(tmp_path)
    run_sync(DISTRICT)
    gone = students(folder)[:15]
    datasets.remove_oneroster_users(folder, set(gone))

    state = daily_sync(
        DISTRICT, expected_removals=gone[:3], wait_for_approval=False, return_state=True
    )

    result = state.result()
    assert result.status == "held"
    assert result.guard["counted_users"] == 12


# Contracts


def test_expired_contract_skips_the_district(store_url, tmp_path, capsys):
    yesterday = date.today() - timedelta(days=2)
    make_district(tmp_path, contract_end=yesterday)

    status = main(["sync", DISTRICT])

    out = capsys.readouterr().out
    assert status == 4
    assert f"contract ended on {yesterday}" in out
    assert roster_rows()["users"] == []


def test_contract_not_started_skips_the_district(store_url, tmp_path):
    make_district(tmp_path, contract_start=date.today() + timedelta(days=3))

    result = run_sync(DISTRICT)

    assert result.status == "skipped"
    assert "starts on" in (result.reason or "")


def test_new_contract_resumes_syncing(store_url, tmp_path):
    make_district(tmp_path, contract_end=date.today() - timedelta(days=2))
    run_sync(DISTRICT)

    update_district(
        get_engine(),
        DISTRICT,
        changed_by="ops",
        contract_end=date.today() + timedelta(days=300),
    )

    assert run_sync(DISTRICT).status == "completed"


def test_contract_ending_soon_is_a_warning_finding(store_url, tmp_path):
    make_district(tmp_path, contract_end=date.today() + timedelta(days=20))

    result = run_sync(DISTRICT)

    checks = {(row["check"], row["level"]) for row in result.finding_totals}
    assert ("contract_ending", "warning") in checks


# Data manager


def test_data_manager_loss_and_replacement(store_url, tmp_path, capsys):
    folder = write_demo_district(
        tmp_path / "roster", DemoSize(students=60, schools=2), district=DISTRICT
    )
    manager, successor = teachers(folder)[:2]
    make_district_from(folder, data_manager_id=manager)
    assert run_sync(DISTRICT).status == "completed"
    datasets.remove_oneroster_users(folder, {manager})
    before = roster_rows()

    suspended = run_sync(DISTRICT)
    again = run_sync(DISTRICT)

    assert suspended.status == "suspended"
    assert roster_rows() == before
    assert again.status == "suspended"
    assert again.pull == {}
    assert integration_status() == "suspended"

    capsys.readouterr()
    refused = main(["district", "set-data-manager", DISTRICT, manager, "--by", "ops"])
    assert refused == 1
    assert "not in the shared data" in capsys.readouterr().err
    assert integration_status() == "suspended"

    accepted = main(
        ["district", "set-data-manager", DISTRICT, successor, "--by", "ops"]
    )
    assert accepted == 0
    assert integration_status() == "active"
    assert run_sync(DISTRICT).status == "completed"
    assert statuses([manager]) == {"archived"}


def test_data_manager_changes_are_audited(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "roster", DemoSize(students=60, schools=2), district=DISTRICT
    )
    manager, successor = teachers(folder)[:2]
    make_district_from(folder, data_manager_id=manager)
    datasets.remove_oneroster_users(folder, {manager})
    run_sync(DISTRICT)

    main(["district", "set-data-manager", DISTRICT, successor, "--by", "ops-3"])

    with get_engine().connect() as connection:
        kinds = connection.execute(
            sa.text(
                "select kind, changed_by from integration_changes "
                "where district_id = :d order by id"
            ),
            {"d": DISTRICT},
        ).all()
    assert [tuple(row) for row in kinds] == [
        ("integration_created", "cli"),
        ("integration_suspended", "daily-sync"),
        ("data_manager_changed", "ops-3"),
    ]


def make_district_from(folder: Path, **options) -> None:
    add_district(
        get_engine(),
        DISTRICT,
        name="Safety test district",
        provider="oneroster-csv",
        source=str(folder),
        **options,
    )


def integration_status() -> str:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select status from integrations where district_id = :d"),
            {"d": DISTRICT},
        ).scalar_one()


# Unchanged pulls


def test_identical_pull_is_reported_unchanged_since_its_date(store_url, tmp_path):
    make_district(tmp_path)
    run_sync(DISTRICT)
    today = datetime.now(UTC).astimezone().date()

    result = run_sync(DISTRICT)

    assert result.status == "completed"
    assert result.unchanged_since in {
        (today - timedelta(days=1)).isoformat(),
        today.isoformat(),
    }
    assert (result.reason or "").startswith("Roster unchanged since")


def test_unchanged_pull_archives_nobody_the_store_gained(store_url, tmp_path):
    folder = make_district(tmp_path)
    run_sync(DISTRICT)
    gone = students(folder)[:3]
    datasets.remove_oneroster_users(folder, set(gone))
    run_sync(DISTRICT)
    # An operator restores the three by hand; the pull stays the same.
    with get_engine().begin() as connection:
        connection.execute(
            sa.text("update users set status = 'active', archived_at = null")
        )

    result = run_sync(DISTRICT)

    assert result.unchanged_since is not None
    assert statuses(gone) == {"active"}


def test_changed_pull_is_not_reported_unchanged(store_url, tmp_path):
    folder = make_district(tmp_path)
    run_sync(DISTRICT)
    datasets.remove_oneroster_users(folder, set(students(folder)[:2]))

    result = run_sync(DISTRICT)

    assert result.unchanged_since is None


def test_purge_drops_stale_held_plans(store_url, tmp_path):
    from flows.purge import purge_archived_users_flow

    folder, _, run_id = held_run(tmp_path)
    write_demo_district(folder, DemoSize(students=61, schools=2), district=DISTRICT)
    assert run_sync(DISTRICT).status == "completed"

    purge_archived_users_flow(DISTRICT)

    assert stored_plans(run_id) == 0
    assert (run_row(run_id).status, run_row(run_id).decision) == ("stale", "expired")


def test_purge_keeps_held_plans_that_can_still_apply(store_url, tmp_path):
    from flows.purge import purge_archived_users_flow

    _, _, run_id = held_run(tmp_path)

    purge_archived_users_flow(DISTRICT)

    assert stored_plans(run_id) == 1


def test_broken_pull_fails_without_suspending(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "roster", DemoSize(students=60, schools=2), district=DISTRICT
    )
    make_district_from(folder, data_manager_id=teachers(folder)[0])
    run_sync(DISTRICT)
    users = folder / "users.csv"
    users.write_text(users.read_text().splitlines()[0] + "\n")

    result = run_sync(DISTRICT)

    assert result.status == "failed"
    assert integration_status() == "active"


def test_undo_from_the_command_line_restores_and_sticks(store_url, tmp_path, capsys):
    folder = make_district(tmp_path)
    run_sync(DISTRICT)
    gone = students(folder)[:3]
    datasets.remove_oneroster_users(folder, set(gone))
    archiving = run_sync(DISTRICT)
    before = roster_rows()

    status = main(
        ["runs", "undo", archiving.run_id, "--by", "ops-4", "--reason", "unshared"]
    )

    assert status == 0
    assert statuses(gone) == {"active"}
    # The provider still lacks the three, and the same pull archives none of them.
    assert run_sync(DISTRICT).unchanged_since is not None
    assert statuses(gone) == {"active"}
    assert roster_rows() != before


def test_students_shared_again_after_approval_are_restored(store_url, tmp_path):
    folder = write_demo_district(
        tmp_path / "roster", DemoSize(students=60, schools=2), district=DISTRICT
    )
    original = (folder / "users.csv").read_text()
    make_district_from(folder)
    run_sync(DISTRICT)
    gone = students(folder)[:15]
    datasets.remove_oneroster_users(folder, set(gone))
    run_id = run_sync(DISTRICT).run_id
    main(["runs", "approve", run_id, "--by", "ops-1", "--reason", "moved"])
    # The district shares them again: the pull is the first one once more.
    write_demo_district(folder, DemoSize(students=60, schools=2), district=DISTRICT)
    assert (folder / "users.csv").read_text() == original

    result = run_sync(DISTRICT)

    assert result.counts["students"]["restored"] == 15
    assert statuses(gone) == {"active"}


def test_undo_of_approval_lasts(store_url, tmp_path):
    _, gone, run_id = held_run(tmp_path)
    main(["runs", "approve", run_id, "--by", "ops-1", "--reason", "moved"])
    main(["runs", "undo", run_id, "--by", "ops-1", "--reason", "wrong"])

    result = run_sync(DISTRICT)

    assert result.status == "completed"
    assert result.unchanged_since is not None
    assert statuses(gone) == {"active"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--by", " ", "--reason", "ok"], "--by is empty"),
        (["--by", "ops\x1b[31m", "--reason", "ok"], "control or invisible"),
        (["--by", "ops", "--reason", "x" * 2001], "keep it to 2000"),
    ],
    ids=["empty", "escape", "long"],
)
def test_bad_operator_text_is_a_usage_error(
    store_url, tmp_path, capsys, options, message
):
    _, gone, run_id = held_run(tmp_path)
    capsys.readouterr()

    status = main(["runs", "approve", run_id, *options])

    assert status == 2
    assert message in capsys.readouterr().err
    assert statuses(gone) == {"active"}


def test_deciding_a_completed_run_is_a_usage_error(store_url, tmp_path, capsys):
    make_district(tmp_path)
    run_id = run_sync(DISTRICT).run_id
    capsys.readouterr()

    status = main(["runs", "reject", run_id, "--by", "ops", "--reason", "no"])

    assert status == 2
    assert "is completed, not held" in capsys.readouterr().err


def test_decide_dry_run_is_usage_error(store_url, tmp_path, capsys):
    folder = make_district(tmp_path)
    run_sync(DISTRICT)
    datasets.remove_oneroster_users(folder, set(students(folder)[:15]))
    run_id = run_sync(DISTRICT, dry_run=True).run_id
    capsys.readouterr()

    status = main(["runs", "approve", run_id, "--by", "ops", "--reason", "ok"])

    assert status == 2
    assert "is a dry run" in capsys.readouterr().err


def test_purge_unknown_district_usage_error(store_url, capsys):
    status = main(["purge", "--district", "nowhere"])

    assert status == 2
    assert "'nowhere' is not registered" in capsys.readouterr().err


def test_skipped_run_reports_every_entity_with_zero_counts(store_url, tmp_path):
    make_district(tmp_path, contract_end=date.today() - timedelta(days=2))

    result = run_sync(DISTRICT)

    assert set(result.counts) == {
        "schools", "educators", "students", "sections", "enrollments",
    }  # fmt: skip
