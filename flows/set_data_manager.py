"""Name a district's data manager, and resume its integration if it was suspended."""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State
from pydantic import Field

from rostersync.errors import ConfigurationError, RostersyncError
from rostersync.roster import TO_BE_DELETED, Roster, shown_id
from rostersync.store.database import get_engine, store_errors
from rostersync.store.districts import set_data_manager as store_data_manager
from tasks.extract import extract_roster
from tasks.options import IO_TASK_OPTIONS, contain_errors
from tasks.store import load_district_integration

FLOW_NAME = "set-data-manager"


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True, persist_result=False)
def set_data_manager(
    district_id: str,
    user_id: Annotated[str, Field(min_length=1, max_length=300)],
    by: Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")],
    reason: str = "",
) -> State:
    """Check that ``user_id`` is in the district's shared data, then name them the
    data manager; a suspended integration resumes, and the change is audited."""
    user_id = user_id.strip()
    try:
        integration = load_district_integration(district_id)
        # A full pull: an incremental one names only the users who changed.
        roster = extract_roster(integration, True)
        if not _is_shared(roster, user_id):
            raise ConfigurationError(
                f"User {shown_id(user_id)} is not in the shared data of district "
                f"{district_id}, so they cannot be its data manager. Ask the "
                "district to share them with the product, or name a user who is "
                "shared."
            )
        change = save_data_manager(district_id, user_id, by, reason)
    except RostersyncError as exc:
        get_run_logger().error("district %s: %s", district_id, exc)
        return Failed(message=str(exc), data={"district_id": district_id})
    resumed = change["before"]["status"] == "suspended"
    message = (
        f"User {shown_id(user_id)} is the data manager of district {district_id}"
        + ("; the suspended integration resumed." if resumed else ".")
    )
    create_markdown_artifact(
        markdown=f"# Data manager of district {district_id}\n\n{message}\n",
        description=f"Data manager change of district {district_id}",
    )
    get_run_logger().info("%s", message)
    return Completed(
        message=message,
        data={"district_id": district_id, "resumed": resumed, "message": message},
    )


def _is_shared(roster: Roster, user_id: str) -> bool:
    users = roster.users
    rows = users[users["provider_id"] == user_id]
    return bool(len(rows)) and not bool(
        (rows["status"] == TO_BE_DELETED).fillna(False).all()
    )


@task(name="save-data-manager", **IO_TASK_OPTIONS)
@contain_errors
def save_data_manager(district_id: str, user_id: str, by: str, reason: str) -> dict:
    """Store the data manager and resume the integration, audited."""
    with store_errors():
        return store_data_manager(
            get_engine(), district_id, user_id, changed_by=by, reason=reason or None
        )
