"""The sync-due-districts dispatcher against a real Prefect API and store.

The daily-sync deployment sits on a process work pool that no worker serves, so
the flow runs the dispatcher starts stay scheduled where the test reads them.
The end-to-end test in tests/e2e runs them on real workers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Pending, Running, Scheduled

from flows.daily_sync import daily_sync
from flows.dispatch import sync_due_districts
from rostersync.demo import DemoSize, write_demo_district
from rostersync.settings import get_settings
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district
from rostersync.store.runs import start_run
from rostersync.store.schedule import STOPPED_REASON
from tasks.dispatch import LiveSyncs, is_stopped

pytestmark = pytest.mark.usefixtures("prefect_harness")

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def deployment(store_url):
    """A daily-sync deployment on a fresh pool, by its "flow/deployment" name."""
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    name = f"daily-sync-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment_id = daily_sync.to_deployment(name=name, work_pool_name=pool).apply()
    return f"daily-sync/{name}", deployment_id, pool


@pytest.fixture
def districts(store_url, tmp_path):
    """Districts due, not due, synced today, stopped and suspended.

    A real dispatch decides at the current time and a dry run at NOW, so the
    district that is not due has its sync hour at 23:00 in a zone where it is not
    23:00 now.
    """
    engine = get_engine()
    folder = write_demo_district(tmp_path / "csv", DemoSize(students=5, schools=1))
    late_zone = "Etc/GMT+1" if datetime.now(UTC).hour == 23 else "UTC"
    hours = {"due": 0, "late": 23, "synced": 0, "stopped": 0, "suspended": 0}
    for district_id, hour in hours.items():
        add_district(
            engine,
            district_id,
            name=f"District {district_id}",
            provider="oneroster-csv",
            source=str(folder),
            timezone=late_zone if district_id == "late" else "UTC",
            sync_hour=hour,
        )
    synced = start_run(engine, "synced", "daily-sync")
    stopped = start_run(engine, "stopped", "daily-sync")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "update sync_runs set status = 'completed', started_at = :t, "
                "finished_at = :t where id = :id"
            ),
            {"t": datetime.now(UTC), "id": synced},
        )
        connection.execute(
            sa.text(
                "update integrations set status = 'suspended' where district_id = :d"
            ),
            {"d": "suspended"},
        )
    return {"stopped": stopped}


def flow_runs(deployment_id) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
            )
        )


def dispatch(name: str, **parameters) -> dict:
    """Run the dispatcher; a dry run decides at NOW, a real one at the current time."""
    at = NOW if parameters.get("dry_run") else None
    state = sync_due_districts(at=at, deployment=name, return_state=True, **parameters)
    return state.result()


def test_due_districts_get_one_daily_sync_each(deployment, districts):
    name, deployment_id, _ = deployment

    dispatch(name)

    runs = flow_runs(deployment_id)
    assert sorted(run.parameters["district_id"] for run in runs) == ["due", "stopped"]


def test_the_summary_counts_each_decision(deployment, districts):
    name, _, _ = deployment

    summary = dispatch(name)

    assert summary["decisions"] == {
        "dispatch": 2,
        "not_due": 1,
        "suspended": 1,
        "synced_today": 1,
    }


def test_runs_go_to_the_providers_queue(deployment, districts):
    name, deployment_id, _ = deployment

    dispatch(name)

    queues = {run.work_queue_name for run in flow_runs(deployment_id)}
    assert queues == {"sync-oneroster-csv"}


def test_the_providers_queue_is_limited(deployment, districts):
    name, _, pool = deployment

    dispatch(name, max_syncs_per_provider=3)

    with get_client(sync_client=True) as client:
        queue = client.read_work_queue_by_name("sync-oneroster-csv", pool)
    assert queue.concurrency_limit == 3


def test_the_limit_defaults_to_the_setting(deployment, districts, monkeypatch):
    name, _, pool = deployment
    monkeypatch.setenv("ROSTERSYNC_MAX_SYNCS_PER_PROVIDER", "5")
    get_settings.cache_clear()

    dispatch(name)

    with get_client(sync_client=True) as client:
        queue = client.read_work_queue_by_name("sync-oneroster-csv", pool)
    assert queue.concurrency_limit == 5


def test_a_second_dispatch_leaves_queued_districts_alone(deployment, districts):
    name, deployment_id, _ = deployment
    dispatch(name)

    summary = dispatch(name)

    assert summary["started"] == 0
    assert summary["decisions"]["queued"] == 2
    assert len(flow_runs(deployment_id)) == 2


def test_a_stopped_run_is_closed_and_its_district_dispatched(deployment, districts):
    name, _, _ = deployment

    summary = dispatch(name)

    assert summary["stopped_runs_closed"] == 1
    with get_engine().connect() as connection:
        status, reason = connection.execute(
            sa.text("select status, reason from sync_runs where id = :id"),
            {"id": districts["stopped"]},
        ).one()
    assert (status, reason) == ("stopped", STOPPED_REASON)
    assert "stopped" in summary["flow_runs"]


def test_a_dry_run_starts_nothing(deployment, districts):
    name, deployment_id, _ = deployment

    summary = dispatch(name, dry_run=True)

    # The stopped run's district counts as due, as the real dispatch would make it.
    assert summary["decisions"]["dispatch"] == 2
    assert flow_runs(deployment_id) == []


def test_a_dry_run_leaves_stopped_runs_open(deployment, districts):
    name, _, _ = deployment

    dispatch(name, dry_run=True)

    with get_engine().connect() as connection:
        status = connection.execute(
            sa.text("select status from sync_runs where id = :id"),
            {"id": districts["stopped"]},
        ).scalar_one()
    assert status == "running"


def test_the_flow_run_of_a_stopped_run_is_crashed(deployment, districts):
    name, deployment_id, _ = deployment
    with get_client(sync_client=True) as client:
        zombie = client.create_flow_run_from_deployment(
            deployment_id, parameters={"district_id": "stopped"}
        )
        client.set_flow_run_state(zombie.id, Running(), force=True)
    with get_engine().begin() as connection:
        connection.execute(
            sa.text("update sync_runs set flow_run_id = :f where id = :id"),
            {"f": str(zombie.id), "id": districts["stopped"]},
        )

    summary = dispatch(name)

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(zombie.id).state
    assert state.type == StateType.CRASHED
    assert summary["flow_runs_crashed"] == 1
    assert "stopped" in summary["flow_runs"]


def running_flow_run(started: datetime) -> FlowRun:
    return FlowRun(
        id=uuid.uuid4(),
        flow_id=uuid.uuid4(),
        state=Running(timestamp=started),
        start_time=started,
        parameters={"district_id": "due"},
    )


def test_a_pending_flow_run_past_the_grace_is_stopped():
    run = running_flow_run(datetime.now(UTC) - timedelta(hours=3))
    run.state = Pending(timestamp=datetime.now(UTC) - timedelta(seconds=120))

    assert is_stopped(run, LiveSyncs(frozenset(), frozenset()), datetime.now(UTC), 60)


def test_a_resumed_flow_run_counts_from_its_resume():
    run = running_flow_run(datetime.now(UTC) - timedelta(hours=3))
    run.state = Running(timestamp=datetime.now(UTC) - timedelta(seconds=30))

    assert not is_stopped(
        run, LiveSyncs(frozenset(), frozenset()), datetime.now(UTC), 60
    )


def test_a_run_scheduled_for_later_leaves_its_district_due(deployment, districts):
    name, deployment_id, _ = deployment
    with get_client(sync_client=True) as client:
        client.create_flow_run_from_deployment(
            deployment_id,
            parameters={"district_id": "due"},
            state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=7)),
        )

    summary = dispatch(name)

    assert "due" in summary["flow_runs"]


def test_a_held_run_awaiting_a_decision_is_not_crashed(deployment, districts):
    name, deployment_id, _ = deployment
    with get_client(sync_client=True) as client:
        waiting = client.create_flow_run_from_deployment(
            deployment_id, parameters={"district_id": "synced"}
        )
        client.set_flow_run_state(
            waiting.id,
            Running(timestamp=datetime.now(UTC) - timedelta(hours=3)),
            force=True,
        )
    with get_engine().begin() as connection:
        connection.execute(
            sa.text(
                "update sync_runs set status = 'held', flow_run_id = :f "
                "where district_id = 'synced'"
            ),
            {"f": str(waiting.id)},
        )

    summary = dispatch(name)

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(waiting.id).state
    assert state.type == StateType.RUNNING
    assert summary["flow_runs_crashed"] == 0


def test_a_dispatch_at_another_time_must_be_a_dry_run(deployment, districts):
    name, deployment_id, _ = deployment

    state = sync_due_districts(at=NOW, deployment=name, return_state=True)

    assert state.is_failed()
    assert "set dry_run with it" in state.message
    assert flow_runs(deployment_id) == []


def test_a_running_flow_run_without_a_lock_past_the_grace_is_stopped():
    run = running_flow_run(datetime.now(UTC) - timedelta(seconds=120))

    assert is_stopped(run, LiveSyncs(frozenset(), frozenset()), datetime.now(UTC), 60)


def test_a_running_flow_run_within_the_grace_is_not_stopped():
    run = running_flow_run(datetime.now(UTC) - timedelta(seconds=30))

    assert not is_stopped(
        run, LiveSyncs(frozenset(), frozenset()), datetime.now(UTC), 60
    )


def test_a_running_flow_run_holding_the_lock_is_not_stopped():
    run = running_flow_run(datetime.now(UTC) - timedelta(hours=3))
    live = LiveSyncs(frozenset({"due"}), frozenset({str(run.id)}))

    assert not is_stopped(run, live, datetime.now(UTC), 60)


def test_a_recent_running_flow_run_keeps_its_district(deployment, districts):
    name, deployment_id, _ = deployment
    with get_client(sync_client=True) as client:
        running = client.create_flow_run_from_deployment(
            deployment_id, parameters={"district_id": "due"}
        )
        client.set_flow_run_state(running.id, Running(), force=True)

    summary = dispatch(name)

    assert "due" not in summary["flow_runs"]


def test_an_unknown_deployment_fails_with_the_fix(store_url):
    state = sync_due_districts(deployment="daily-sync/missing", return_state=True)

    assert state.is_failed()
    assert "prefect deploy --all" in state.message
