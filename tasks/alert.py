"""Tasks that send operator alerts, logging a failed alert instead of raising it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError
from prefect.runtime import flow_run

from rostersync.alerts import Alert, alert_from_result, send_alert
from rostersync.results import SyncResult
from tasks.options import TASK_OPTIONS

# The statuses of a run that an operator must hear about.
ALERT_STATUSES = frozenset({"failed", "held", "suspended"})


@task(name="send-alert", **TASK_OPTIONS)
def send_run_alert(result: SyncResult, flow_name: str) -> None:
    """Alert the operators when a run failed, was held or was suspended."""
    if result.status not in ALERT_STATUSES:
        return
    _deliver(result.district_id, lambda: alert_from_result(result, flow_name))


@task(name="send-custom-alert", **TASK_OPTIONS)
def send_alert_task(alert: Alert) -> None:
    """Send an alert that a flow built itself, such as a contract that ends soon."""
    _deliver(alert.district_id, lambda: alert)


def current_flow_run_id() -> str | None:
    """Return the id of the flow run in progress as text, or None outside one."""
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def alert_flow_outcome(
    district_id: str,
    flow_name: str,
    status: str,
    reason: str,
    run_id: str | None = None,
) -> None:
    """Alert the operators of a flow's own outcome, with its flow run's id."""
    send_alert_task(
        Alert(
            district_id=district_id,
            flow_name=flow_name,
            status=status,
            reason=reason,
            run_id=run_id,
            flow_run_id=current_flow_run_id(),
        )
    )


def _deliver(district_id: str, build_alert: Callable[[], Alert]) -> None:
    """Send an alert and log how many destinations received it.

    Every error is logged and swallowed, so that an alert that fails never hides
    the run's own result.
    """
    log = _logger()
    try:
        alert = build_alert()
        delivery = send_alert(alert)
    except Exception as exc:  # noqa: BLE001 - send_alert does not raise; kept as a guard
        log.error(
            "district %s: the alert failed with %s", district_id, type(exc).__name__
        )
        return
    total = delivery.sent + delivery.failed
    if total == 0:
        log.info(
            "district %s: no alert destinations are set (ROSTERSYNC_ALERT_URLS, "
            "ROSTERSYNC_ALERT_BLOCKS), so the %s alert was not sent",
            district_id,
            alert.status,
        )
        return
    log.info(
        "district %s: %s alert received by %d of %d destinations",
        district_id,
        alert.status,
        delivery.sent,
        total,
    )


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """Return the run logger, or the module's logger outside a Prefect run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("rostersync.tasks")
