"""Record runs, their findings, quarantined records and held plans."""

from __future__ import annotations

import json
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update

from rostersync.planning import Plan
from rostersync.roster import Finding
from rostersync.store.models import QuarantinedRecord, StoredPlan, SyncRun

RUNNING = "running"
# Findings kept on the run row; every quarantined record also has its own row.
MAX_FINDINGS_ON_RUN = 200


# A quarantined record's id or message can be the very value the store rejects.
MAX_PROVIDER_ID = 300
MAX_MESSAGE = 2_000


def storable_text(value: str | None, limit: int) -> str | None:
    """Return ``value`` without NUL characters and cut to ``limit`` characters."""
    if value is None:
        return None
    text = value.replace("\x00", "\\0")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def utc_now() -> datetime:
    return datetime.now(UTC)


def start_run(
    engine: Engine,
    district_id: str,
    flow_name: str,
    *,
    flow_run_id: str | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
) -> str:
    """Insert a running run for the district and return its id.

    With ``run_id`` given, a row already written under that id is kept.
    """
    run_id = run_id or str(uuid.uuid4())
    with engine.begin() as connection:
        if connection.execute(select(SyncRun.id).where(SyncRun.id == run_id)).first():
            return run_id
        connection.execute(
            insert(SyncRun).values(
                id=run_id,
                district_id=district_id,
                flow_name=flow_name,
                flow_run_id=flow_run_id,
                status=RUNNING,
                dry_run=dry_run,
                counts={},
                findings=[],
                timings={},
                started_at=utc_now(),
            )
        )
    return run_id


def finish_run(
    connection: Connection,
    run_id: str,
    *,
    status: str,
    reason: str | None,
    counts: dict[str, Any],
    findings: list[Finding],
    quarantined: int,
    timings: dict[str, float],
    store_version: int | None = None,
) -> None:
    """Set a run's final status and figures, and keep its quarantined records."""
    connection.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(
            status=status,
            reason=storable_text(reason, MAX_MESSAGE),
            counts=counts,
            quarantined=quarantined,
            findings=[
                {
                    key: storable_text(value, MAX_MESSAGE)
                    for key, value in f.as_dict().items()
                }
                for f in findings[:MAX_FINDINGS_ON_RUN]
            ],
            timings=timings,
            store_version=store_version,
            finished_at=utc_now(),
        )
    )
    rows = [
        {
            "run_id": run_id,
            "entity": finding.entity,
            "provider_id": storable_text(finding.provider_id, MAX_PROVIDER_ID),
            "check": finding.check,
            "message": storable_text(finding.message, MAX_MESSAGE),
        }
        for finding in findings
        if finding.level == "quarantine"
    ]
    if rows:
        connection.execute(insert(QuarantinedRecord), rows)


def store_plan(connection: Connection, run_id: str, plan: Plan) -> None:
    """Keep a held run's plan, compressed, for the operator's decision."""
    connection.execute(
        insert(StoredPlan).values(run_id=run_id, payload=plan_to_bytes(plan))
    )


def load_plan(connection: Connection, run_id: str) -> Plan | None:
    payload = connection.execute(
        select(StoredPlan.payload).where(StoredPlan.run_id == run_id)
    ).scalar_one_or_none()
    return None if payload is None else plan_from_bytes(payload)


def plan_to_bytes(plan: Plan) -> bytes:
    document = {
        "district_id": plan.district_id,
        "store_version": plan.store_version,
        "unchanged": plan.unchanged,
        "protected": plan.protected,
        "changes": {
            entity: json.loads(frame.to_json(orient="split", index=False))
            for entity, frame in plan.changes.items()
        },
    }
    return zlib.compress(json.dumps(document).encode("utf-8"))


def plan_from_bytes(payload: bytes) -> Plan:
    document = json.loads(zlib.decompress(payload))
    changes = {}
    for entity, split in document["changes"].items():
        frame = pd.DataFrame(split["data"], columns=split["columns"])
        for column in frame.columns:
            if column in {"school_ids", "before_school_ids", "changed"}:
                frame[column] = frame[column].map(
                    lambda v: tuple(v) if isinstance(v, list) else v
                )
        if "id" in frame.columns:
            frame["id"] = frame["id"].astype("Int64")
        changes[entity] = frame
    return Plan(
        district_id=document["district_id"],
        store_version=document["store_version"],
        changes=changes,
        unchanged=document["unchanged"],
        protected=document["protected"],
    )
