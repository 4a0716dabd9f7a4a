"""Prefect automations that notify operators when a rostersync flow run fails.

The automations are defined in automations.yaml at the repository root, in the
shape `prefect automation create --from-file` reads. create_automations puts in
the notification block chosen at creation time and replaces automations of the
same names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import yaml
from pydantic import ValidationError

from rostersync.errors import ConfigurationError, PrefectUnavailableError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

AUTOMATIONS_FILE = Path(__file__).resolve().parents[1] / "automations.yaml"
SEND_NOTIFICATION = "send-notification"


def create_automations(
    block_slug: str, path: Path | None = None
) -> list[tuple[str, str]]:
    """Create the automations of a YAML file, each notifying through one block.

    ``block_slug`` names a saved Prefect notification block, such as
    ``custom-webhook/ops``. Automations that already exist under the same names
    are deleted once their replacements exist. Returns the name and id of each
    automation created.

    Raises:
        ConfigurationError: the file is missing or invalid, or the block does
            not exist or cannot send notifications.
        PrefectUnavailableError: the Prefect API cannot be reached.
    """
    import httpx
    from prefect.client.orchestration import get_client

    path = path or AUTOMATIONS_FILE
    definitions = read_definitions(path)
    try:
        with get_client(sync_client=True) as client:
            block_document_id = _notification_block_id(client, block_slug)
            automations = _with_block(definitions, block_document_id, path)
            return [_replace(client, automation) for automation in automations]
    except httpx.TransportError as exc:
        raise PrefectUnavailableError(
            f"The Prefect API could not be reached ({type(exc).__name__}), so no "
            "automation was created. Start the Prefect server, or set "
            "PREFECT_API_URL to its API, and run this again."
        ) from exc


def read_definitions(path: Path) -> list[dict[str, Any]]:
    """Read the automations of a YAML file as mappings, checking their shape."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"The automations file {path} cannot be read ({exc.strerror}). Pass the "
            "path of automations.yaml from the repository root."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"The automations file {path} is not valid YAML: {exc}"
        ) from exc

    definitions = data.get("automations") if isinstance(data, dict) else data
    if not isinstance(definitions, list) or not definitions:
        raise ConfigurationError(
            f"The automations file {path} has no list of automations. It must "
            "contain `automations:` followed by a list of automations."
        )
    for position, definition in enumerate(definitions, start=1):
        _check_definition(definition, position, path)
    return definitions


def _check_definition(definition: Any, position: int, path: Path) -> None:
    if not isinstance(definition, dict) or not definition.get("name"):
        raise ConfigurationError(
            f"Automation {position} in {path} is not a mapping with a name."
        )
    actions = definition.get("actions")
    if not isinstance(actions, list) or not any(
        isinstance(action, dict) and action.get("type") == SEND_NOTIFICATION
        for action in actions
    ):
        raise ConfigurationError(
            f"Automation {definition['name']!r} in {path} has no "
            f"{SEND_NOTIFICATION} action, so it would notify nobody."
        )


def _with_block(
    definitions: list[dict[str, Any]], block_document_id: UUID, path: Path
) -> list[AutomationCore]:
    """Validate the automations, with the block in every notification action."""
    from prefect.events.schemas.automations import AutomationCore

    automations = []
    for definition in definitions:
        actions = [
            {**action, "block_document_id": str(block_document_id)}
            if action.get("type") == SEND_NOTIFICATION
            else action
            for action in definition["actions"]
        ]
        try:
            automation = AutomationCore.model_validate(
                {**definition, "actions": actions}
            )
        except ValidationError as exc:
            raise ConfigurationError(
                f"Automation {definition['name']!r} in {path} is invalid: {exc}"
            ) from exc
        automations.append(automation)
    return automations


def _notification_block_id(client: SyncPrefectClient, block_slug: str) -> UUID:
    """Return the document id of a saved notification block, given its slug."""
    from prefect.exceptions import ObjectNotFound

    how_to_create = (
        "Create the block in the Prefect UI (Blocks, then +), or in Python, for "
        "example CustomWebhookNotificationBlock(name='ops', url=...).save('ops') "
        "for custom-webhook/ops, and run this again."
    )
    block_type_slug, _, name = block_slug.partition("/")
    if not block_type_slug or not name or "/" in name:
        raise ConfigurationError(
            f"The block slug {block_slug!r} is invalid. Write it as "
            "block-type/block-name, such as custom-webhook/ops."
        )
    try:
        document = client.read_block_document_by_name(
            name=name, block_type_slug=block_type_slug
        )
    except ObjectNotFound:
        raise ConfigurationError(
            f"The notification block {block_slug!r} was not found on the Prefect "
            f"API. {how_to_create}"
        ) from None
    capabilities = document.block_schema.capabilities if document.block_schema else []
    if "notify" not in capabilities:
        raise ConfigurationError(
            f"The block {block_slug!r} cannot send notifications. Pass the slug of "
            f"a notification block. {how_to_create}"
        )
    return document.id


def _replace(client: SyncPrefectClient, automation: AutomationCore) -> tuple[str, str]:
    """Create an automation, then delete the older ones of the same name."""
    older = client.read_automations_by_name(automation.name)
    automation_id = client.create_automation(automation)
    for existing in older:
        client.delete_automation(existing.id)
    return automation.name, str(automation_id)
