"""The daily-sync flow end to end, on the real public roster sets and the demo."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from rostersync.cli import run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.errors import ConfigurationError
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from tests import datasets

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.real_input]

ROSTER_TABLES = ("schools", "school_mappings", "users", "sections", "enrollments")


def register(district_id: str, provider: str, folder: Path, **options) -> None:
    add_district(
        get_engine(),
        district_id,
        name=f"Test district {district_id}",
        provider=provider,
        source=str(folder),
        **options,
    )


def store_rows() -> dict[str, list[tuple]]:
    """Every row of the roster tables, sorted, to compare the store before and after."""
    with get_engine().connect() as connection:
        return {
            table: sorted(
                tuple(str(value) for value in row)
                for row in connection.execute(sa.text(f"select * from {table}"))
            )
            for table in ROSTER_TABLES
        }


def user_row(provider_id: str) -> sa.Row:
    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select id, status, archived_at from users where provider_id = :p"),
            {"p": provider_id},
        ).one()


def stored_users() -> list[sa.Row]:
    with get_engine().connect() as connection:
        return connection.execute(sa.text("select provider_id, role from users")).all()


def user_statuses() -> dict[str, str]:
    with get_engine().connect() as connection:
        rows = connection.execute(sa.text("select provider_id, status from users"))
        return {provider_id: status for provider_id, status in rows}


# Every set whose users a sync keeps: stable, archive, hold, restore


@pytest.fixture(params=datasets.ROSTER_SETS, ids=repr)
def roster_set(request, store_url, tmp_path):
    """A registered district on a copy of one real set, synced once."""
    chosen = request.param
    folder = chosen.copy(tmp_path / chosen.name)
    register("d", chosen.provider, folder)
    first = run_sync("d")
    assert first.status == "completed"
    return chosen, folder


def test_second_run_changes_nothing(roster_set):
    before = store_rows()

    result = run_sync("d")

    changed = sum(
        counts[action]
        for counts in result.counts.values()
        for action in ("created", "updated", "archived", "restored")
    )
    assert result.status == "completed"
    assert changed == 0
    assert store_rows() == before


def test_removed_students_are_archived_exactly(roster_set):
    chosen, folder = roster_set
    # The smallest set has two students, and removing both is an empty pull.
    removed = {chosen.student_ids(folder)[-1]}

    chosen.remove_users(folder, removed)
    result = run_sync("d")

    archived = {p for p, status in user_statuses().items() if status == "archived"}
    assert result.status == "completed"
    assert result.counts["students"]["archived"] == 1
    assert archived == removed


def test_removal_above_district_threshold_is_held(roster_set):
    chosen, folder = roster_set
    with get_engine().begin() as connection:
        connection.execute(sa.text("update districts set removal_threshold = 0"))
    before = store_rows()

    chosen.remove_users(folder, {chosen.student_ids(folder)[0]})
    result = run_sync("d")

    assert result.status == "held"
    assert result.guard["threshold"] == 0
    assert store_rows() == before


def test_student_shared_again_is_restored_with_history(roster_set):
    chosen, folder = roster_set
    student = chosen.student_ids(folder)[0]
    original_id = user_row(student).id
    chosen.remove_users(folder, {student})
    run_sync("d")

    chosen.copy(folder)
    result = run_sync("d")

    with get_engine().connect() as connection:
        history = (
            connection.execute(
                sa.text(
                    "select action from change_log where entity = 'users' "
                    "and entity_id = :id order by id"
                ),
                {"id": original_id},
            )
            .scalars()
            .all()
        )
    assert result.counts["students"]["restored"] == 1
    assert result.counts["students"]["created"] == 0
    assert user_row(student).id == original_id
    assert user_row(student).status == "active"
    assert history == ["create", "archive", "restore"]


def test_archived_student_keeps_book_assignments(roster_set):
    chosen, folder = roster_set
    student = chosen.student_ids(folder)[0]
    student_id = user_row(student).id
    with get_engine().begin() as connection:
        connection.execute(
            sa.text(
                "insert into book_assignments (district_id, educator_id, student_id, "
                "book_id, school_year, shelf, assigned_at) "
                "values ('d', :s, :s, 'book-1', 2026, 'current', :now)"
            ),
            {"s": student_id, "now": "2026-10-01 12:00:00+00:00"},
        )

    chosen.remove_users(folder, {student})
    run_sync("d")

    with get_engine().connect() as connection:
        kept = connection.execute(
            sa.text("select count(*) from book_assignments where student_id = :s"),
            {"s": student_id},
        ).scalar_one()
    assert user_row(student).status == "archived"
    assert kept == 1


# The Clever demo district


def test_clever_demo_first_sync_creates_every_shared_record(store_url, tmp_path):
    folder = datasets.copy_clever_demo(tmp_path / "clever")
    figures = datasets.clever_figures(folder)
    register("clever", "clever", folder)

    result = run_sync("clever")

    assert result.status == "completed"
    assert result.counts["students"]["created"] == figures["students"]
    assert result.counts["educators"]["created"] == figures["educators"]
    assert result.counts["schools"]["created"] == figures["schools"]
    assert result.counts["sections"]["created"] == figures["sections"]
    assert result.counts["enrollments"]["created"] == figures["enrollments"]
    assert result.quarantined == (
        figures["bad_email_users"] + figures["quarantined_enrollments"]
    )


def test_clever_demo_mass_removal_is_held(store_url, tmp_path):
    folder = datasets.copy_clever_demo(tmp_path / "clever")
    register("clever", "clever", folder)
    run_sync("clever")
    before = store_rows()
    students = [
        u["id"] for u in datasets.clever_users(folder) if "student" in u["roles"]
    ]
    # 1,096 active users: the default threshold is 5%, that is 55 users.
    datasets.remove_clever_users(folder, set(students[:56]))

    result = run_sync("clever")

    assert result.status == "held"
    assert result.counts["students"]["archived"] == 56
    assert result.guard["threshold"] == 55
    assert "56 users" in (result.reason or "")
    assert store_rows() == before
    with get_engine().connect() as connection:
        stored = connection.execute(
            sa.text("select count(*) from stored_plans where run_id = :r"),
            {"r": result.run_id},
        ).scalar_one()
    assert stored == 1


# OneRoster CSV sets


def test_lepo_set_syncs_and_is_stable(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    users = datasets.oneroster_users(folder)
    classes = datasets.read_csv(folder / "classes.csv")
    enrollments = {
        (row["classsourcedid"], row["usersourcedid"], row["role"].lower())
        for row in datasets.read_csv(folder / "enrollments.csv")
    }
    register("lepo", "oneroster-csv", folder)

    first = run_sync("lepo")
    second = run_sync("lepo")

    assert first.status == "completed"
    assert first.counts["students"]["created"] == len(users)
    assert first.counts["sections"]["created"] == len(classes)
    assert first.counts["enrollments"]["created"] == len(enrollments)
    assert second.counts["students"]["unchanged"] == len(users)
    assert second.counts["enrollments"]["unchanged"] == len(enrollments)


def test_lepo_set_removal_above_threshold_is_held(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder)
    run_sync("lepo")
    before = store_rows()
    users = [row["sourcedid"] for row in datasets.oneroster_users(folder)]

    # 20 users: the default threshold is its floor, 10 users.
    datasets.remove_oneroster_users(folder, set(users[:11]))
    result = run_sync("lepo")

    assert result.status == "held"
    assert result.guard["threshold"] == 10
    assert store_rows() == before


def test_oat_set_syncs_with_nonstandard_columns(store_url, tmp_path):
    folder = datasets.copy_oneroster(
        "oat-sa-oneroster-import/OneRosterv1p1BaseCSV", tmp_path / "oat"
    )
    users = datasets.oneroster_users(folder)
    orgs = [
        row for row in datasets.read_csv(folder / "orgs.csv") if row["type"] == "school"
    ]
    register("oat", "oneroster-csv", folder)

    first = run_sync("oat")
    second = run_sync("oat")

    assert first.status == "completed"
    assert first.counts["students"]["created"] == len(users)
    assert first.counts["schools"]["created"] == len(orgs)
    assert second.counts["students"]["unchanged"] == len(users)


@pytest.mark.parametrize(
    "relative", ["Test_full_data_set", "Test_minimal_data_set"], ids=["full", "minimal"]
)
def test_catalyst_users_of_unknown_school_block_the_run(store_url, tmp_path, relative):
    folder = datasets.copy_oneroster(
        f"catalyst-moodle-enrol-oneroster/{relative}", tmp_path / "catalyst"
    )
    users = datasets.oneroster_users(folder)
    school_orgs = {
        row["sourcedid"]
        for row in datasets.read_csv(folder / "orgs.csv")
        if row["type"] == "school"
    }
    stored_roles = {"student"} | datasets.EDUCATOR_ROLES
    unshared = [
        row
        for row in users
        if row["role"] in stored_roles
        and not set(row["orgsourcedids"].split(",")) & school_orgs
    ]
    register("catalyst", "oneroster-csv", folder)

    result = run_sync("catalyst")

    assert result.status == "failed"
    assert "failed record-level checks" in (result.reason or "")
    assert store_rows()["users"] == []
    with get_engine().connect() as connection:
        quarantined = (
            connection.execute(
                sa.text(
                    "select provider_id from quarantined_records "
                    "where run_id = :r and entity = 'users'"
                ),
                {"r": result.run_id},
            )
            .scalars()
            .all()
        )
    assert sorted(quarantined) == sorted(row["sourcedid"] for row in unshared)


def test_catalyst_delta_set_creates_its_records(store_url, tmp_path):
    folder = datasets.copy_oneroster(
        "catalyst-moodle-enrol-oneroster/oneroster_test_data", tmp_path / "delta"
    )
    users = datasets.oneroster_users(folder)
    register("delta", "oneroster-csv", folder)

    first = run_sync("delta")
    second = run_sync("delta")

    assert first.status == "completed"
    assert first.counts["students"]["created"] == len(users)
    assert second.counts["students"]["unchanged"] == len(users)


def test_catalyst_delta_set_missing_user_is_not_archived(store_url, tmp_path):
    folder = datasets.copy_oneroster(
        "catalyst-moodle-enrol-oneroster/oneroster_test_data", tmp_path / "delta"
    )
    register("delta", "oneroster-csv", folder)
    run_sync("delta")
    user = datasets.oneroster_users(folder)[0]["sourcedid"]

    datasets.remove_oneroster_users(folder, {user})
    result = run_sync("delta")

    assert result.status == "completed"
    assert result.counts["students"]["archived"] == 0
    assert user_statuses()[user] == "active"


def test_ragged_v1p2_set_fails_naming_file_and_line(store_url, tmp_path):
    folder = datasets.copy_oneroster(
        "catalyst-moodle-enrol-oneroster/v1p2_full_dataset", tmp_path / "v1p2"
    )
    register("v1p2", "oneroster-csv", folder)

    result = run_sync("v1p2")

    assert result.status == "failed"
    assert "roles.csv, line 2" in (result.reason or "")
    assert store_rows()["users"] == []


def test_nicelion_set_without_manifest_fails_clearly(store_url, tmp_path):
    folder = datasets.copy_oneroster("nicelion-oneroster-mocker", tmp_path / "nicelion")
    with pytest.raises(ConfigurationError, match="manifest.csv"):
        register("nicelion", "oneroster-csv", folder)
    write_manifest(folder, NICELION_FILES)
    register("nicelion", "oneroster-csv", folder)
    (folder / "manifest.csv").unlink()

    result = run_sync("nicelion")

    assert result.status == "failed"
    assert "manifest.csv is missing" in (result.reason or "")
    assert store_rows()["users"] == []


def write_manifest(folder: Path, files: dict[str, str]) -> None:
    rows = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.1"]
    rows += [f"file.{name},{mode}" for name, mode in files.items()]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


NICELION_FILES = {
    "orgs": "bulk",
    "users": "bulk",
    "classes": "absent",
    "enrollments": "absent",
}


def test_nicelion_users_with_a_manifest_sync(store_url, tmp_path):
    folder = tmp_path / "nicelion"
    folder.mkdir()
    for name in ("orgs.csv", "users.csv"):
        shutil.copy(datasets.REAL_INPUT / "nicelion-oneroster-mocker" / name, folder)
    write_manifest(folder, NICELION_FILES)
    users = datasets.oneroster_users(folder)
    register("nicelion", "oneroster-csv", folder)

    result = run_sync("nicelion")

    assert result.status == "completed"
    assert result.counts["students"]["created"] == sum(
        row["role"] == "student" for row in users
    )
    assert result.counts["educators"]["created"] == sum(
        row["role"] == "principal" for row in users
    )
    assert "parent" not in {row.role for row in stored_users()}


def test_nicelion_users_of_unknown_org_block_the_run(store_url, tmp_path):
    folder = tmp_path / "nicelion"
    folder.mkdir()
    source = datasets.REAL_INPUT / "nicelion-oneroster-mocker"
    shutil.copy(source / "orgs.csv", folder)
    shutil.copy(source / "test-csv.csv", folder / "users.csv")
    write_manifest(folder, NICELION_FILES)
    students = [
        row for row in datasets.oneroster_users(folder) if row["role"] == "student"
    ]
    register("nicelion", "oneroster-csv", folder)

    result = run_sync("nicelion")

    assert result.status == "failed"
    assert f"{len(students)} of {len(students)} users failed" in (result.reason or "")
    assert result.quarantined == len(students)
    assert store_rows()["users"] == []


# Failures and the demo


def test_unknown_district_fails_with_registration_hint(store_url):
    result = run_sync("nowhere")

    assert result.status == "failed"
    assert "rostersync district add" in (result.reason or "")


def test_empty_pull_for_district_with_users_is_blocked(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder)
    run_sync("lepo")
    before = store_rows()
    datasets.remove_oneroster_users(
        folder, {row["sourcedid"] for row in datasets.oneroster_users(folder)}
    )

    result = run_sync("lepo")

    assert result.status == "failed"
    assert "Blocking data check failed" in (result.reason or "")
    assert store_rows() == before


def test_dry_run_writes_no_roster_change(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder)

    result = run_sync("lepo", dry_run=True)

    assert result.status == "completed"
    assert result.counts["students"]["created"] == 20
    assert store_rows()["users"] == []


def test_sync_publishes_markdown_and_table_artifacts(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder)

    result = run_sync("lepo")

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[result.flow_run_id])
            )
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert by_key["sync-lepo"].type == "markdown"
    assert "| students | 20 | 0 | 0 | 0 | 0 |" in by_key["sync-lepo"].data
    assert by_key["sync-counts-lepo"].type == "table"
    assert "students" in by_key["sync-counts-lepo"].data


def test_empty_enrollments_file_blocks_the_run(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder)
    run_sync("lepo")
    before = store_rows()
    header = (folder / "enrollments.csv").read_text(encoding="utf-8").splitlines()[0]
    (folder / "enrollments.csv").write_text(header + "\n", encoding="utf-8")

    result = run_sync("lepo")

    assert result.status == "failed"
    assert "returned no enrollments" in (result.reason or "")
    assert store_rows() == before


def test_unstorable_values_are_quarantined_not_crashing(store_url, tmp_path):
    folder = tmp_path / "demo"
    write_demo_district(folder, DemoSize(students=30, schools=1))
    with (folder / "users.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    rows[-1][header.index("familyName")] = "R" * 260
    rows[-2][header.index("email")] = "nul\x00@demo.invalid"
    rows[-3][header.index("sourcedId")] = "nul\x00id" + "9" * 400
    with (folder / "users.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    register("demo", "oneroster-csv", folder)

    result = run_sync("demo")

    with get_engine().connect() as connection:
        quarantined = (
            connection.execute(
                sa.text(
                    "select provider_id from quarantined_records where run_id = :r "
                    "and \"check\" = 'text_is_storable'"
                ),
                {"r": result.run_id},
            )
            .scalars()
            .all()
        )
    assert result.status == "completed"
    assert len(quarantined) == 3
    assert rows[-1][0] in quarantined
    assert rows[-2][0] in quarantined
    assert any(value.startswith("nul\\0id999") for value in quarantined)
    assert result.counts["students"]["created"] == 27


def test_held_dry_run_stores_no_plan(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder, removal_threshold=0)
    run_sync("lepo")
    datasets.remove_oneroster_users(
        folder, {datasets.oneroster_users(folder)[0]["sourcedid"]}
    )

    result = run_sync("lepo", dry_run=True)

    with get_engine().connect() as connection:
        plans = connection.execute(
            sa.text("select count(*) from stored_plans")
        ).scalar()
    assert result.status == "held"
    assert (result.reason or "").startswith("Dry run:")
    assert plans == 0


def test_enrollments_of_unknown_class_block_the_run(store_url, tmp_path):
    folder = datasets.copy_oneroster("lepo-roster-hub/en", tmp_path / "lepo")
    register("lepo", "oneroster-csv", folder)
    run_sync("lepo")
    before = store_rows()
    path = folder / "enrollments.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    position = [name.lower() for name in rows[0]].index("classsourcedid")
    for number, row in enumerate(rows[1:]):
        row[position] = f"class-missing-{number}"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)

    result = run_sync("lepo")

    assert result.status == "failed"
    assert "enrollments failed record-level checks" in (result.reason or "")
    assert store_rows() == before
