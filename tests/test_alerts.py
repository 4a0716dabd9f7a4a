"""Operator alerts sent to Apprise URLs and Prefect notification blocks on loopback.

Results carry fake ids and counts only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from rostersync.alerts import (
    Alert,
    AlertDelivery,
    alert_from_result,
    render,
    run_link,
    send_alert,
    split_setting,
    url_scheme,
)
from rostersync.results import SyncResult, empty_counts
from rostersync.settings import get_settings
from tasks.alert import send_alert_task, send_run_alert
from tests.alert_receiver import alert_receiver, closed_loopback_port

DISTRICT = "d-test-7"
FLOW = "daily-sync"
REASON = "The plan archives 120 of 400 students, more than the threshold of 25."
BLOCK_NAME = "rostersync-test-ops"

Configure = Callable[..., None]


def sync_result(status: str = "held") -> SyncResult:
    counts = empty_counts()
    counts["students"]["archived"] = 120
    counts["educators"]["created"] = 2
    return SyncResult(
        district_id=DISTRICT,
        status=status,
        reason=REASON,
        counts=counts,
        run_id="run-42",
        flow_run_id=str(uuid.uuid4()),
    )


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Configure]:
    """Set ROSTERSYNC_ALERT_URLS and ROSTERSYNC_ALERT_BLOCKS for one test."""

    def set_destinations(urls: str = "", blocks: str = "") -> None:
        monkeypatch.setenv("ROSTERSYNC_ALERT_URLS", urls)
        monkeypatch.setenv("ROSTERSYNC_ALERT_BLOCKS", blocks)
        get_settings.cache_clear()

    yield set_destinations
    get_settings.cache_clear()


def alert_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "rostersync.alerts" and record.levelno == logging.ERROR
    ]


# Rendering, without Prefect or a network.


def test_render_title_names_district() -> None:
    title, _ = render(alert_from_result(sync_result(), FLOW))
    assert title == "rostersync: district d-test-7 held (daily-sync)"


def test_render_lists_only_nonzero_counts() -> None:
    _, body = render(alert_from_result(sync_result("failed"), FLOW))
    lines = body.splitlines()
    assert "Changes:" in lines
    assert "  students: 120 archived" in lines
    assert "  educators: 2 created" in lines
    assert not any(line.startswith("  schools") for line in lines)


def test_render_held_counts_are_not_written() -> None:
    _, body = render(alert_from_result(sync_result("held"), FLOW))
    assert "Changes the held plan would make (none written):" in body.splitlines()


def test_render_zero_counts_say_none() -> None:
    result = sync_result("failed").model_copy(update={"counts": empty_counts()})
    _, body = render(alert_from_result(result, FLOW))
    assert "Changes: none" in body.splitlines()


def test_render_without_flow_run_has_no_link() -> None:
    alert = Alert(district_id=DISTRICT, flow_name=FLOW, status="skipped")
    _, body = render(alert)
    assert body == "District: d-test-7\nFlow: daily-sync\nStatus: skipped"


def test_split_setting_drops_empty_entries() -> None:
    assert split_setting(" json://a/x , ,json://b/y,") == ["json://a/x", "json://b/y"]


def test_url_scheme_hides_the_rest() -> None:
    assert url_scheme("slack://token-a/token-b") == "slack://"


def test_url_scheme_of_text_without_scheme() -> None:
    assert url_scheme("token-without-scheme") == "no scheme"


def test_no_destinations_sends_nothing(configure: Configure) -> None:
    configure()
    delivery = send_alert(alert_from_result(sync_result(), FLOW))
    assert delivery.sent + delivery.failed == 0


# Apprise URLs on a loopback receiver.


@pytest.mark.usefixtures("prefect_harness")
def test_alert_arrives_once_with_details(configure: Configure) -> None:
    result = sync_result("held")
    with alert_receiver() as receiver:
        configure(urls=f"json://127.0.0.1:{receiver.port}/alerts")
        delivery = send_alert(alert_from_result(result, FLOW))
        receiver.wait_for(1)
        received = receiver.wait_for(2, timeout=0.5)

    assert delivery.apprise_sent == 1
    assert len(received) == 1
    assert received[0].path == "/alerts"
    payload = received[0].body
    assert payload["title"] == "rostersync: district d-test-7 held (daily-sync)"
    assert payload["type"] == "warning"
    lines = payload["message"].splitlines()
    assert "District: d-test-7" in lines
    assert "Flow: daily-sync" in lines
    assert "Status: held" in lines
    assert f"Reason: {REASON}" in lines
    assert "  students: 120 archived" in lines
    assert "Store run: run-42" in lines
    ui_url = get_current_settings().ui_url
    link = f"{ui_url}/runs/flow-run/{result.flow_run_id}"
    assert f"Prefect flow run: {link}" in lines


@pytest.mark.usefixtures("prefect_harness")
def test_run_link_uses_prefect_ui_url() -> None:
    ui_url = get_current_settings().ui_url
    assert run_link("abc") == f"{ui_url}/runs/flow-run/abc"


def test_run_link_without_flow_run_is_none() -> None:
    assert run_link(None) is None


@pytest.mark.usefixtures("prefect_harness")
def test_failed_alert_has_failure_type(configure: Configure) -> None:
    with alert_receiver() as receiver:
        configure(urls=f"json://127.0.0.1:{receiver.port}/alerts")
        send_alert(alert_from_result(sync_result("failed"), FLOW))
        received = receiver.wait_for(1)
    assert received[0].body["type"] == "failure"


@pytest.mark.usefixtures("prefect_harness")
def test_second_url_receives_alert_too(configure: Configure) -> None:
    with alert_receiver() as first, alert_receiver() as second:
        configure(
            urls=(
                f"json://127.0.0.1:{first.port}/alerts , "
                f"json://127.0.0.1:{second.port}/ops"
            )
        )
        delivery = send_alert(alert_from_result(sync_result(), FLOW))
        first_received = first.wait_for(1)
        second_received = second.wait_for(1)
    assert delivery.apprise_sent == 2
    assert len(first_received) == 1
    assert len(second_received) == 1
    assert second_received[0].path == "/ops"


@pytest.mark.usefixtures("prefect_harness")
def test_unreachable_url_is_logged_not_raised(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    closed = closed_loopback_port()
    with alert_receiver() as receiver:
        configure(
            urls=(
                f"json://127.0.0.1:{closed}/alerts,"
                f"json://127.0.0.1:{receiver.port}/alerts"
            )
        )
        with caplog.at_level(logging.INFO, logger="rostersync.alerts"):
            delivery = send_alert(alert_from_result(sync_result(), FLOW))
        received = receiver.wait_for(1)

    assert delivery.apprise_failed == 1
    assert delivery.apprise_sent == 1
    assert len(received) == 1
    errors = alert_errors(caplog)
    assert len(errors) == 1
    assert "Apprise URL 1 of 2 (json://)" in errors[0]


@pytest.mark.usefixtures("prefect_harness")
def test_invalid_url_is_logged_not_raised(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    configure(urls="nosuchscheme://somewhere/path")
    with caplog.at_level(logging.INFO, logger="rostersync.alerts"):
        delivery = send_alert(alert_from_result(sync_result(), FLOW))
    assert delivery.apprise_failed == 1
    assert "not a valid Apprise URL" in alert_errors(caplog)[0]


@pytest.mark.usefixtures("prefect_harness")
def test_no_url_token_in_logs(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = [f"secret{index}{uuid.uuid4().hex[:8]}" for index in range(5)]
    closed = closed_loopback_port()
    with alert_receiver() as receiver:
        configure(
            urls=(
                f"json://user:{tokens[0]}@127.0.0.1:{receiver.port}/a/{tokens[1]},"
                f"json://user:{tokens[2]}@127.0.0.1:{closed}/a/{tokens[3]},"
                f"slack://{tokens[4]}"
            )
        )
        caplog.set_level(logging.DEBUG)
        delivery = send_alert(alert_from_result(sync_result(), FLOW))
        receiver.wait_for(1)

    assert delivery.apprise_sent == 1
    assert delivery.apprise_failed == 2
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for token in tokens:
        assert token not in logged
    assert "(slack://)" in logged


# Prefect tasks.


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("status", "expected_alerts"),
    [("held", 1), ("failed", 1), ("suspended", 1), ("completed", 0), ("skipped", 0)],
)
def test_run_alert_task_by_status(
    configure: Configure, status: str, expected_alerts: int
) -> None:
    with alert_receiver() as receiver:
        configure(urls=f"json://127.0.0.1:{receiver.port}/alerts")
        send_run_alert(sync_result(status), FLOW)
        received = receiver.wait_for(expected_alerts, timeout=2.0)
    assert len(received) == expected_alerts


@pytest.mark.usefixtures("prefect_harness")
def test_custom_alert_task_sends(configure: Configure) -> None:
    alert = Alert(
        district_id=DISTRICT,
        flow_name=FLOW,
        status="contract-ending",
        reason="The contract of district d-test-7 ends on 2027-06-30, in 14 days.",
    )
    with alert_receiver() as receiver:
        configure(urls=f"json://127.0.0.1:{receiver.port}/alerts")
        send_alert_task(alert)
        received = receiver.wait_for(1)
    assert received[0].body["title"] == (
        "rostersync: district d-test-7 contract-ending (daily-sync)"
    )


@pytest.mark.usefixtures("prefect_harness")
def test_run_alert_task_never_raises(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_send(alert: Alert) -> None:
        raise RuntimeError("broken destination")

    configure(urls="json://127.0.0.1:9/alerts")
    monkeypatch.setattr("tasks.alert.send_alert", broken_send)
    assert send_run_alert(sync_result("failed"), FLOW) is None


# Prefect notification blocks on the harness server.


@pytest.mark.usefixtures("prefect_harness")
def test_block_receives_alert_once(configure: Configure) -> None:
    with alert_receiver() as receiver:
        CustomWebhookNotificationBlock(
            name="ops",
            url=f"{receiver.base_url}/block",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save(BLOCK_NAME, overwrite=True)
        configure(blocks=f"custom-webhook/{BLOCK_NAME}")
        delivery = send_alert(alert_from_result(sync_result(), FLOW))
        receiver.wait_for(1)
        received = receiver.wait_for(2, timeout=0.5)

    assert delivery.block_sent == 1
    assert len(received) == 1
    assert received[0].path == "/block"
    assert received[0].body["subject"] == (
        "rostersync: district d-test-7 held (daily-sync)"
    )
    assert "District: d-test-7" in received[0].body["body"].splitlines()


@pytest.mark.usefixtures("prefect_harness")
def test_unknown_block_is_logged_not_raised(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    configure(blocks="custom-webhook/no-such-block, not-a-slug")
    with caplog.at_level(logging.INFO, logger="rostersync.alerts"):
        delivery = send_alert(alert_from_result(sync_result(), FLOW))
    errors = alert_errors(caplog)
    assert delivery.block_failed == 2
    assert "Prefect block custom-webhook/no-such-block: no block" in errors[0]
    assert "Prefect block not-a-slug: the slug is not" in errors[1]


@pytest.mark.usefixtures("prefect_harness")
def test_unreachable_prefect_api_logged(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    configure(blocks=f"custom-webhook/{BLOCK_NAME}")
    api_url = f"http://127.0.0.1:{closed_loopback_port()}/api"
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        caplog.at_level(logging.INFO, logger="rostersync.alerts"),
    ):
        delivery = send_alert(alert_from_result(sync_result(), FLOW))
    assert delivery.block_failed == 1
    assert "loading it failed with ConnectError" in alert_errors(caplog)[0]


@pytest.mark.usefixtures("prefect_harness")
def test_block_alert_inside_event_loop(configure: Configure) -> None:
    async def send_from_coroutine() -> AlertDelivery:
        return send_alert(alert_from_result(sync_result(), FLOW))

    with alert_receiver() as receiver:
        CustomWebhookNotificationBlock(
            name="ops",
            url=f"{receiver.base_url}/loop",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save(BLOCK_NAME, overwrite=True)
        configure(blocks=f"custom-webhook/{BLOCK_NAME}")
        delivery = asyncio.run(send_from_coroutine())
        received = receiver.wait_for(1)

    assert delivery.block_sent == 1
    assert received[0].path == "/loop"
