"""A reset whose process is killed part way, then run again, ends like one that was not.

Two copies of one store with four districts: `rostersync reset` runs on the first
until a district's export is in the ledger and is then killed with SIGKILL; a
second `rostersync reset` resumes. The other copy is reset in one go. Both run as
child processes against the test session's Prefect API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from rostersync.export import CSV_NAME, MANIFEST_NAME, PARQUET_NAME, export_folder
from rostersync.store.database import dispose_engines
from tests.flows.test_reset import (
    ENDING,
    add_activity,
    register_portal_district,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")

DISTRICTS = ("k1", "k2", "k3", "k4")
# Bounds of the wait for the first district's export, and of each child process.
KILL_WAIT_SECONDS = 120
RUN_TIMEOUT_SECONDS = 300


def command_env(store: str) -> dict[str, str]:
    """The environment of a child `rostersync` process: this session's API."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["ROSTERSYNC_DATABASE_URL"] = store
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    env["DO_NOT_TRACK"] = "1"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def reset_command(exports: Path) -> list[str]:
    script = Path(sys.executable).with_name("rostersync")
    return [str(script), "reset", "--export-dir", str(exports), "--json"]


def copy_store(url: str, tmp_path: Path) -> str:
    """Return the URL of a copy of the store at ``url``."""
    dispose_engines()
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        copy = tmp_path / "copy.db"
        shutil.copyfile(parsed.database, copy)
        return f"sqlite:///{copy}"
    name = f"{parsed.database}_copy"
    run_admin(url, f'create database "{name}" template "{parsed.database}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop_copy(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    run_admin(url, f'drop database if exists "{parsed.database}" with (force)')


def run_admin(url: str, statement: str) -> None:
    """Run a statement on the PostgreSQL server of ``url``, outside a transaction."""
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sa.text(statement))
    admin.dispose()


def ledger_values(url: str, query: str) -> list:
    """Return the first column of a query on the store at ``url``, own engine."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query)).scalars())
    finally:
        engine.dispose()


def ledger_rows(url: str) -> int:
    return ledger_values(url, "select count(*) from reset_ledger")[0]


def reset_districts(url: str) -> set[str]:
    return set(
        ledger_values(url, "select district_id from reset_ledger where step = 'reset'")
    )


def state_of(url: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The store at ``url`` without the times and ids a run sets."""
    from rostersync.settings import get_settings

    dispose_engines()
    monkeypatch.setenv("ROSTERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()
    tables = snapshot()
    dispose_engines()
    for table, columns in {
        "bookshelf_items": ("cleared_at",),
        "book_requests": ("cleared_at",),
        "my_students": ("cleared_at",),
        "users": ("updated_at",),
        "reset_ledger": ("id", "done_at"),
    }.items():
        for row in tables[table]:
            for column in columns:
                row[column] = "set" if row[column] != "None" else "None"
    for row in tables["reset_ledger"]:
        # The manifest records when it was written, so its checksum differs.
        row["detail"] = re.sub(
            r"'manifest.json': '[0-9a-f]+'", "'manifest.json': 'set'", row["detail"]
        )
    tables["reset_ledger"].sort(key=lambda row: (row["district_id"], row["step"]))
    runs = tables.pop("sync_runs")
    tables["completed_runs"] = sorted(
        (row["district_id"], row["flow_name"])
        for row in runs
        if row["status"] == "completed"
    )
    tables["other_runs"] = sorted(
        (row["status"], row["reason"]) for row in runs if row["status"] != "completed"
    )
    return tables


def test_killed_reset_resumes_to_the_same_state(store_url, tmp_path, monkeypatch):
    for number, district in enumerate(DISTRICTS):
        register_portal_district(district, students=150)
        add_activity(district, seed=number)
    killed_store = store_url
    whole_store = copy_store(store_url, tmp_path)
    killed_exports = tmp_path / "killed"
    whole_exports = tmp_path / "whole"
    try:
        whole = subprocess.run(
            reset_command(whole_exports),
            env=command_env(whole_store),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        assert whole.returncode == 0, whole.stderr[-2000:]

        process = subprocess.Popen(
            reset_command(killed_exports),
            env=command_env(killed_store),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while ledger_rows(killed_store) == 0 and time.monotonic() < deadline:
            assert process.poll() is None, "the reset ended before it could be killed"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed_at = datetime.now(UTC)
        reset_at_kill = reset_districts(killed_store)

        assert process.returncode == -signal.SIGKILL
        assert len(reset_at_kill) < len(DISTRICTS)

        resumed = subprocess.run(
            reset_command(killed_exports),
            env=command_env(killed_store),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        reports = json.loads(resumed.stdout.splitlines()[-1])["districts"]

        killed_state = state_of(killed_store, monkeypatch)
        whole_state = state_of(whole_store, monkeypatch)
    finally:
        dispose_engines()
        drop_copy(whole_store)

    # The first district's export was recorded before the kill and kept.
    first = export_folder(killed_exports, DISTRICTS[0], ENDING)
    exported_at = json.loads((first / MANIFEST_NAME).read_text())["exported_at"]
    assert datetime.fromisoformat(exported_at) < killed_at
    assert [r["status"] for r in reports] == ["completed"] * len(reports)
    assert {r["district_id"] for r in reports} == set(DISTRICTS) - reset_at_kill

    # Every table ends as in the run that was not killed.
    other_runs = killed_state.pop("other_runs")
    assert whole_state.pop("other_runs") == []
    for status, reason in other_runs:
        assert status == "failed"
        assert "stopped before it finished" in reason
    for table in whole_state:
        assert killed_state[table] == whole_state[table], table
    for district in DISTRICTS:
        killed_folder = export_folder(killed_exports, district, ENDING)
        whole_folder = export_folder(whole_exports, district, ENDING)
        assert (killed_folder / CSV_NAME).read_bytes() == (
            whole_folder / CSV_NAME
        ).read_bytes(), district
        assert pq.read_table(killed_folder / PARQUET_NAME).equals(
            pq.read_table(whole_folder / PARQUET_NAME)
        ), district
        assert sorted(p.name for p in killed_folder.iterdir()) == [
            MANIFEST_NAME,
            CSV_NAME,
            PARQUET_NAME,
        ], district
