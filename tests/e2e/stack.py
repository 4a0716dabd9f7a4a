"""A real Prefect stack run as subprocesses, the way Prefect users deploy rostersync.

``PrefectStack`` creates two PostgreSQL databases, one for the Prefect server and
one for the rostersync store. It starts ``prefect server start`` on a free loopback
port, creates the process work pool, runs ``prefect deploy --all`` from the
repository root and starts process workers, as a test calls each step. Every
subprocess starts in its own session with telemetry off and a temporary
PREFECT_HOME, and every wait is bounded. ``stop()`` ends the workers, then the
server, and drops both databases. ``capture_page`` takes
a screenshot and a DOM dump of a page of the Prefect UI with headless Chromium.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CHROMIUM = Path("/usr/bin/chromium")
WORK_POOL = "rostersync-process"
LOOPBACK = "127.0.0.1"

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
}
# Bounds of the waits, in seconds.
HEALTH_TIMEOUT_SECONDS = 120
COMMAND_TIMEOUT_SECONDS = 300
# How often a worker polls for flow runs, in seconds; Prefect's default is 10.
WORKER_QUERY_SECONDS = 2
# A process still running this long after SIGTERM gets SIGINT. Prefect 3.9.1's
# worker turns SIGTERM into SIGINT itself and stops within a second.
SIGINT_AFTER_SECONDS = 3
STOP_TIMEOUT_SECONDS = 30
KILL_TIMEOUT_SECONDS = 15
CHROMIUM_TIMEOUT_SECONDS = 90
# Virtual time that Chromium lets the page's scripts and requests run before it
# takes the screenshot or dumps the DOM, in milliseconds.
CHROMIUM_VIRTUAL_TIME_MS = 15_000


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that no process listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def postgres_reachable(admin_url: str) -> str | None:
    """Return None when PostgreSQL at ``admin_url`` accepts a query, else why not."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        return f"PostgreSQL is not reachable at {admin_url}: {exc.orig}"
    finally:
        engine.dispose()
    return None


def run_admin(admin_url: str, statement: str) -> None:
    """Run one statement on the PostgreSQL server, outside a transaction."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()


@dataclass
class Worker:
    """One `prefect worker start` process and its log file."""

    name: str
    process: subprocess.Popen
    log_path: Path
    log_file: IO[bytes]


@dataclass
class PrefectStack:
    """A Prefect server on PostgreSQL with the project deployed and process workers.

    ``output`` receives the log of each process and ``stack.log``, the stack's own
    record of what it started, signalled and killed. ``store_env`` is added to the
    environment of the workers (and so of every flow run) and of `rostersync`
    commands.
    """

    output: Path
    admin_url: str
    store_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    suffix: str = field(default_factory=lambda: f"{os.getpid()}_{uuid.uuid4().hex[:8]}")
    workers: list[Worker] = field(default_factory=list)
    server: subprocess.Popen | None = None
    _server_log: IO[bytes] | None = None
    _home: Path | None = None
    _databases: list[str] = field(default_factory=list)

    # Names and URLs

    @property
    def server_database(self) -> str:
        return f"rostersync_e2e_prefect_{self.suffix}"

    @property
    def store_database(self) -> str:
        return f"rostersync_e2e_store_{self.suffix}"

    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL of the rostersync store (psycopg)."""
        url = sa.engine.make_url(self.admin_url).set(database=self.store_database)
        return url.render_as_string(hide_password=False)

    @property
    def server_database_url(self) -> str:
        """The Prefect server's database URL (asyncpg)."""
        url = sa.engine.make_url(self.admin_url).set(
            drivername="postgresql+asyncpg", database=self.server_database
        )
        return url.render_as_string(hide_password=False)

    # The stack's own log

    def note(self, message: str) -> None:
        """Append a timestamped line to stack.log and print it."""
        line = f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {message}"
        print(f"[e2e] {line}", flush=True)
        with (self.output / "stack.log").open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    # Environment and commands

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the environment of a stack process: this API, telemetry off.

        The test process's own PREFECT_ and ROSTERSYNC_ variables are left out, so
        every process talks to this stack's server and store only. PWD is the
        repository root, because prefect.yaml's pull step reads ``{{ $PWD }}``.
        """
        if self._home is None:
            raise RuntimeError(
                "The stack has no PREFECT_HOME yet; call create_databases() first."
            )
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PREFECT_", "ROSTERSYNC_"))
        }
        env.update(TELEMETRY_OFF)
        env.update(
            {
                "PREFECT_HOME": str(self._home),
                "PREFECT_API_URL": self.api_url,
                "PWD": str(ROOT),
            }
        )
        env.update(extra or {})
        return env

    def run(
        self,
        name: str,
        args: Sequence[str],
        *,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> str:
        """Run a command from the repository root; return its output.

        The output also goes to ``<name>.log`` in the output folder. Raises
        RuntimeError when the command fails or outlives ``timeout`` seconds, in
        which case its whole session is killed.
        """
        log_path = self.output / f"{name}.log"
        started = time.monotonic()
        process = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=self.env(extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            output, _ = process.communicate(timeout=KILL_TIMEOUT_SECONDS)
            _append(log_path, args, output)
            raise RuntimeError(
                f"{name} timed out after {timeout} s and was killed; see {log_path}."
            ) from None
        _append(log_path, args, output)
        text = output.decode("utf-8", errors="replace")
        seconds = time.monotonic() - started
        self.note(f"{name}: exit code {process.returncode} after {seconds:.1f} s")
        if process.returncode != 0:
            raise RuntimeError(
                f"{name} failed with exit code {process.returncode}; see {log_path}. "
                f"Last output:\n{text[-3000:]}"
            )
        return text

    def prefect(self, name: str, *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS):
        """Run `python -m prefect ARGS` against this stack's server."""
        return self.run(name, [PYTHON, "-m", "prefect", *args], timeout=timeout)

    def rostersync(self, name: str, *args: str) -> str:
        """Run `rostersync ARGS` on this stack's store."""
        return self.run(
            name,
            [PYTHON, "-m", "rostersync.cli", *args],
            extra_env={"ROSTERSYNC_DATABASE_URL": self.store_url, **self.store_env},
        )

    # Lifecycle

    def create_databases(self) -> None:
        """Create the output folder, PREFECT_HOME and both databases."""
        self.output.mkdir(parents=True, exist_ok=True)
        self._home = Path(tempfile.mkdtemp(prefix="rostersync-e2e-prefect-home-"))
        self.note(f"stack output in {self.output}; PREFECT_HOME {self._home}")
        for name in (self.server_database, self.store_database):
            run_admin(self.admin_url, f'create database "{name}"')
            self._databases.append(name)
            self.note(f"created database {name}")

    def deploy(self) -> None:
        """Create the process work pool and deploy prefect.yaml from the root."""
        self.prefect(
            "work-pool-create", "work-pool", "create", WORK_POOL, "--type", "process"
        )
        self.prefect("deploy", "--no-prompt", "deploy", "--all")

    def start_server(self) -> None:
        """Start `prefect server start` on PostgreSQL and wait until it is healthy.

        The scheduler service is off, so that no schedule of prefect.yaml creates
        runs during a test: a test starts every run itself.
        """
        log_path = self.output / "server.log"
        self._server_log = log_path.open("ab")
        env = self.env(
            {
                "PREFECT_API_DATABASE_CONNECTION_URL": self.server_database_url,
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            }
        )
        self.server = subprocess.Popen(
            [PYTHON, "-m", "prefect", "server", "start"]
            + ["--host", LOOPBACK, "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self._server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.note(f"server started, pid {self.server.pid}, port {self.port}")
        started = time.monotonic()
        deadline = started + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(
                    f"The Prefect server exited with code {self.server.returncode} "
                    f"before it was healthy; see {log_path}."
                )
            try:
                response = httpx.get(f"{self.api_url}/health", timeout=2)
                if response.status_code == 200:
                    seconds = time.monotonic() - started
                    self.note(f"server healthy after {seconds:.1f} s")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"The Prefect server at {self.api_url} was not healthy within "
            f"{HEALTH_TIMEOUT_SECONDS} s; see {log_path}."
        )

    def start_worker(self, name: str, limit: int = 3) -> Worker:
        """Start a process worker of the pool with ``store_env`` in its environment."""
        log_path = self.output / f"{name}.log"
        log_file = log_path.open("ab")
        env = self.env(
            {
                "ROSTERSYNC_DATABASE_URL": self.store_url,
                "PREFECT_WORKER_QUERY_SECONDS": str(WORKER_QUERY_SECONDS),
                **self.store_env,
            }
        )
        process = subprocess.Popen(
            [PYTHON, "-m", "prefect", "worker", "start"]
            + ["--pool", WORK_POOL, "--limit", str(limit), "--name", name],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(name, process, log_path, log_file)
        self.workers.append(worker)
        self.note(f"{name} started, pid {process.pid}, limit {limit}")
        return worker

    def stop(self) -> None:
        """Stop the workers, then the server, then drop both databases.

        Each step runs even when an earlier one fails; the first error is raised
        at the end.
        """
        errors: list[BaseException] = []
        for worker in list(self.workers):
            try:
                self.stop_worker(worker)
            except Exception as exc:  # noqa: BLE001 - the other steps still run
                errors.append(exc)
        if self.server is not None:
            # uvicorn 0.55 raises SIGTERM again after its graceful shutdown, so a
            # server that stopped cleanly exits with code -15.
            try:
                self._stop(self.server, "server")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            if self._server_log is not None:
                self._server_log.close()
            self.server = None
        for name in reversed(self._databases):
            try:
                run_admin(
                    self.admin_url, f'drop database if exists "{name}" with (force)'
                )
                self.note(f"dropped database {name}")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        self._databases.clear()
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
        if errors:
            raise errors[0]

    def stop_worker(self, worker: Worker) -> None:
        """Stop a worker cleanly, then any flow-run process it left running."""
        children = child_pids(worker.process.pid)
        self._stop(worker.process, worker.name)
        for pid in children:
            if process_alive(pid):
                self.note(
                    f"{worker.name}: flow-run process {pid} outlived the worker; "
                    "killing its session with SIGKILL as a last resort"
                )
                _kill_group(pid)
                wait_gone(pid, KILL_TIMEOUT_SECONDS)
        worker.log_file.close()
        self.workers.remove(worker)

    def _stop(self, process: subprocess.Popen, name: str) -> None:
        """SIGTERM, then SIGINT, then a bounded wait; SIGKILL only as a last resort."""
        if process.poll() is not None:
            self.note(f"{name} had already exited with code {process.returncode}")
            return
        started = time.monotonic()
        # A worker that pause() stopped handles no signal until it continues.
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        self.note(f"{name}: sent SIGTERM")
        try:
            process.wait(timeout=SIGINT_AFTER_SECONDS)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            self.note(f"{name}: still running; sent SIGINT")
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.note(
                    f"{name}: still running {STOP_TIMEOUT_SECONDS} s after SIGINT; "
                    "killing its process group with SIGKILL as a last resort"
                )
                _kill_group(process.pid)
                process.wait(timeout=KILL_TIMEOUT_SECONDS)
        seconds = time.monotonic() - started
        self.note(
            f"{name}: stopped with code {process.returncode} after {seconds:.1f} s"
        )
        if _group_alive(process.pid):
            self.note(
                f"{name}: processes of its group outlived it; killing the group "
                "with SIGKILL as a last resort"
            )
            _kill_group(process.pid)

    # The abrupt end of a worker

    def worker_of(self, flow_run_id: str) -> tuple[Worker, int]:
        """Return the worker running a flow run, and the pid of the run's process.

        The run's process is found through the flow run's ``infrastructure_pid``,
        and its parent is the worker.
        """
        run_pid = self.flow_run_pid(flow_run_id)
        parent = parent_pid(run_pid)
        worker = next((w for w in self.workers if w.process.pid == parent), None)
        if worker is None:
            raise RuntimeError(
                f"Flow run {flow_run_id} runs in process {run_pid}, whose parent "
                f"{parent} is none of the workers "
                f"{[w.process.pid for w in self.workers]}."
            )
        return worker, run_pid

    def pause(self, worker: Worker) -> None:
        """Stop a worker with SIGSTOP, so that it takes no flow run until resumed.

        The flow runs it started go on, in their own sessions.
        """
        worker.process.send_signal(signal.SIGSTOP)
        self.note(f"{worker.name}: paused with SIGSTOP")

    def resume(self, worker: Worker) -> None:
        """Continue a worker that pause() stopped."""
        worker.process.send_signal(signal.SIGCONT)
        self.note(f"{worker.name}: resumed with SIGCONT")

    def kill_worker_running(self, flow_run_id: str) -> Worker:
        """Kill, with SIGKILL, the worker running a flow run and the run's process.

        The process worker starts each flow run in a session of its own, so killing
        the worker's group alone would leave the run going. Returns the killed
        worker, which is no longer in ``workers``.
        """
        worker, run_pid = self.worker_of(flow_run_id)
        _kill_group(worker.process.pid)
        _kill_group(run_pid)
        worker.process.wait(timeout=KILL_TIMEOUT_SECONDS)
        if not wait_gone(run_pid, KILL_TIMEOUT_SECONDS):
            raise RuntimeError(f"Flow-run process {run_pid} survived SIGKILL.")
        worker.log_file.close()
        self.workers.remove(worker)
        self.note(
            f"killed {worker.name} (pid {worker.process.pid}) and flow run "
            f"{flow_run_id} (pid {run_pid}) with SIGKILL"
        )
        return worker

    def flow_run_pid(self, flow_run_id: str) -> int:
        """Return the local pid of a flow run's process, from the Prefect API.

        Prefect 3.9.1's process worker stores the pid alone as
        ``infrastructure_pid``; a "HOST:PID" value is read too.
        """
        response = httpx.get(f"{self.api_url}/flow_runs/{flow_run_id}", timeout=10)
        response.raise_for_status()
        value = response.json().get("infrastructure_pid")
        if not value:
            raise RuntimeError(f"Flow run {flow_run_id} has no infrastructure_pid yet.")
        return int(str(value).rsplit(":", 1)[-1])


# Processes, read from /proc


def parent_pid(pid: int) -> int:
    """Return the parent pid of ``pid`` from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name in brackets may contain spaces, so fields count from ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def child_pids(pid: int) -> list[int]:
    """Return the pids of the live processes whose parent is ``pid``, not zombies."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parent_pid(int(entry.name)) == pid:
                children.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return [child for child in children if process_alive(child)]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie, which only waits to be reaped, does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to end; return whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.1)
    return not process_alive(pid)


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _append(path: Path, args: Sequence[str], output: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(f"$ {' '.join(args)}\n".encode())
        handle.write(output)


# Headless Chromium


@contextmanager
def _profile() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rostersync-e2e-chromium-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chromium_args(profile: Path) -> list[str]:
    """Return Chromium's options for a headless capture that stays on loopback.

    ``--host-resolver-rules`` makes every host name but 127.0.0.1 unresolvable,
    so the page cannot reach another host even if it links one.
    """
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-pings",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        "--run-all-compositor-stages-before-draw",
        f"--virtual-time-budget={CHROMIUM_VIRTUAL_TIME_MS}",
    ]


def capture_page(url: str, screenshot: Path, dom: Path, log: Path) -> str:
    """Save a screenshot and the rendered DOM of ``url``; return the DOM.

    Each capture runs its own Chromium with a new, empty profile, in a session of
    its own. Chromium's messages go to ``log``. Raises RuntimeError when Chromium
    fails, writes no screenshot or outlives CHROMIUM_TIMEOUT_SECONDS.
    """
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"capture_page opens only loopback pages, not {url!r}.")
    screenshot.unlink(missing_ok=True)
    with _profile() as profile:
        _run_chromium([*chromium_args(profile), f"--screenshot={screenshot}", url], log)
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no screenshot of {url}; see {log}.")
    with _profile() as profile:
        text = _run_chromium([*chromium_args(profile), "--dump-dom", url], log)
    dom.write_text(text, encoding="utf-8")
    return text


def _run_chromium(args: list[str], log: Path) -> str:
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        output, errors = process.communicate(timeout=CHROMIUM_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate(timeout=KILL_TIMEOUT_SECONDS)
        raise RuntimeError(
            f"Chromium timed out after {CHROMIUM_TIMEOUT_SECONDS} s and was killed."
        ) from None
    finally:
        # Chromium's helper processes share its session and may outlive it.
        _kill_group(process.pid)
    _append(log, args, errors)
    if process.returncode != 0:
        raise RuntimeError(
            f"Chromium exited with code {process.returncode}; see {log}."
        )
    return output.decode("utf-8", errors="replace")
