"""Operating rostersync on a real Prefect stack, the way Prefect users deploy it.

A Prefect server on PostgreSQL, `prefect deploy --all` from prefect.yaml, process
workers and a store on PostgreSQL run as subprocesses (tests/e2e/stack.py).
The Clever and OneRoster REST emulators serve generated districts on 127.0.0.1,
and some districts are OneRoster CSV folders. The districts are registered with
`rostersync district add`, and the test starts the `sync-due-districts` deployment
through the API, as its hourly schedule would. One district's emulator delays
every response, and the worker running that district's sync is killed with
SIGKILL part way, together with the sync's process. After the district's store
lock expires, a second dispatch closes the stopped run and syncs the district
once more. Headless Chromium then captures the deployments page and a sync's
artifact page of the Prefect UI.

Everything the processes write goes to test-output/operations/ at the repository
root. The generated rosters stay in a temporary folder, and the assertions name
districts by id and compare counts only.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from rostersync.demo import DemoDistrict, DemoSize, write_demo_district
from rostersync.emulators.clever import CleverEmulator
from rostersync.emulators.oneroster import BASE_PATH, OneRosterEmulator
from rostersync.emulators.server import EmulatorServer
from tests.conftest import POSTGRES_ADMIN_URL
from tests.e2e.stack import (
    CHROMIUM,
    ROOT,
    PrefectStack,
    capture_page,
    child_pids,
    postgres_reachable,
)

OUTPUT = ROOT / "test-output" / "operations"
DISPATCHER = "sync-due-districts/sync-due-districts"
DAILY_SYNC = "daily-sync/daily-sync"
FLOW_NAME = "daily-sync"

WORKER_LIMIT = 3
DUE_DISTRICTS = 20
NOT_DUE_DISTRICTS = 2
PROVIDERS = ("clever", "oneroster-rest", "oneroster-csv", "clever", "oneroster-rest")
MIN_STUDENTS, MAX_STUDENTS = 30, 100
# Records per provider page, so that every district's pull reads several pages.
PAGE_SIZE = 20
# The slow district's emulator waits this long before each response of its users
# collection, about seven pages per pull, so the pull lasts over 2 minutes. Its
# worker is killed part way, once the worker's other runs have finished.
SLOW_SECONDS_PER_RESPONSE = 20.0
# The store lock's lease, at the settings' minimum, so that the killed sync's lock
# expires a minute after its last renewal.
LEASE_SECONDS = 60
# How long a daily sync waits for its district's Prefect slot. The dispatcher
# takes a running flow run without the district's lock for a lost one once it
# started this long plus the lease ago.
DISTRICT_WAIT_SECONDS = 30

# Bounds of the waits, in seconds, and the polling interval.
SYNC_TIMEOUT_SECONDS = 600
LOCK_TIMEOUT_SECONDS = LEASE_SECONDS + DISTRICT_WAIT_SECONDS + 120
POLL_SECONDS = 2.0
# A Pending flow run that has no process this long after it was first seen was
# claimed by a paused worker.
UNSTARTED_SECONDS = 10.0

# A due district's local hour is at most LAST_DUE_HOUR and past its sync hour, so
# its local date does not change during the test. A district that is not due has
# a sync hour two hours or more after its local hour, so it stays not due.
LAST_DUE_HOUR = 22
NOT_DUE_MARGIN_HOURS = 2
# One zone per UTC offset from -11 to +14, so that at any time some are due and
# some are not.
ZONES = (
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Cape_Verde",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Cairo",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
    "Pacific/Tongatapu",
    "Pacific/Kiritimati",
)

# Credentials of this test run's emulators, passed to the workers by name.
CLEVER_TOKEN = secrets.token_urlsafe(24)
CLIENT_ID = f"e2e-{secrets.token_hex(6)}"
CLIENT_SECRET = secrets.token_urlsafe(24)
CREDENTIAL_ENV = {
    "E2E_CLEVER_TOKEN": CLEVER_TOKEN,
    "E2E_ONEROSTER_CLIENT_ID": CLIENT_ID,
    "E2E_ONEROSTER_CLIENT_SECRET": CLIENT_SECRET,
}
WORKER_ENV = {
    **CREDENTIAL_ENV,
    "ROSTERSYNC_PREFECT_DISTRICT_LIMIT": "true",
    "ROSTERSYNC_SYNC_LEASE_SECONDS": str(LEASE_SECONDS),
    "ROSTERSYNC_DISTRICT_WAIT_SECONDS": str(DISTRICT_WAIT_SECONDS),
    "ROSTERSYNC_CLEVER_PAGE_SIZE": str(PAGE_SIZE),
    "ROSTERSYNC_ONEROSTER_PAGE_SIZE": str(PAGE_SIZE),
}


@dataclass(frozen=True)
class PlannedDistrict:
    """A generated district: provider, zone, size, and whether it is due now."""

    district_id: str
    provider: str
    timezone: str
    sync_hour: int
    students: int
    schools: int
    seed: int
    due: bool
    slow: bool = False

    @property
    def size(self) -> DemoSize:
        return DemoSize(students=self.students, schools=self.schools)

    def expected_counts(self) -> dict[str, int]:
        """Count the generated records, as the store's active rows should."""
        generated = DemoDistrict(self.district_id, self.size, self.seed)
        schools = len(generated.schools)
        enrollments = sum(len(person.enrollments) for person in generated.people())
        return {
            "students": self.students,
            "educators": generated.teachers_per_school * schools,
            "schools": schools,
            "sections": generated.sections_per_school * schools,
            "enrollments": enrollments,
        }


def plan_districts(now: datetime) -> list[PlannedDistrict]:
    """Plan the due and not-due districts for the local hours at ``now``."""
    last_early_hour = LAST_DUE_HOUR - NOT_DUE_MARGIN_HOURS + 1
    due_zones = [z for z in ZONES if _local_hour(z, now) <= LAST_DUE_HOUR]
    early_zones = [z for z in ZONES if _local_hour(z, now) <= last_early_hour]
    rng = random.Random(20260705)
    districts = []
    for number in range(1, DUE_DISTRICTS + NOT_DUE_DISTRICTS + 1):
        due = number <= DUE_DISTRICTS
        zones = due_zones if due else early_zones
        zone = zones[number % len(zones)]
        hour = _local_hour(zone, now)
        if due:
            sync_hour = rng.randint(0, hour)
        else:
            sync_hour = rng.randint(hour + NOT_DUE_MARGIN_HOURS, 23)
        districts.append(
            PlannedDistrict(
                district_id=f"e2e-district-{number:02d}",
                provider=PROVIDERS[(number - 1) % len(PROVIDERS)],
                timezone=zone,
                sync_hour=sync_hour,
                students=rng.randint(MIN_STUDENTS, MAX_STUDENTS),
                schools=rng.randint(1, 3),
                seed=number,
                due=due,
                # The first district, a Clever one, is the slow one.
                slow=number == 1,
            )
        )
    return districts


def _local_hour(zone: str, now: datetime) -> int:
    return now.astimezone(ZoneInfo(zone)).hour


# Emulators and registration


@dataclass
class Roster:
    """The generated districts, their sources and the emulators serving them."""

    districts: list[PlannedDistrict]
    sources: dict[str, str]
    emulators: dict[str, EmulatorServer]

    @property
    def due(self) -> list[PlannedDistrict]:
        return [d for d in self.districts if d.due]

    @property
    def not_due(self) -> list[PlannedDistrict]:
        return [d for d in self.districts if not d.due]

    @property
    def slow(self) -> PlannedDistrict:
        return next(d for d in self.districts if d.slow)

    def stop(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()


def serve_districts(districts: list[PlannedDistrict], folder: Path) -> Roster:
    """Write each district's files and start an emulator for each API district."""
    roster = Roster(districts, {}, {})
    try:
        for district in districts:
            data = write_demo_district(
                folder / district.district_id,
                district.size,
                seed=district.seed,
                district=district.district_id,
                format=district.provider,
            )
            if district.provider == "clever":
                emulator: EmulatorServer = CleverEmulator([data], token=CLEVER_TOKEN)
                roster.sources[district.district_id] = emulator.start().base_url
            elif district.provider == "oneroster-rest":
                emulator = OneRosterEmulator(
                    [data], client_id=CLIENT_ID, client_secret=CLIENT_SECRET
                )
                url = emulator.start().base_url
                roster.sources[district.district_id] = f"{url}{BASE_PATH}"
            else:
                roster.sources[district.district_id] = str(data)
                continue
            roster.emulators[district.district_id] = emulator
    except BaseException:
        roster.stop()
        raise
    return roster


def district_add_args(district: PlannedDistrict, source: str, today: date) -> list[str]:
    """Return the `rostersync district add` arguments of a district."""
    args = [
        "district",
        "add",
        district.district_id,
        "--name",
        f"E2E District {district.district_id[-2:]}",
        "--provider",
        district.provider,
        "--source",
        source,
        "--timezone",
        district.timezone,
        "--sync-hour",
        str(district.sync_hour),
        "--contract-start",
        (today - timedelta(days=150)).isoformat(),
        "--contract-end",
        (today + timedelta(days=200)).isoformat(),
    ]
    if district.provider == "clever":
        args += ["--token-env", "E2E_CLEVER_TOKEN"]
    elif district.provider == "oneroster-rest":
        args += [
            "--client-id-env",
            "E2E_ONEROSTER_CLIENT_ID",
            "--client-secret-env",
            "E2E_ONEROSTER_CLIENT_SECRET",
        ]
    return args


def register_districts(stack: PrefectStack, roster: Roster) -> None:
    """Register every district with the command line, two commands at a time."""
    # The first command creates the store's schema, before any two run at once.
    stack.rostersync("district-list", "district", "list")
    today = datetime.now(UTC).date()

    def add(district: PlannedDistrict) -> str:
        source = roster.sources[district.district_id]
        return stack.rostersync(
            f"district-add-{district.district_id}",
            *district_add_args(district, source, today),
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(add, roster.districts))


# The store


class Store:
    """Read-only queries of the rostersync store on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def rows(self, query: str, **parameters: Any) -> list[sa.Row]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.text(query), parameters))

    def sync_runs(self, district_id: str | None = None) -> list[sa.Row]:
        """The daily-sync runs, oldest first, of one district or of all."""
        query = (
            "select id, district_id, status, reason, flow_run_id, finished_at "
            "from sync_runs where flow_name = :flow"
        )
        if district_id is not None:
            query += " and district_id = :district"
        return self.rows(
            query + " order by started_at", flow=FLOW_NAME, district=district_id
        )

    def finished_districts(self) -> set[str]:
        return {row.district_id for row in self.sync_runs() if row.finished_at}

    def counts(self, district_id: str) -> dict[str, int]:
        """Count the district's active students, educators and other roster rows."""
        query = """
            select
              (select count(*) from users where district_id = :d
                 and kind = 'student' and status = 'active') as students,
              (select count(*) from users where district_id = :d
                 and kind = 'educator' and status = 'active') as educators,
              (select count(*) from schools where district_id = :d
                 and status = 'active') as schools,
              (select count(*) from sections where district_id = :d
                 and status = 'active') as sections,
              (select count(*) from enrollments where district_id = :d
                 and status = 'active') as enrollments
        """
        return dict(self.rows(query, d=district_id)[0]._mapping)

    def lock_expired(self, district_id: str) -> bool:
        """Whether the district has no store lock or only an expired one."""
        rows = self.rows(
            "select expires_at < now() as expired from district_locks "
            "where district_id = :d",
            d=district_id,
        )
        return not rows or bool(rows[0].expired)

    def dispose(self) -> None:
        self.engine.dispose()


def wait_until(condition, timeout: float, message: str, poll: float = POLL_SECONDS):
    """Poll ``condition`` until it returns a true value; return that value.

    Fails the test with ``message`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (waited {timeout} s)")
        time.sleep(poll)


# The Prefect API


@contextmanager
def prefect_api(stack: PrefectStack) -> Iterator[Any]:
    """Point this process's Prefect client at the stack's server; yield a client."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: stack.api_url}),
        get_client(sync_client=True) as client,
    ):
        yield client


def trigger(stack: PrefectStack, deployment: str, **parameters: Any) -> UUID:
    """Start a run of ``deployment`` through the API without waiting for it."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        flow_run = run_deployment(deployment, parameters=parameters, timeout=0)
    stack.note(f"started {deployment} run {flow_run.id} with {parameters}")
    return flow_run.id


def deployment_runs(stack: PrefectStack, deployment: str) -> list[Any]:
    """Every flow run of ``deployment``."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with prefect_api(stack) as client:
        found = client.read_deployment_by_name(deployment)
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        )


def read_flow_run(stack: PrefectStack, flow_run_id: UUID | str) -> Any:
    with prefect_api(stack) as client:
        return client.read_flow_run(UUID(str(flow_run_id)))


def flow_run_state(stack: PrefectStack, flow_run_id: UUID | str) -> Any:
    return read_flow_run(stack, flow_run_id).state


def table_artifact(stack: PrefectStack, flow_run_id: str) -> Any:
    """The table artifact of one daily-sync flow run's counts."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
    )

    with prefect_api(stack) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
                type=ArtifactFilterType(any_=["table"]),
            )
        )
    counts = [a for a in artifacts if (a.key or "").startswith("sync-counts-")]
    assert counts, f"flow run {flow_run_id} has no sync-counts table artifact"
    return counts[0]


# The scenario


@dataclass
class Operations:
    """What the scenario did and saw, for the tests to check."""

    stack: PrefectStack
    store: Store
    roster: Roster
    dispatches: list[UUID] = field(default_factory=list)
    killed_run: sa.Row | None = None
    # The killed district's run statuses and roster counts once its store lock
    # had expired, before the second dispatch.
    killed_statuses: list[str] = field(default_factory=list)
    killed_counts: dict[str, int] = field(default_factory=dict)
    second_dispatch_runs: list[Any] = field(default_factory=list)


def _require(reason: str | None) -> None:
    """Skip the module with ``reason``, or fail it under CI=true."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operations]:
    """Run the whole scenario once; stop every process and drop the databases after."""
    _require(postgres_reachable(POSTGRES_ADMIN_URL))
    _require(
        None
        if os.access(CHROMIUM, os.X_OK)
        else f"Chromium is not installed at {CHROMIUM}; install the chromium package"
    )
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)

    districts = plan_districts(datetime.now(UTC))
    roster = serve_districts(districts, tmp_path_factory.mktemp("rosters"))
    stack = PrefectStack(OUTPUT, POSTGRES_ADMIN_URL, store_env=WORKER_ENV)
    store: Store | None = None
    try:
        # The districts are registered while the server starts and the project
        # is deployed, because each `rostersync` command takes seconds.
        stack.create_databases()
        with ThreadPoolExecutor(max_workers=1) as background:
            registering = background.submit(register_districts, stack, roster)
            stack.start_server()
            stack.deploy()
            for number in (1, 2):
                stack.start_worker(f"worker-{number}", limit=WORKER_LIMIT)
            registering.result()
        store = Store(stack.store_url)
        operations = Operations(stack, store, roster)
        run_scenario(operations)
        yield operations
    finally:
        roster.stop()
        if store is not None:
            store.dispose()
        stack.stop()


def run_scenario(operations: Operations) -> None:
    """Dispatch, kill the slow district's sync, dispatch again, and wait for all."""
    stack, store, roster = operations.stack, operations.store, operations.roster
    slow = roster.slow.district_id
    emulator = roster.emulators[slow]
    # The requests before the users pages get their responses at once, and the
    # emulator records a request once it has responded to it.
    emulator.add_fault(f"slow:seconds={SLOW_SECONDS_PER_RESPONSE},path=users,times=0")

    operations.dispatches.append(trigger(stack, DISPATCHER))
    killed = kill_slow_sync(operations)
    emulator.faults.clear()
    # A new worker takes the killed one's place, as a service manager would start.
    stack.start_worker("worker-3", limit=WORKER_LIMIT)

    # The dispatcher syncs the district again once the killed run's store lock
    # has expired and its flow run started longer ago than the wait plus the
    # lease. The other districts' syncs may still be going on.
    started = read_flow_run(stack, killed.flow_run_id).start_time
    lost_after = started + timedelta(seconds=DISTRICT_WAIT_SECONDS + LEASE_SECONDS)
    wait_until(
        lambda: store.lock_expired(slow) and datetime.now(UTC) > lost_after,
        LOCK_TIMEOUT_SECONDS,
        f"{slow}'s store lock did not expire",
    )
    operations.killed_run = killed
    operations.killed_statuses = [r.status for r in store.sync_runs(slow)]
    operations.killed_counts = store.counts(slow)

    before = {run.id for run in deployment_runs(stack, DAILY_SYNC)}
    second_dispatch = trigger(stack, DISPATCHER)
    operations.dispatches.append(second_dispatch)
    wait_until(
        lambda: flow_run_state(stack, second_dispatch).is_final(),
        SYNC_TIMEOUT_SECONDS,
        f"the second {DISPATCHER} run did not finish",
    )
    operations.second_dispatch_runs = [
        run for run in deployment_runs(stack, DAILY_SYNC) if run.id not in before
    ]
    wait_until(
        lambda: all(
            run.state is not None and run.state.is_final()
            for run in deployment_runs(stack, DAILY_SYNC)
        ),
        SYNC_TIMEOUT_SECONDS,
        "some daily-sync flow runs did not finish",
    )


def kill_slow_sync(operations: Operations) -> sa.Row:
    """Kill the worker of the slow district's sync, and that sync, while it pulls.

    The worker is paused first, which keeps it from taking more runs, and killed
    once the slow sync is its only run, so that the kill stops exactly one sync.
    A run it had claimed but not started would stay Pending until the dispatcher
    counts it as lost.
    The other worker's claims get their process within seconds, so a Pending run
    without a process for longer than UNSTARTED_SECONDS belongs to the paused
    worker, which is then resumed briefly to start it.
    """
    stack, store = operations.stack, operations.store
    slow = operations.roster.slow.district_id
    emulator = operations.roster.emulators[slow]

    def pulling() -> sa.Row | None:
        runs = store.sync_runs(slow)
        if runs and runs[0].status == "running" and emulator.requests:
            return runs[0]
        return None

    running = wait_until(
        pulling, SYNC_TIMEOUT_SECONDS, f"{slow}'s sync did not start", poll=0.5
    )
    worker, run_pid = stack.worker_of(running.flow_run_id)
    stack.pause(worker)
    unstarted_since: dict[UUID, float] = {}
    deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if child_pids(worker.process.pid) != [run_pid]:
            continue
        now = time.monotonic()
        unstarted_since = {
            run.id: unstarted_since.get(run.id, now)
            for run in unstarted_pending_runs(stack)
        }
        if not unstarted_since:
            stack.kill_worker_running(running.flow_run_id)
            return running
        if now - min(unstarted_since.values()) > UNSTARTED_SECONDS:
            stack.note(
                f"Pending flow runs without a process for over {UNSTARTED_SECONDS} "
                f"s: {sorted(map(str, unstarted_since))}"
            )
            stack.resume(worker)
            time.sleep(POLL_SECONDS)
            stack.pause(worker)
            unstarted_since = {}
    pytest.fail(f"{slow}'s sync never was the only run of {worker.name}")


def unstarted_pending_runs(stack: PrefectStack) -> list[Any]:
    """The Pending daily-sync runs that a worker claimed but has no process yet."""
    return [
        run
        for run in deployment_runs(stack, DAILY_SYNC)
        if run.state is not None
        and run.state.is_pending()
        and not run.infrastructure_pid
    ]


# The checks


def test_dispatcher_runs_complete(operations):
    states = [flow_run_state(operations.stack, run) for run in operations.dispatches]

    assert [state.type.value for state in states] == ["COMPLETED", "COMPLETED"]


def test_dispatch_syncs_each_due_district_once(operations):
    store, roster = operations.store, operations.roster

    for district in roster.due:
        if district.slow:
            continue
        runs = [r for r in store.sync_runs(district.district_id) if r.finished_at]
        assert len(runs) == 1, (district.district_id, "one finished run")
        assert runs[0].status == "completed", (district.district_id, runs[0].reason)


def test_store_counts_match_generated_data(operations):
    store, roster = operations.store, operations.roster

    for district in roster.due:
        expected = district.expected_counts()

        counts = store.counts(district.district_id)

        assert counts == expected, district.district_id


def test_not_due_districts_are_not_dispatched(operations):
    store, roster = operations.store, operations.roster
    daily_runs = deployment_runs(operations.stack, DAILY_SYNC)
    dispatched = {run.parameters.get("district_id") for run in daily_runs}

    for district in roster.not_due:
        assert store.sync_runs(district.district_id) == [], district.district_id
        assert district.district_id not in dispatched, district.district_id


def test_killed_sync_applied_nothing(operations):
    slow = operations.roster.slow.district_id

    assert operations.killed_statuses == ["running"], slow
    assert operations.killed_counts == dict.fromkeys(
        ("students", "educators", "schools", "sections", "enrollments"), 0
    ), slow


def test_killed_run_is_closed_as_stopped(operations):
    slow = operations.roster.slow.district_id
    killed_id = operations.killed_run.id

    closed = next(r for r in operations.store.sync_runs(slow) if r.id == killed_id)

    assert closed.status == "stopped", slow
    assert "stopped" in (closed.reason or ""), closed.reason
    assert closed.finished_at is not None, slow


def test_killed_flow_run_is_marked_crashed(operations):
    killed = operations.killed_run.flow_run_id

    state = flow_run_state(operations.stack, killed)

    assert state.type.value == "CRASHED", killed


def test_killed_district_synced_once_after_redispatch(operations):
    slow = operations.roster.slow.district_id

    statuses = [r.status for r in operations.store.sync_runs(slow)]

    assert statuses == ["stopped", "completed"], slow


def test_second_dispatch_syncs_only_the_killed_district(operations):
    runs = operations.second_dispatch_runs
    slow = operations.roster.slow.district_id

    districts = [run.parameters.get("district_id") for run in runs]

    assert districts == [slow]


def test_ui_shows_deployments_and_a_sync_artifact(operations):
    stack, store, roster = operations.stack, operations.store, operations.roster
    district = next(d for d in roster.due if not d.slow)
    run = next(
        r for r in store.sync_runs(district.district_id) if r.status == "completed"
    )
    artifact = table_artifact(stack, run.flow_run_id)

    deployments_dom = capture_page(
        f"{stack.ui_url}/deployments",
        OUTPUT / "deployments.png",
        OUTPUT / "deployments.html",
        OUTPUT / "chromium.log",
    )
    artifact_dom = capture_page(
        f"{stack.ui_url}/artifacts/artifact/{artifact.id}",
        OUTPUT / "artifact.png",
        OUTPUT / "artifact.html",
        OUTPUT / "chromium.log",
    )

    assert "daily-sync" in deployments_dom
    assert "sync-due-districts" in deployments_dom
    assert "<table" in artifact_dom
    assert district.district_id in artifact_dom
