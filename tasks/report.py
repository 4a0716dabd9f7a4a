"""Task that publishes a run's summary as Prefect artifacts."""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from rostersync.report import render_markdown
from rostersync.results import SyncResult
from tasks.options import IO_TASK_OPTIONS, contain_errors

# Findings listed in the table artifact; the store keeps every quarantined record.
MAX_FINDING_ROWS = 100


@task(name="publish-report", **IO_TASK_OPTIONS)
@contain_errors
def publish_report(result: SyncResult) -> None:
    """Publish the counts and data-check findings as markdown and table artifacts."""
    key = _artifact_key(result.district_id)
    create_markdown_artifact(
        markdown=render_markdown(result),
        key=f"sync-{key}",
        description=f"Sync of district {result.district_id}: {result.status}",
    )
    rows = [{"entity": entity, **counts} for entity, counts in result.counts.items()]
    create_table_artifact(
        table=rows or [{"entity": "none"}],
        key=f"sync-counts-{key}",
        description=f"Changes per entity in district {result.district_id}",
    )
    if result.findings:
        create_table_artifact(
            table=result.findings[:MAX_FINDING_ROWS],
            key=f"sync-findings-{key}",
            description=(
                f"Data-check findings in district {result.district_id} "
                f"(first {MAX_FINDING_ROWS})"
            ),
        )
    get_run_logger().info(
        "district %s: %s, %d quarantined",
        result.district_id,
        result.status,
        result.quarantined,
    )


def _artifact_key(district_id: str) -> str:
    """Turn a district id into the lowercase letters, digits and dashes keys need."""
    key = re.sub(r"[^a-z0-9]+", "-", district_id.lower()).strip("-")
    return key or "district"
