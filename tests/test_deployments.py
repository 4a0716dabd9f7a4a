"""prefect.yaml names a deployment for each operator flow, at a real entrypoint."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_is_the_flow_of_the_same_name(deployment):
    path, name = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))

    flow = getattr(module, name)

    assert isinstance(flow, Flow)
    assert flow.name == deployment["name"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_deployment_runs_without_telemetry(deployment):
    env = deployment["work_pool"]["job_variables"]["env"]

    assert env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_flow_runs_outlive_their_worker(deployment):
    assert deployment["work_pool"]["job_variables"]["stream_output"] is False


def test_every_operator_flow_is_deployed():
    names = {deployment["name"] for deployment in DEPLOYMENTS}

    assert names == {
        "sync-due-districts",
        "daily-sync",
        "decide-held-run",
        "undo-run",
        "set-data-manager",
        "purge-archived-users",
        "summer-school-onboarding",
        "revert-sharing-rules",
        "update-school-mapping",
        "new-school-year-reset",
    }


def test_reversion_runs_on_a_schedule():
    by_name = {deployment["name"]: deployment for deployment in DEPLOYMENTS}

    schedules = by_name["revert-sharing-rules"]["schedules"]

    assert [schedule["cron"] for schedule in schedules] == ["5 * * * *"]


def test_dispatcher_runs_every_hour():
    by_name = {deployment["name"]: deployment for deployment in DEPLOYMENTS}

    schedules = by_name["sync-due-districts"]["schedules"]

    assert [schedule["cron"] for schedule in schedules] == ["0 * * * *"]


def test_dispatches_never_overlap():
    by_name = {deployment["name"]: deployment for deployment in DEPLOYMENTS}

    limit = by_name["sync-due-districts"]["concurrency_limit"]

    assert limit == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_purge_runs_every_day():
    by_name = {deployment["name"]: deployment for deployment in DEPLOYMENTS}

    schedules = by_name["purge-archived-users"]["schedules"]

    assert [schedule["cron"] for schedule in schedules] == ["30 2 * * *"]


def _reset_runs(year: int) -> list[tuple[datetime, dict]]:
    """Return the reset deployment's scheduled times in ``year``, with parameters."""
    from prefect.server.schemas.schedules import CronSchedule

    by_name = {deployment["name"]: deployment for deployment in DEPLOYMENTS}
    runs = []
    for entry in by_name["new-school-year-reset"]["schedules"]:
        schedule = CronSchedule(cron=entry["cron"], timezone=entry["timezone"])
        start = datetime(year, 1, 1, tzinfo=UTC)
        end = datetime(year + 1, 1, 1, tzinfo=UTC)
        dates = schedule.get_dates(n=1000, start=start, end=end)
        # Prefect returns a coroutine when it finds an event loop it may use.
        if inspect.isawaitable(dates):
            dates = asyncio.run(dates)
        for when in dates:
            runs.append((when, entry.get("parameters", {})))
    return runs


@pytest.mark.parametrize(
    "zone", ["Pacific/Kiritimati", "America/New_York", "Etc/GMT+12", "Pacific/Honolulu"]
)
def test_reset_runs_within_two_hours_of_local_august_first(zone):
    midnight = datetime(2027, 8, 1, tzinfo=ZoneInfo(zone))

    resets = [
        when
        for when, parameters in _reset_runs(2027)
        if not parameters.get("dry_run")
        and midnight <= when < midnight + timedelta(hours=2)
    ]

    assert len(resets) == 2


def test_reset_preview_runs_two_weeks_before_as_a_dry_run():
    previews = [when for when, parameters in _reset_runs(2027) if parameters]

    assert [(when.month, when.day) for when in previews] == [(7, 18)]
