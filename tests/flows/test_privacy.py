"""Student data stays out of logs, artifacts, findings and run records."""

from __future__ import annotations

import csv
import json

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker

from rostersync.cli import run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.store.database import get_engine
from rostersync.store.districts import add_district

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Distinctive values, so that finding any of them in an output is conclusive.
GIVEN = "Zyxwquartz"
FAMILY = "Vemplorth"
BAD_EMAIL = "zyxwquartz.vemplorth.example"
PARENT_EMAIL = "qorvandel@parents.invalid"


def write_district_with_bad_records(folder):
    """The demo district plus a student with a bad email and grade, and a parent."""
    write_demo_district(folder, DemoSize(students=40, schools=1))
    with (folder / "users.csv").open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        school = "demo-sch-1"
        writer.writerow(
            ["pii-1", "active", "", "true", school, "student", "zq", "", GIVEN, FAMILY,
             "", "991", BAD_EMAIL, "", "", "", "Grade Zyxwquartz", ""]
        )  # fmt: skip
        writer.writerow(
            ["pii-2", "active", "", "true", school, "student", "zq2", "", GIVEN, FAMILY,
             "", "992", "ok@school.invalid", "", "", "", "Grade Zyxwquartz", ""]
        )  # fmt: skip
        writer.writerow(
            ["pii-3", "active", "", "true", school, "parent", "pq", "", GIVEN, FAMILY,
             "", "993", PARENT_EMAIL, "", "", "", "", ""]
        )  # fmt: skip


def everything_the_run_published(flow_run_id: str, run_id: str) -> str:
    APILogWorker.drain_all(timeout=5)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    with get_engine().connect() as connection:
        run = connection.execute(
            sa.text("select reason, findings from sync_runs where id = :r"),
            {"r": run_id},
        ).one()
        quarantine = (
            connection.execute(
                sa.text("select message from quarantined_records where run_id = :r"),
                {"r": run_id},
            )
            .scalars()
            .all()
        )
    parts = [json.dumps(artifact.data) for artifact in artifacts]
    parts += [log.message for log in logs]
    parts += [str(run.reason), json.dumps(run.findings), *quarantine]
    return "\n".join(parts)


def test_no_student_data_in_run_outputs(store_url, tmp_path, capsys):
    folder = tmp_path / "district"
    write_district_with_bad_records(folder)
    add_district(
        get_engine(), "pii", name="PII", provider="oneroster-csv", source=str(folder)
    )

    result = run_sync("pii")
    published = everything_the_run_published(result.flow_run_id, result.run_id)
    published += capsys.readouterr().out + capsys.readouterr().err
    published += result.model_dump_json()

    assert result.status == "completed"
    assert result.quarantined >= 1
    assert "pii-1" in published
    assert "extract-roster" in published or "pulled" in published
    for value in (GIVEN, FAMILY, BAD_EMAIL, PARENT_EMAIL):
        assert value not in published


def test_crash_closes_run_without_quoting_the_error(store_url, tmp_path, monkeypatch):
    import flows.daily_sync
    import tasks.extract

    folder = tmp_path / "district"
    write_demo_district(folder, DemoSize(students=10, schools=1))
    add_district(
        get_engine(),
        "crash",
        name="Crash",
        provider="oneroster-csv",
        source=str(folder),
    )

    def explode(integration, **options):
        raise KeyError(GIVEN)

    monkeypatch.setattr(tasks.extract, "read_roster", explode)
    monkeypatch.setattr(
        flows.daily_sync,
        "extract_roster",
        tasks.extract.extract_roster.with_options(retries=0),
    )

    result = run_sync("crash")
    with get_engine().connect() as connection:
        status = connection.execute(
            sa.text("select status from sync_runs where id = :r"), {"r": result.run_id}
        ).scalar_one()
    published = everything_the_run_published(result.flow_run_id, result.run_id)

    assert result.status == "failed"
    assert "KeyError" in (result.reason or "")
    assert status == "failed"
    assert "extract_roster failed with KeyError" in published
    assert GIVEN not in published
    assert GIVEN not in result.model_dump_json()
