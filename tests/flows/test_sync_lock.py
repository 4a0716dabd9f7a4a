"""One daily sync per district at a time: the store lock and the Prefect limit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client

import flows.daily_sync as daily_sync_module
from rostersync.cli import run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.settings import get_settings
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.locks import acquire_sync_lock, read_sync_lock
from tasks.concurrency import district_limit_name

pytestmark = pytest.mark.usefixtures("prefect_harness")

STUDENTS = 12


@pytest.fixture
def district(store_url, tmp_path) -> str:
    folder = write_demo_district(
        tmp_path / "csv", DemoSize(students=STUDENTS, schools=1)
    )
    add_district(
        get_engine(),
        "d-lock",
        name="Lock district",
        provider="oneroster-csv",
        source=str(folder),
    )
    return "d-lock"


def count(query: str) -> int:
    with get_engine().connect() as connection:
        return connection.execute(sa.text(query)).scalar_one()


def test_a_sync_of_a_locked_district_is_skipped(district):
    holder = str(uuid.uuid4())
    acquire_sync_lock(get_engine(), district, holder, 300)

    result = run_sync(district)

    assert result.status == "skipped"
    assert f"Run {holder} holds the store lock of district d-lock" in result.reason


def test_a_skipped_sync_writes_nothing(district):
    acquire_sync_lock(get_engine(), district, str(uuid.uuid4()), 300)

    run_sync(district)

    assert count("select count(*) from users") == 0
    assert count("select count(*) from sync_runs") == 0


def test_a_stopped_runs_expired_lock_is_taken_over(district):
    acquire_sync_lock(get_engine(), district, "stopped-run", 300)
    with get_engine().begin() as connection:
        connection.execute(
            sa.text("update district_locks set expires_at = :t"),
            {"t": datetime.now(UTC) - timedelta(minutes=1)},
        )

    result = run_sync(district)

    assert result.status == "completed"
    assert count("select count(*) from users where role = 'student'") == STUDENTS


def test_a_finished_sync_releases_the_lock(district):
    run_sync(district)

    assert read_sync_lock(get_engine(), district) is None


def test_a_run_that_lost_its_lock_applies_nothing(district, monkeypatch):
    original = daily_sync_module.plan_roster_changes

    def plan_then_lose_the_lock(*args, **kwargs):
        plan = original(*args, **kwargs)
        # Another run takes the district over while this one plans.
        with get_engine().begin() as connection:
            connection.execute(sa.text("update district_locks set run_id = 'other'"))
        return plan

    monkeypatch.setattr(
        daily_sync_module, "plan_roster_changes", plan_then_lose_the_lock
    )

    result = run_sync(district)

    assert result.status == "failed"
    assert "no longer holds the sync lock of district d-lock" in result.reason
    assert count("select count(*) from users") == 0


def test_a_run_whose_lock_expired_writes_nothing(district, monkeypatch):
    original = daily_sync_module.plan_roster_changes

    def plan_then_stall(*args, **kwargs):
        plan = original(*args, **kwargs)
        # The lease runs out while the run plans, as after a long stall.
        with get_engine().begin() as connection:
            connection.execute(
                sa.text("update district_locks set expires_at = :t"),
                {"t": datetime.now(UTC) - timedelta(minutes=1)},
            )
        return plan

    monkeypatch.setattr(daily_sync_module, "plan_roster_changes", plan_then_stall)

    result = run_sync(district)

    assert result.status == "failed"
    assert count("select count(*) from users") == 0
    # The row is left for the dispatcher, which closes it as stopped.
    assert count("select count(*) from sync_runs where status = 'running'") == 1


def test_the_sync_holds_a_one_slot_prefect_limit(district, monkeypatch):
    monkeypatch.setenv("ROSTERSYNC_PREFECT_DISTRICT_LIMIT", "true")
    get_settings.cache_clear()

    run_sync(district)

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(
            "rostersync-district-d-lock"
        )
    assert (limit.limit, limit.active_slots) == (1, 0)


def test_a_plain_id_names_its_limit():
    assert district_limit_name("d-12_a.b") == "rostersync-district-d-12_a.b"


def test_an_id_prefect_cannot_name_is_named_by_its_hash():
    name = district_limit_name("north/east")

    assert name.startswith("rostersync-district-~")
    assert "/" not in name


def test_two_such_ids_get_two_names():
    assert district_limit_name("north/east") != district_limit_name("north/west")
