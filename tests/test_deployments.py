"""prefect.yaml names a deployment for each operator flow, at a real entrypoint."""

from __future__ import annotations

import importlib
from pathlib import Path

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


def test_every_operator_flow_is_deployed():
    names = {deployment["name"] for deployment in DEPLOYMENTS}

    assert names == {
        "daily-sync",
        "decide-held-run",
        "undo-run",
        "set-data-manager",
        "purge-archived-users",
        "summer-school-onboarding",
        "revert-sharing-rules",
        "update-school-mapping",
    }


def test_reversion_runs_on_a_schedule():
    by_name = {deployment["name"]: deployment for deployment in DEPLOYMENTS}

    schedules = by_name["revert-sharing-rules"]["schedules"]

    assert [schedule["cron"] for schedule in schedules] == ["5 * * * *"]
