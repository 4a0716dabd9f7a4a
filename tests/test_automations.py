"""The Prefect automations of automations.yaml, created on the harness server.

The flow runs here are created through the API and moved to Failed or Crashed
with forced state changes, so no flow code runs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_UI_URL, temporary_settings
from prefect.states import Crashed, Failed, Pending, Running

from rostersync.automations import (
    AUTOMATIONS_FILE,
    create_automations,
    read_definitions,
)
from rostersync.errors import ConfigurationError
from tests.alert_receiver import AlertReceiver, ReceivedRequest, alert_receiver

pytestmark = pytest.mark.usefixtures("prefect_harness")

NAMES = ["rostersync-flow-run-failed", "rostersync-flow-run-crashed"]
BLOCK_NAME = "rostersync-automation-test"
BLOCK_SLUG = f"custom-webhook/{BLOCK_NAME}"
DISTRICT = "d-test-9"
# Seconds the server may take from a state change to the webhook's request.
NOTIFICATION_SECONDS = 20.0
# Seconds to wait for a second notification about the same run after the first.
REPEAT_SECONDS = 1.0

ROOT = Path(__file__).resolve().parents[1]


@flow(name="undo-run")
def undo_run_stub(district_id: str) -> None:
    """A flow named like one of the project's flows, never run."""


@flow(name="some-other-flow")
def other_flow_stub(district_id: str) -> None:
    """A flow of another project, never run."""


@pytest.fixture(scope="module")
def receiver() -> Iterator[AlertReceiver]:
    with alert_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def block_id(prefect_harness: None, receiver: AlertReceiver) -> Iterator[str]:
    """A custom webhook block that posts the subject and body to the receiver."""
    block = CustomWebhookNotificationBlock(
        name="ops",
        url=f"{receiver.base_url}/automation",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    document_id = block.save(BLOCK_NAME, overwrite=True)
    yield str(document_id)
    # Other test modules share the server: their failing runs must not notify.
    with get_client(sync_client=True) as client:
        for name in NAMES:
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)


def automations_named(name: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_automations_by_name(name)


def end_flow_run(flow_stub, final_state) -> str:
    """Create a flow run and force it through Running into ``final_state``."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(
            flow_stub, parameters={"district_id": DISTRICT}, state=Pending()
        )
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, final_state, force=True)
    return str(run.id)


def notifications_about(
    receiver: AlertReceiver, flow_run_id: str, timeout: float = NOTIFICATION_SECONDS
) -> list[ReceivedRequest]:
    """Wait for a notification naming the flow run, then for any repeat of it."""

    def names_run(request: ReceivedRequest) -> bool:
        return flow_run_id in request.body["body"]

    if not receiver.wait_until(names_run, timeout):
        return []
    time.sleep(REPEAT_SECONDS)
    return [request for request in receiver.requests if names_run(request)]


def test_created_twice_leaves_one_of_each(block_id: str) -> None:
    create_automations(BLOCK_SLUG)
    created = create_automations(BLOCK_SLUG)

    assert [name for name, _ in created] == NAMES
    for name in NAMES:
        assert len(automations_named(name)) == 1


def test_created_automations_are_enabled(block_id: str) -> None:
    create_automations(BLOCK_SLUG)
    for name in NAMES:
        assert automations_named(name)[0].enabled is True


def test_actions_use_the_block(block_id: str) -> None:
    create_automations(BLOCK_SLUG)
    for name in NAMES:
        action = automations_named(name)[0].actions[0]
        assert str(action.block_document_id) == block_id


def test_triggers_expect_failed_and_crashed(block_id: str) -> None:
    create_automations(BLOCK_SLUG)
    failed = automations_named(NAMES[0])[0].trigger
    crashed = automations_named(NAMES[1])[0].trigger
    assert failed.expect == {"prefect.flow-run.Failed", "prefect.flow-run.TimedOut"}
    assert crashed.expect == {"prefect.flow-run.Crashed"}


def test_triggers_match_project_flows_by_name(block_id: str) -> None:
    create_automations(BLOCK_SLUG)
    related = automations_named(NAMES[0])[0].trigger.match_related
    deployed = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert sorted(related["prefect.resource.name"]) == sorted(
        deployment["name"] for deployment in deployed
    )


def test_failed_project_run_notifies(block_id: str, receiver: AlertReceiver) -> None:
    create_automations(BLOCK_SLUG)
    flow_run_id = end_flow_run(undo_run_stub, Failed(message="fake failure"))

    notifications = notifications_about(receiver, flow_run_id)

    assert len(notifications) == 1
    lines = notifications[0].body["body"].splitlines()
    assert "Flow: undo-run" in lines
    assert "State: Failed" in lines
    assert f"District: {DISTRICT}" in lines
    # The harness server runs without PREFECT_UI_URL, so the body has no link.
    assert (
        "Link: none, because PREFECT_UI_URL is not set on the Prefect server" in lines
    )


def test_body_links_run_when_server_has_ui_url() -> None:
    from prefect.server.events.jinja_filters import all_filters
    from prefect.server.schemas.core import Flow, FlowRun
    from prefect.server.schemas.states import Failed as ServerFailed
    from prefect.server.utilities.user_templates import (
        register_user_template_filters,
        render_user_template_sync,
    )

    register_user_template_filters(all_filters)
    stub = Flow(name="daily-sync")
    flow_run = FlowRun(
        flow_id=stub.id,
        name="fake-run",
        parameters={"district_id": DISTRICT},
        state=ServerFailed(),
    )
    body = read_definitions(AUTOMATIONS_FILE)[0]["actions"][0]["body"]
    ui_url = "http://127.0.0.1:4200"
    with temporary_settings(updates={PREFECT_UI_URL: ui_url}):
        rendered = render_user_template_sync(body, {"flow": stub, "flow_run": flow_run})
    lines = rendered.splitlines()
    assert f"Link: {ui_url}/runs/flow-run/{flow_run.id}" in lines
    assert f"District: {DISTRICT}" in lines
    assert "State: Failed" in lines


def test_crashed_project_run_notifies(block_id: str, receiver: AlertReceiver) -> None:
    create_automations(BLOCK_SLUG)
    flow_run_id = end_flow_run(undo_run_stub, Crashed(message="fake crash"))

    notifications = notifications_about(receiver, flow_run_id)

    assert len(notifications) == 1
    assert "State: Crashed" in notifications[0].body["body"].splitlines()


def test_other_flow_does_not_notify(block_id: str, receiver: AlertReceiver) -> None:
    create_automations(BLOCK_SLUG)
    other_run_id = end_flow_run(other_flow_stub, Failed(message="fake failure"))
    # The project run fails after the other one, so once its notification arrives
    # the server has very likely evaluated the other run's event too.
    project_run_id = end_flow_run(undo_run_stub, Failed(message="fake failure"))

    assert len(notifications_about(receiver, project_run_id)) == 1
    assert notifications_about(receiver, other_run_id, timeout=REPEAT_SECONDS) == []


def test_unknown_block_slug_raises(block_id: str) -> None:
    with pytest.raises(ConfigurationError, match="custom-webhook/no-such-block"):
        create_automations("custom-webhook/no-such-block")


def test_invalid_block_slug_raises(block_id: str) -> None:
    with pytest.raises(ConfigurationError, match="'no-slash'"):
        create_automations("no-slash")


def test_block_without_notify_raises(block_id: str) -> None:
    Secret(value="not-a-real-secret").save("rostersync-test-secret", overwrite=True)
    with pytest.raises(ConfigurationError, match="cannot send notifications"):
        create_automations("secret/rostersync-test-secret")


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        read_definitions(tmp_path / "absent.yaml")


def test_file_without_notification_raises(tmp_path: Path) -> None:
    path = tmp_path / "automations.yaml"
    path.write_text("automations:\n  - name: quiet\n    actions: []\n")
    with pytest.raises(ConfigurationError, match="no send-notification action"):
        read_definitions(path)


def test_invalid_trigger_raises(block_id: str, tmp_path: Path) -> None:
    path = tmp_path / "automations.yaml"
    path.write_text(
        "automations:\n"
        f"  - name: broken-{uuid.uuid4().hex[:8]}\n"
        "    trigger: {type: event, posture: Sideways}\n"
        "    actions: [{type: send-notification, body: x}]\n"
    )
    with pytest.raises(ConfigurationError, match="is invalid"):
        create_automations(BLOCK_SLUG, path)
