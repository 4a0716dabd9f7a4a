"""Wait for an operator's decision on a held plan, and record it."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.settings import get_current_settings
from pydantic import Field

from rostersync.errors import ConfigurationError
from rostersync.results import SyncResult, empty_counts
from rostersync.store.database import get_engine, store_errors
from rostersync.store.decisions import (
    APPLIED,
    REJECTED,
    Decision,
    DecisionOutcome,
    decide_held_run,
    load_run,
)
from tasks.options import IO_TASK_OPTIONS, contain_errors

# Seconds between two checks of a paused run for the operator's input.
POLL_SECONDS = 5
# Seconds Prefect's pause lasts beyond the approval timeout; see wait_for_decision.
PAUSE_GRACE_SECONDS = 300
EXPIRY_APPROVER = "approval timeout"


class ApprovalInput(RunInput):
    """The form the Prefect UI shows for a held plan."""

    approve: bool = Field(
        description="Tick to archive the users in the held plan; leave unticked to "
        "archive nobody."
    )
    # The pattern rejects text of spaces only, in the form and on the server.
    reason: str = Field(
        min_length=1, max_length=2000, pattern=r"\S", description="Why you decide so."
    )
    approver: str = Field(
        min_length=1, max_length=128, pattern=r"\S", description="Your name."
    )


def approval_server_available() -> bool:
    """Return True when the flow runs against a Prefect server an operator can reach.

    Without PREFECT_API_URL, Prefect runs a temporary server inside the process
    that no operator can reach, so the plan stays held for
    `rostersync runs approve` or `rostersync runs reject`.
    """
    return bool(get_current_settings().api.url)


def wait_for_decision(result: SyncResult, timeout_hours: float) -> None:
    """Pause the flow run for the operator's decision and apply it to ``result``.

    Called in the flow, not in a task, because Prefect pauses flow runs only. No
    decision within ``timeout_hours`` counts as a rejection.
    """
    logger = get_run_logger()
    run_id = result.run_id or ""
    logger.info(
        "district %s: run %s waits up to %g hours for an operator's decision",
        result.district_id,
        run_id,
        timeout_hours,
    )
    decision: Decision
    expiry = _Expiry(flow_run.get_id(), timeout_hours)
    try:
        # Prefect fails a run whose pause outlives its timeout, so the pause gets
        # a grace period and the expiry resumes it first, with a rejection.
        answer = pause_flow_run(
            wait_for_input=ApprovalInput,
            timeout=expiry.seconds + PAUSE_GRACE_SECONDS,
            poll_interval=POLL_SECONDS,
            key=f"approve-{run_id}",
        )
        decision = "approved" if answer.approve else "rejected"
        by, reason = answer.approver, answer.reason
        if expiry.answered(answer):
            decision, by, reason = "expired", EXPIRY_APPROVER, expiry.reason
    except FlowPauseTimeout:
        decision, by, reason = "expired", EXPIRY_APPROVER, expiry.reason
    finally:
        expiry.cancel()
    try:
        outcome = record_decision(run_id, decision, by, reason)
    except ConfigurationError:
        with store_errors():
            still_held = load_run(get_engine(), run_id)["status"] == "held"
        if still_held:
            raise
        # Decided from the command line while the flow waited.
        outcome = _decided_elsewhere(run_id)
    apply_outcome(result, outcome)


class _Expiry:
    """Resume the paused run with a rejection when the approval timeout ends."""

    def __init__(self, flow_run_id: Any, timeout_hours: float) -> None:
        self.seconds = max(1, round(timeout_hours * 3600))
        self.reason = f"No decision within {timeout_hours:g} hours."
        self.fired = threading.Event()
        self.timer = threading.Timer(self.seconds, self._fire, args=(flow_run_id,))
        self.timer.daemon = True
        if flow_run_id is not None:
            self.timer.start()

    def _fire(self, flow_run_id: Any) -> None:
        self.fired.set()
        try:
            resume_flow_run(
                UUID(str(flow_run_id)),
                run_input={
                    "approve": False,
                    "reason": self.reason,
                    "approver": EXPIRY_APPROVER,
                },
            )
        except Exception:  # noqa: BLE001 - an operator answered first
            self.fired.clear()

    def answered(self, answer: ApprovalInput) -> bool:
        """Return True when ``answer`` is the expiry's, not an operator's."""
        return (
            self.fired.is_set()
            and not answer.approve
            and answer.approver == EXPIRY_APPROVER
        )

    def cancel(self) -> None:
        self.timer.cancel()


@task(name="decide-held-plan", **IO_TASK_OPTIONS)
@contain_errors
def record_decision(
    run_id: str, decision: Decision, by: str, reason: str
) -> DecisionOutcome:
    """Apply or drop the held plan of ``run_id`` and record who decided and why."""
    with store_errors():
        outcome = decide_held_run(
            get_engine(), run_id, decision=decision, by=by, reason=reason
        )
    get_run_logger().info(
        "district %s: run %s %s, now %s",
        outcome.district_id,
        run_id,
        decision,
        outcome.status,
    )
    return outcome


def _decided_elsewhere(run_id: str) -> DecisionOutcome:
    with store_errors():
        run = load_run(get_engine(), run_id)
    return DecisionOutcome(
        run_id=run_id,
        district_id=run["district_id"],
        decision=run["decision"],
        status=run["status"],
        message=f"Run {run_id} was decided by {run['decided_by']} before the input "
        "in the Prefect UI.",
        counts=run["counts"],
    )


def apply_outcome(result: SyncResult, outcome: DecisionOutcome) -> None:
    """Turn the run's result into what the decision made of it."""
    result.decision = outcome.as_dict()
    if outcome.status == APPLIED:
        result.status = "completed"
        result.reason = f"Held, then approved: {outcome.message}"
        result.counts = outcome.counts or result.counts
    elif outcome.status == REJECTED:
        result.status = "rejected"
        result.reason = f"Held, then {outcome.decision}: {outcome.message}"
        result.counts = empty_counts()
    else:
        result.status = "failed"
        result.reason = outcome.message
        result.counts = empty_counts()
