"""Approval of a held plan through a real Prefect server (SQLite-backed).

The test starts `prefect server start` on loopback and runs the daily sync in a
child process against it. It resumes the paused run the way the Prefect UI does:
through the server's resume endpoint, with the form's input.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from rostersync.cli import run_sync
from tests import datasets
from tests.flows.test_safety import (
    DISTRICT,
    make_district,
    roster_rows,
    run_row,
    statuses,
    students,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop a Prefect process: SIGTERM, then SIGINT, then kill, bounded in time."""
    for sent in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if process.poll() is not None:
            return
        process.send_signal(sent)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory) -> Iterator[str]:
    """A Prefect server on loopback with its own SQLite database; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/p.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port), "--no-services"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"prefect server exited: {(home / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"prefect server did not start in {SERVER_START_SECONDS} s")
        yield url
    finally:
        stop(process)
        log.close()


def start_sync(api_url: str, timeout_hours: float) -> subprocess.Popen:
    """Run the daily sync of the test district in a child process on the server."""
    code = (
        "import sys; from flows.daily_sync import daily_sync; "
        f"state = daily_sync({DISTRICT!r}, approval_timeout_hours={timeout_hours!r}, "
        "return_state=True); print('STATUS', state.result().status)"
    )
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def paused_run(api_url: str, process: subprocess.Popen, seconds: float = 120) -> str:
    """Wait until the sync's flow run is paused for input; return its id."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the sync ended before pausing: {process.stdout.read()}")
        response = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}},
            timeout=10,
        )
        runs = response.json()
        if runs:
            return runs[0]["id"]
        time.sleep(1)
    pytest.fail("the sync did not pause for an operator's decision")


def answer(api_url: str, flow_run_id: str, approve: bool) -> None:
    """Resume the paused run with the approval form's input, as the UI does."""
    response = httpx.post(
        f"{api_url}/flow_runs/{flow_run_id}/resume",
        json={
            "run_input": {
                "approve": approve,
                "reason": "checked with the district",
                "approver": "ops-ui",
            }
        },
        timeout=10,
    )
    assert response.json()["status"] == "ACCEPT"


def finish(process: subprocess.Popen, seconds: float = 180) -> str:
    try:
        output, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail("the sync did not finish after the decision")
    return output


def held_district(tmp_path: Path) -> tuple[list[str], dict]:
    folder = make_district(tmp_path)
    assert run_sync(DISTRICT).status == "completed"
    gone = students(folder)[:15]
    datasets.remove_oneroster_users(folder, set(gone))
    return gone, roster_rows()


def latest_run_id() -> str:
    from rostersync.store.database import get_engine

    with get_engine().connect() as connection:
        return connection.execute(
            sa.text("select id from sync_runs order by started_at desc limit 1")
        ).scalar_one()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_approval_in_the_ui_applies_the_held_plan(store_url, tmp_path, prefect_server):
    gone, _ = held_district(tmp_path)
    process = start_sync(prefect_server, timeout_hours=1)

    answer(prefect_server, paused_run(prefect_server, process), approve=True)

    output = finish(process)
    assert "STATUS completed" in output
    assert statuses(gone) == {"archived"}
    row = run_row(latest_run_id())
    assert (row.decision, row.decided_by) == ("approved", "ops-ui")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_rejection_in_the_ui_archives_nothing(store_url, tmp_path, prefect_server):
    gone, before = held_district(tmp_path)
    process = start_sync(prefect_server, timeout_hours=1)

    answer(prefect_server, paused_run(prefect_server, process), approve=False)

    assert "STATUS rejected" in finish(process)
    assert roster_rows() == before
    assert statuses(gone) == {"active"}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_unanswered_approval_times_out_as_rejected(store_url, tmp_path, prefect_server):
    gone, before = held_district(tmp_path)
    # Twelve seconds, so that the test waits for the timeout and no longer.
    process = start_sync(prefect_server, timeout_hours=12 / 3600)

    paused_run(prefect_server, process)

    assert "STATUS rejected" in finish(process)
    assert roster_rows() == before
    row = run_row(latest_run_id())
    assert (row.status, row.decision) == ("rejected", "expired")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_approval_answers_the_waiting_run(store_url, tmp_path, prefect_server):
    gone, _ = held_district(tmp_path)
    process = start_sync(prefect_server, timeout_hours=1)
    paused_run(prefect_server, process)
    run_id = latest_run_id()

    approval = subprocess.run(
        [sys.executable, "-m", "rostersync.cli", "runs", "approve", run_id,
         "--by", "ops-cli", "--reason", "ok"],
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert approval.returncode == 0
    assert "STATUS completed" in finish(process)
    assert statuses(gone) == {"archived"}
    assert run_row(run_id).decided_by == "ops-cli"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_blank_approver_rejected_run_waits(store_url, tmp_path, prefect_server):
    gone, before = held_district(tmp_path)
    process = start_sync(prefect_server, timeout_hours=1)
    flow_run_id = paused_run(prefect_server, process)

    response = httpx.post(
        f"{prefect_server}/flow_runs/{flow_run_id}/resume",
        json={"run_input": {"approve": True, "reason": "ok", "approver": "   "}},
        timeout=10,
    )

    assert response.json()["status"] == "REJECT"
    answer(prefect_server, flow_run_id, approve=False)
    assert "STATUS rejected" in finish(process)
    assert roster_rows() == before


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_approval_of_a_stale_waiting_plan_fails(
    store_url, tmp_path, prefect_server
):
    from rostersync.demo import DemoSize, write_demo_district

    gone, _ = held_district(tmp_path)
    process = start_sync(prefect_server, timeout_hours=1)
    paused_run(prefect_server, process)
    run_id = latest_run_id()
    # Another sync changes the store while the plan waits.
    write_demo_district(
        tmp_path / "roster", DemoSize(students=61, schools=2), district=DISTRICT
    )
    assert run_sync(DISTRICT).status == "completed"

    approval = subprocess.run(
        [sys.executable, "-m", "rostersync.cli", "runs", "approve", run_id,
         "--by", "ops-cli", "--reason", "ok"],
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert approval.returncode == 1
    assert "stale" in approval.stderr
    finish(process)
    assert run_row(run_id).status == "stale"
