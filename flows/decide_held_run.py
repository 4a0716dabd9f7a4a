"""Approve or reject a held plan from the Prefect UI or the command line."""

from __future__ import annotations

import time
from typing import Annotated
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.store.database import get_engine, store_errors
from rostersync.store.decisions import APPLIED, REJECTED, STALE, load_run
from tasks.approval import approval_server_available, record_decision

FLOW_NAME = "decide-held-run"
# Seconds to wait for a resumed run to record the decision it received.
RESUMED_WAIT_SECONDS = 120


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def decide_held_run(
    run_id: str,
    approve: bool,
    by: Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")],
    reason: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")],
) -> State:
    """Apply (``approve``) or drop the stored plan of a held run; record who and why.

    When the held run's flow run is still paused for input on this Prefect server,
    the decision is sent to it as that input, and that run applies it. Otherwise
    the plan is applied here, and only if the district's store has not changed
    since the plan was made.
    """
    logger = get_run_logger()
    try:
        with store_errors():
            run = load_run(get_engine(), run_id)
        if run["status"] != "held":
            raise ConfigurationError(
                f"Run {run_id} is {run['status']}, not held, so there is nothing to "
                "decide; `rostersync runs list --status held` lists the runs that "
                "wait for a decision."
            )
        if _resume_waiting_run(run.get("flow_run_id"), approve, by, reason):
            return _waited_outcome(run_id, run["district_id"], run["flow_run_id"])
        outcome = record_decision(
            run_id, "approved" if approve else "rejected", by, reason
        )
    except RostersyncError as exc:
        logger.error("run %s: %s", run_id, exc)
        return Failed(message=str(exc), data={"run_id": run_id, "error": str(exc)})
    _publish(run_id, outcome.district_id, outcome.status, outcome.message)
    if outcome.status in {APPLIED, REJECTED}:
        return Completed(message=outcome.message, data=outcome.as_dict())
    return Failed(message=outcome.message, data=outcome.as_dict())


def _waited_outcome(run_id: str, district_id: str, flow_run_id: str) -> State:
    """Wait for the resumed run to record the decision, and report its outcome."""
    deadline = time.monotonic() + RESUMED_WAIT_SECONDS
    run = {"status": "held"}
    while time.monotonic() < deadline:
        with store_errors():
            run = load_run(get_engine(), run_id)
        if run["status"] != "held":
            break
        time.sleep(1)
    status = run["status"]
    if status == "held":
        message = (
            f"Flow run {flow_run_id} received the decision on run {run_id} but has "
            f"not recorded it after {RESUMED_WAIT_SECONDS} s; its logs say why."
        )
    else:
        message = (
            f"Flow run {flow_run_id} received the decision and run {run_id} is now "
            f"{status}."
        )
        if status == STALE:
            message += f" {run.get('reason') or ''}".rstrip()
    get_run_logger().info("%s", message)
    _publish(run_id, district_id, status, message)
    data = {"run_id": run_id, "status": status, "message": message}
    if status in {APPLIED, REJECTED}:
        return Completed(message=message, data=data)
    return Failed(message=message, data=data)


def _resume_waiting_run(
    flow_run_id: str | None, approve: bool, by: str, reason: str
) -> bool:
    """Send the decision to the held run's paused flow run; False when none waits."""
    if not flow_run_id or not approval_server_available():
        return False
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except Exception:  # noqa: BLE001 - a run this server does not know waits for nothing
        return False
    if state is None or not state.is_paused():
        return False
    resume_flow_run(
        UUID(flow_run_id),
        run_input={"approve": approve, "reason": reason, "approver": by},
    )
    return True


def _publish(run_id: str, district_id: str, status: str, message: str) -> None:
    create_markdown_artifact(
        markdown=f"# Decision on run {run_id} of district {district_id}: {status}"
        f"\n\n{message}\n",
        description=f"Decision on held run {run_id}",
    )
