"""The undo-run flow: revert the changes of an applied run, recorded as a run."""

from __future__ import annotations

import re
import traceback
import uuid
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, Field

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.store.database import get_engine, store_errors
from rostersync.store.runs import finish_run, utc_now
from rostersync.store.undo import (
    COMPLETED,
    COUNT_KEYS,
    UNDO_FLOW_NAME,
    check_undoable,
    read_store_version,
    start_undo_run,
    undo_changes,
)
from tasks.options import IO_TASK_OPTIONS, contain_errors

UndoStatus = Literal["completed", "failed"]
FAILED: UndoStatus = "failed"


class UndoResult(BaseModel):
    """The outcome of one undo, in ids and counts only."""

    undone_run_id: str
    status: UndoStatus
    reason: str | None = None
    district_id: str | None = None
    # The id of the undo's own sync_runs row, or None when it was rejected before.
    run_id: str | None = None
    flow_run_id: str | None = None
    # The district's store version after the undo.
    store_version: int | None = None
    # Per entity: reverted, restored, archived and skipped rows.
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Return the public JSON shape of the result."""
        return self.model_dump()


@flow(
    name=UNDO_FLOW_NAME,
    description=(
        "Revert every change an applied run logged: archived rows become active, "
        "restored rows archived, updated fields get their before values and created "
        "rows are archived. Rows a later run changed are skipped. The undo is "
        "recorded as its own run and can itself be undone."
    ),
    log_prints=False,
    validate_parameters=True,
    persist_result=False,
)
def undo_run(
    run_id: Annotated[str, Field(description="The id of the applied run to undo.")],
    by: Annotated[str, Field(description="Who decided the undo.")],
    reason: Annotated[str, Field(description="Why the run is undone.")],
) -> State:
    """Undo the applied run ``run_id`` and return an UndoResult as the state's data."""
    result = UndoResult(undone_run_id=run_id, status=FAILED, flow_run_id=_flow_run_id())
    try:
        _require_operator_text(run_id, by, reason)
        result.district_id = check_undo_request(run_id)
        result.run_id = str(uuid.uuid4())
        _apply(result, by, reason)
    except RostersyncError as exc:
        result.reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a crash must still return a result
        # The message of an unexpected error may quote record values, so the log
        # gets the class and the stack without it.
        get_run_logger().error(
            "undo of run %s crashed with %s at\n%s",
            run_id,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        if result.status == FAILED:
            result.reason = (
                f"The undo of run {run_id} crashed with {type(exc).__name__}. It was "
                "applied only if sync_runs has a completed undo-run row with "
                f"undoes_run_id {run_id}. The flow run's logs have the details."
            )

    _publish(result)
    if result.status == FAILED:
        get_run_logger().error("undo of run %s failed: %s", run_id, result.reason)
        return Failed(message=result.reason, data=result)
    return Completed(message=result.status, data=result)


def _require_operator_text(run_id: str, by: str, reason: str) -> None:
    required = (
        (by, "who decided it", "--by NAME"),
        (reason, "why it is done", "--reason TEXT"),
    )
    for value, missing, option in required:
        if not value.strip():
            raise ConfigurationError(
                f"The undo of run {run_id} is missing {missing}, so nothing was "
                f"changed. Pass {option}."
            )


def _apply(result: UndoResult, by: str, reason: str) -> None:
    """Apply the undo, or record the undo's run as failed and re-raise the error."""
    try:
        counts, version = apply_undo(result, by.strip(), reason.strip())
    except RostersyncError as exc:
        _record_failure(result, by.strip(), reason.strip(), str(exc))
        raise
    result.status, result.counts, result.store_version = "completed", counts, version
    result.reason = (
        f"{UNDO_FLOW_NAME}: run {result.undone_run_id} was undone by run "
        f"{result.run_id}."
    )
    get_run_logger().info(
        "district %s: run %s undone by run %s: %s",
        result.district_id,
        result.undone_run_id,
        result.run_id,
        _describe_counts(counts),
    )


def _record_failure(result: UndoResult, by: str, reason: str, message: str) -> None:
    """Record the failed undo's run, and log (not raise) a failure to record it."""
    try:
        record_failed_undo(result, by, reason, message)
    except RostersyncError as exc:
        get_run_logger().error(
            "undo run %s of run %s could not be recorded as failed: %s",
            result.run_id,
            result.undone_run_id,
            exc,
        )


def _publish(result: UndoResult) -> None:
    """Publish the report, and log (not raise) a failure to publish it."""
    try:
        publish_undo_report(result)
    except RostersyncError as exc:
        get_run_logger().error(
            "undo of run %s: the report was not published: %s",
            result.undone_run_id,
            exc,
        )


# Tasks


@task(name="check-undo-request", **IO_TASK_OPTIONS)
@contain_errors
def check_undo_request(run_id: str) -> str:
    """Return the run's district, or raise UndoRejectedError if it is not undoable."""
    with store_errors(), get_engine().connect() as connection:
        return check_undoable(connection, run_id)


@task(name="apply-undo", **IO_TASK_OPTIONS)
@contain_errors
def apply_undo(
    result: UndoResult, by: str, reason: str
) -> tuple[dict[str, dict[str, int]], int]:
    """Record the undo's run, revert the changes and close the run, in one
    transaction; return the counts and the new store version."""
    now = utc_now()
    undo_run_id = result.run_id or ""
    with store_errors(), get_engine().begin() as connection:
        start_undo_run(
            connection,
            undo_run_id=undo_run_id,
            run_id=result.undone_run_id,
            district_id=result.district_id or "",
            by=by,
            reason=reason,
            flow_run_id=result.flow_run_id,
            now=now,
        )
        counts = undo_changes(connection, result.undone_run_id, undo_run_id, now)
        version = read_store_version(connection, result.district_id or "")
        finish_run(
            connection,
            undo_run_id,
            status=COMPLETED,
            reason=f"Undid run {result.undone_run_id}.",
            counts=counts,
            findings=[],
            quarantined=0,
            timings={},
            store_version=version,
        )
    return counts, version


@task(name="record-failed-undo", **IO_TASK_OPTIONS)
@contain_errors
def record_failed_undo(result: UndoResult, by: str, reason: str, message: str) -> None:
    """Record the undo's run as failed, with who asked for it; nothing is reverted."""
    with store_errors(), get_engine().begin() as connection:
        start_undo_run(
            connection,
            undo_run_id=result.run_id or "",
            run_id=result.undone_run_id,
            district_id=result.district_id or "",
            by=by,
            reason=reason,
            flow_run_id=result.flow_run_id,
            now=utc_now(),
        )
        finish_run(
            connection,
            result.run_id or "",
            status=FAILED,
            reason=message,
            counts={},
            findings=[],
            quarantined=0,
            timings={},
        )


@task(name="publish-undo-report", **IO_TASK_OPTIONS)
@contain_errors
def publish_undo_report(result: UndoResult) -> None:
    """Publish the undo's ids, status and counts as a markdown artifact."""
    create_markdown_artifact(
        markdown=render_undo_markdown(result),
        key=f"undo-{_artifact_key(result.district_id or 'unknown-district')}",
        description=f"Undo of run {result.undone_run_id}: {result.status}",
    )


# Report


def render_undo_markdown(result: UndoResult) -> str:
    """Return the undo's summary as markdown: ids, status, reason and counts.

    The operator's name and reason stay in the store and out of the artifact.
    """
    lines = [f"# Undo of run {result.undone_run_id}: {result.status}", ""]
    lines += [f"- district: {result.district_id or 'unknown'}"]
    lines += [f"- undo run: {result.run_id or 'none'}"]
    if result.store_version is not None:
        lines += [f"- store version: {result.store_version}"]
    lines += [""]
    if result.reason:
        lines += [f"**Reason:** {result.reason}", ""]
    if result.counts:
        lines += ["| entity | " + " | ".join(COUNT_KEYS) + " |"]
        lines += ["|---" * (len(COUNT_KEYS) + 1) + "|"]
        for entity, counts in result.counts.items():
            values = " | ".join(str(counts.get(key, 0)) for key in COUNT_KEYS)
            lines.append(f"| {entity} | {values} |")
    return "\n".join(lines) + "\n"


def _describe_counts(counts: dict[str, dict[str, int]]) -> str:
    return "; ".join(
        f"{entity} " + ", ".join(f"{number} {key}" for key, number in figures.items())
        for entity, figures in counts.items()
    )


def _artifact_key(district_id: str) -> str:
    """Turn a district id into the lowercase letters, digits and dashes keys need."""
    key = re.sub(r"[^a-z0-9]+", "-", district_id.lower()).strip("-")
    return key or "district"


def _flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
