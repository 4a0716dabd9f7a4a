"""Options shared by the tasks: no caching, no stored results, retries on I/O.

Results are not persisted because they hold roster frames, and Prefect would write
them, student data included, to its local storage.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect.cache_policies import NO_CACHE

from rostersync.errors import RostersyncError, UnexpectedError

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("rostersync.tasks")


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


def contain_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Re-raise a task's unexpected exceptions as UnexpectedError, message removed.

    Prefect logs and stores the exceptions that leave a task, and the message of a
    library's exception can quote record values. The log gets the class and the
    stack instead.
    """

    @functools.wraps(function)
    def contained(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except RostersyncError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised without its message
            stack = "".join(traceback.format_tb(exc.__traceback__))
            logger.error(
                "%s failed with %s at\n%s", function.__name__, type(exc).__name__, stack
            )
            raise UnexpectedError(
                f"Step {function.__name__} failed with {type(exc).__name__}; "
                "nothing was written. The flow run's logs have the stack."
            ) from None

    return contained


def log_crash(log: Any, district_id: str, step: str, error: Exception) -> None:
    """Log a district's unexpected error by class and stack, without its message.

    The message of a library's exception can quote record values.
    """
    log.error(
        "district %s: the %s crashed with %s at\n%s",
        district_id,
        step,
        type(error).__name__,
        "".join(traceback.format_tb(error.__traceback__)),
    )
