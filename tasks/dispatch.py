"""The dispatcher's tasks: read the store's clocks, start daily syncs in Prefect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.states import Crashed
from sqlalchemy import select

from rostersync.errors import ConfigurationError
from rostersync.store.database import get_engine, store_errors
from rostersync.store.locks import live_sync_locks
from rostersync.store.models import SyncRun
from rostersync.store.schedule import (
    DAILY_SYNC,
    DistrictClock,
    StoppedRun,
    close_stopped_runs,
    read_district_clocks,
)
from tasks.options import IO_TASK_OPTIONS, contain_errors

# Flow runs that hold a place in Prefect: waiting, starting or running.
ACTIVE_STATES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
PAGE = 200
QUEUE_PREFIX = "sync-"
# A held run waits for an operator's decision without its district's lock.
HELD = "held"


@dataclass(frozen=True)
class DeploymentInfo:
    """The daily-sync deployment the dispatcher starts runs of."""

    id: UUID
    name: str
    work_pool_name: str


@dataclass(frozen=True)
class LiveSyncs:
    """Districts whose sync holds the lock, and the flow runs that are alive."""

    districts: frozenset[str]
    flow_run_ids: frozenset[str]


@dataclass(frozen=True)
class QueuedSyncs:
    """Districts with a daily-sync flow run waiting or running in Prefect, and the
    flow runs marked Crashed because their process had stopped."""

    districts: frozenset[str]
    crashed: tuple[str, ...]


def queue_name(provider: str) -> str:
    """Return the work queue of a provider's daily syncs."""
    return QUEUE_PREFIX + provider


@task(name="close-stopped-runs", **IO_TASK_OPTIONS)
@contain_errors
def close_stopped_syncs() -> list[StoppedRun]:
    """Close the daily syncs whose process stopped without releasing the lock."""
    with store_errors():
        return close_stopped_runs(get_engine())


@task(name="read-district-clocks", **IO_TASK_OPTIONS)
@contain_errors
def read_clocks() -> list[DistrictClock]:
    """Read each integrated district's time zone, sync hour and last daily sync."""
    with store_errors():
        return read_district_clocks(get_engine())


@task(name="read-district-locks", **IO_TASK_OPTIONS)
@contain_errors
def read_live_syncs() -> LiveSyncs:
    """Read the districts whose sync holds the lock now, and the flow runs alive.

    A flow run is alive when its sync holds the lock, or when its run is held
    and awaits an operator's decision without the lock.
    """
    with store_errors():
        engine = get_engine()
        locks = live_sync_locks(engine)
        run_ids = [lock.run_id for lock in locks.values()]
        flow_run_ids: set[str] = set()
        with engine.connect() as connection:
            for start in range(0, len(run_ids), 500):
                flow_run_ids.update(
                    connection.execute(
                        select(SyncRun.flow_run_id).where(
                            SyncRun.id.in_(run_ids[start : start + 500]),
                            SyncRun.flow_run_id.is_not(None),
                        )
                    ).scalars()
                )
            flow_run_ids.update(
                connection.execute(
                    select(SyncRun.flow_run_id).where(
                        SyncRun.flow_name == DAILY_SYNC,
                        SyncRun.status == HELD,
                        SyncRun.decision.is_(None),
                        SyncRun.flow_run_id.is_not(None),
                    )
                ).scalars()
            )
    return LiveSyncs(frozenset(locks), frozenset(flow_run_ids))


@task(name="find-deployment", **IO_TASK_OPTIONS)
@contain_errors
def find_deployment(name: str) -> DeploymentInfo:
    """Read the deployment by its "flow/deployment" name."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except (ObjectNotFound, ValueError):
            raise ConfigurationError(
                f"Deployment {name!r} was not found on the Prefect server; deploy "
                "the project with `prefect deploy --all` from the repository root, "
                "or pass the deployment's name as FLOW/DEPLOYMENT."
            ) from None
    if not deployment.work_pool_name:
        raise ConfigurationError(
            f"Deployment {name!r} has no work pool; deploy it from prefect.yaml, "
            "which puts it on the rostersync-process pool."
        )
    return DeploymentInfo(deployment.id, name, deployment.work_pool_name)


@task(name="read-queued-syncs", **IO_TASK_OPTIONS)
@contain_errors
def read_queued_syncs(
    deployment_id: UUID,
    live: LiveSyncs,
    stopped_flow_run_ids: frozenset[str],
    grace_seconds: float,
    crash_stopped: bool,
) -> QueuedSyncs:
    """Find the districts with a daily-sync flow run due, starting or running.

    A flow run has lost its process when the store closed its run as stopped, or
    when it has been Pending or Running for ``grace_seconds`` without holding its
    district's lock or awaiting a decision. With ``crash_stopped`` it is marked
    Crashed, which frees its work queue slot, and its district counts as free. A
    run scheduled for later does not hold its district.
    """
    now = datetime.now(UTC)
    queued: set[str] = set()
    crashed: list[str] = []
    with get_client(sync_client=True) as client:
        # Read every page first: a run marked Crashed leaves the filter's pages.
        runs = list(_active_runs(client, deployment_id))
        for run in runs:
            district_id = str(run.parameters.get("district_id") or "")
            if not district_id or _scheduled_later(run, now):
                continue
            if str(run.id) in stopped_flow_run_ids or is_stopped(
                run, live, now, grace_seconds
            ):
                if crash_stopped:
                    client.set_flow_run_state(
                        run.id,
                        Crashed(
                            message=(
                                "The flow run's process stopped: it held no district "
                                "lock and sent no result. The dispatcher syncs the "
                                "district again."
                            )
                        ),
                        force=True,
                    )
                    crashed.append(str(run.id))
                continue
            queued.add(district_id)
    return QueuedSyncs(frozenset(queued), tuple(crashed))


def _active_runs(client, deployment_id: UUID):
    """Yield the deployment's scheduled, pending and running flow runs, by pages."""
    run_filter = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE_STATES)),
    )
    offset = 0
    while True:
        page: list[FlowRun] = client.read_flow_runs(
            flow_run_filter=run_filter, limit=PAGE, offset=offset
        )
        yield from page
        if len(page) < PAGE:
            return
        offset += PAGE


def _scheduled_later(run: FlowRun, now: datetime) -> bool:
    """Return whether a Scheduled run is due only after ``now``."""
    if run.state is None or run.state.type != StateType.SCHEDULED:
        return False
    due = run.next_scheduled_start_time or run.expected_start_time
    return due is not None and due > now


def is_stopped(run: FlowRun, live: LiveSyncs, now: datetime, grace: float) -> bool:
    """Return whether a Pending or Running flow run has lost its process.

    It has when it entered its state more than ``grace`` seconds ago and neither
    holds its district's lock nor awaits an operator's decision. A held run that
    was approved is Running again from the time it resumed.
    """
    if run.state is None or run.state.type not in (
        StateType.PENDING,
        StateType.RUNNING,
    ):
        return False
    if str(run.id) in live.flow_run_ids:
        return False
    entered = run.state.timestamp or run.start_time or run.expected_start_time
    if entered is None:
        return False
    return now - entered > timedelta(seconds=grace)


@task(name="prepare-provider-queues", **IO_TASK_OPTIONS)
@contain_errors
def prepare_provider_queues(
    work_pool_name: str, providers: list[str], limit: int
) -> dict[str, str]:
    """Create or update one work queue per provider, limited to ``limit`` runs.

    A worker takes no flow run from a queue whose limit is reached, so at most
    ``limit`` daily syncs of one provider run at once, whatever the workers.
    """
    queues: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for provider in sorted(set(providers)):
            name = queue_name(provider)
            try:
                queue = client.read_work_queue_by_name(name, work_pool_name)
            except ObjectNotFound:
                try:
                    client.create_work_queue(
                        name,
                        description=(
                            f"Daily syncs of {provider} districts, at most {limit} "
                            "at once (set by the sync-due-districts dispatcher)."
                        ),
                        concurrency_limit=limit,
                        work_pool_name=work_pool_name,
                    )
                except ObjectAlreadyExists:
                    queue = client.read_work_queue_by_name(name, work_pool_name)
                    if queue.concurrency_limit != limit:
                        client.update_work_queue(queue.id, concurrency_limit=limit)
            else:
                if queue.concurrency_limit != limit:
                    client.update_work_queue(queue.id, concurrency_limit=limit)
            queues[provider] = name
    return queues


@task(name="start-daily-syncs", **IO_TASK_OPTIONS)
@contain_errors
def start_daily_syncs(
    deployment_id: UUID,
    districts: list[tuple[str, str]],
    queues: dict[str, str],
    dispatch_key: str,
) -> dict[str, str]:
    """Start one daily-sync flow run per (district id, provider); return their ids.

    Each run's idempotency key names this dispatch and the district, so a retry
    of the task finds the runs it already started instead of starting more.
    """
    started: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for district_id, provider in districts:
            run = client.create_flow_run_from_deployment(
                deployment_id,
                parameters={"district_id": district_id},
                name=f"daily-sync-{district_id}"[:200],
                tags=["rostersync", "daily-sync", "dispatched", f"provider:{provider}"],
                idempotency_key=f"{dispatch_key}:{district_id}",
                work_queue_name=queues[provider],
            )
            started[district_id] = str(run.id)
    return started
