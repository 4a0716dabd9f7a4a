"""Which districts are due for their daily sync, and which runs had stopped."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from rostersync.demo import DemoSize, write_demo_district
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.locks import acquire_sync_lock, read_sync_lock, renew_sync_lock
from rostersync.store.runs import start_run
from rostersync.store.schedule import (
    BAD_TIMEZONE,
    DISPATCH,
    NO_CONTRACT,
    NOT_DUE,
    QUEUED,
    RUNNING_NOW,
    STOPPED_REASON,
    SUSPENDED,
    SYNCED_TODAY,
    DistrictClock,
    close_stopped_runs,
    decide,
    read_district_clocks,
)

# 14:30 UTC is 08:30 in Chicago (UTC-6 in December), 03:30 next day in Auckland.
NOW = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)


def clock(**changes) -> DistrictClock:
    values = {
        "district_id": "d-1",
        "provider": "clever",
        "timezone": "America/Chicago",
        "sync_hour": 5,
        "status": "active",
        "contract_start": None,
        "contract_end": None,
        "last_finished_at": None,
    }
    return DistrictClock(**(values | changes))


def decision(**changes) -> str:
    return decide(clock(**changes), NOW, locked=False, queued=False).decision


def test_a_district_past_its_hour_is_dispatched():
    assert decision(sync_hour=8) == DISPATCH


def test_a_district_before_its_hour_waits():
    assert decision(sync_hour=9) == NOT_DUE


def test_the_hour_is_local_to_the_district():
    # 03:30 in Auckland, so an hour of 5 has not come there.
    assert decision(timezone="Pacific/Auckland") == NOT_DUE


def test_a_sync_finished_today_local_time_is_not_repeated():
    # 06:00 in Chicago today.
    assert decision(last_finished_at=datetime(2026, 12, 7, 12, tzinfo=UTC)) == (
        SYNCED_TODAY
    )


def test_a_sync_of_yesterday_local_time_is_repeated():
    # 03:00 UTC on December 7 is 21:00 on December 6 in Chicago.
    assert decision(last_finished_at=datetime(2026, 12, 7, 3, tzinfo=UTC)) == DISPATCH


def test_a_suspended_integration_is_not_dispatched():
    assert decision(status="suspended") == SUSPENDED


def test_an_ended_contract_is_not_dispatched():
    assert decision(contract_end=date(2026, 11, 30)) == NO_CONTRACT


def test_a_contract_not_started_is_not_dispatched():
    assert decision(contract_start=date(2027, 1, 1)) == NO_CONTRACT


def test_a_district_whose_sync_holds_the_lock_is_not_dispatched():
    assert decide(clock(), NOW, locked=True, queued=False).decision == RUNNING_NOW


def test_a_district_with_a_queued_flow_run_is_not_dispatched():
    assert decide(clock(), NOW, locked=False, queued=True).decision == QUEUED


def test_an_unknown_time_zone_is_reported_with_the_fix():
    result = decide(clock(timezone="Mars/Olympus"), NOW, locked=False, queued=False)

    assert result.decision == BAD_TIMEZONE
    assert "rostersync district update d-1 --timezone" in result.reason


def test_the_local_time_is_shown():
    result = decide(clock(), NOW, locked=False, queued=False)

    assert result.local_time == "2026-12-07 08:30 CST"


# The store's side


@pytest.fixture
def engine(store_url, tmp_path):
    engine = get_engine()
    folder = write_demo_district(tmp_path / "files", DemoSize(students=5, schools=1))
    for district_id in ("a", "b"):
        add_district(
            engine,
            district_id,
            name=f"District {district_id}",
            provider="oneroster-csv",
            source=str(folder),
            timezone="America/Chicago",
            sync_hour=7,
        )
    add_district(engine, "none", name="No integration", provider="none", source="")
    return engine


def finish(engine, run_id: str, started_at: datetime, status="completed") -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "update sync_runs set status = :s, started_at = :t, finished_at = :t "
                "where id = :id"
            ),
            {"s": status, "t": started_at, "id": run_id},
        )


def test_clocks_list_districts_with_an_integration(engine):
    clocks = read_district_clocks(engine)

    assert [c.district_id for c in clocks] == ["a", "b"]


def test_clocks_carry_the_sync_hour(engine):
    clocks = read_district_clocks(engine)

    assert [c.sync_hour for c in clocks] == [7, 7]


def test_the_last_finished_daily_sync_is_read(engine):
    early = datetime(2026, 12, 6, 12, tzinfo=UTC)
    late = datetime(2026, 12, 7, 12, tzinfo=UTC)
    finish(engine, start_run(engine, "a", "daily-sync"), early)
    finish(engine, start_run(engine, "a", "daily-sync"), late, status="failed")

    clocks = {c.district_id: c for c in read_district_clocks(engine)}

    assert clocks["a"].last_finished_at == late


def test_running_dry_and_other_runs_are_not_a_finished_sync(engine):
    start_run(engine, "a", "daily-sync")
    dry = start_run(engine, "a", "daily-sync", dry_run=True)
    finish(engine, dry, datetime(2026, 12, 7, 12, tzinfo=UTC))
    other = start_run(engine, "a", "update-school-mapping")
    finish(engine, other, datetime(2026, 12, 7, 12, tzinfo=UTC))

    clocks = {c.district_id: c for c in read_district_clocks(engine)}

    assert clocks["a"].last_finished_at is None


def test_a_running_sync_without_its_lock_is_closed_as_stopped(engine):
    run_id = start_run(engine, "a", "daily-sync")

    closed = close_stopped_runs(engine)

    assert [run.run_id for run in closed] == [run_id]
    with engine.connect() as connection:
        status, reason = connection.execute(
            sa.text("select status, reason from sync_runs where id = :id"),
            {"id": run_id},
        ).one()
    assert (status, reason) == ("stopped", STOPPED_REASON)


def test_a_running_sync_holding_its_lock_is_left_running(engine):
    run_id = str(uuid.uuid4())
    acquire_sync_lock(engine, "a", run_id, 300)
    start_run(engine, "a", "daily-sync", run_id=run_id)

    closed = close_stopped_runs(engine)

    assert closed == []


def test_a_running_sync_whose_lock_another_run_took_is_closed(engine):
    stopped = start_run(engine, "a", "daily-sync")
    acquire_sync_lock(engine, "a", str(uuid.uuid4()), 300)

    closed = close_stopped_runs(engine)

    assert [run.run_id for run in closed] == [stopped]


def test_a_stopped_sync_is_no_finished_sync(engine):
    start_run(engine, "a", "daily-sync")
    close_stopped_runs(engine)

    clocks = {c.district_id: c for c in read_district_clocks(engine)}

    assert clocks["a"].last_finished_at is None


def test_closing_a_stopped_run_drops_its_expired_lock(engine):
    run_id = str(uuid.uuid4())
    acquire_sync_lock(engine, "a", run_id, 300)
    start_run(engine, "a", "daily-sync", run_id=run_id)
    with engine.begin() as connection:
        connection.execute(
            sa.text("update district_locks set expires_at = :t"),
            {"t": datetime.now(UTC) - timedelta(minutes=1)},
        )

    close_stopped_runs(engine)

    assert read_sync_lock(engine, "a") is None
    assert renew_sync_lock(engine, "a", run_id, 300) is False
