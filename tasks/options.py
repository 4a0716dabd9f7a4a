"""Options shared by the tasks: no caching, no stored results, retries on I/O.

Results are not persisted because they hold roster frames, and Prefect would write
them, student data included, to its local storage.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from rostersync.errors import RostersyncError

IO_RETRIES = 3
IO_RETRY_DELAYS = [2, 10, 30]


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry errors from outside the project and the project's transient ones.

    A bad file or a failed data check fails the same way on every try, so it is
    not retried.
    """
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result is no reason to give up
        return True
    if isinstance(error, RostersyncError):
        return error.transient
    return True


TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}

IO_TASK_OPTIONS: dict[str, Any] = {
    **TASK_OPTIONS,
    "retries": IO_RETRIES,
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
}
