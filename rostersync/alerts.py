"""Operator alerts, sent to Apprise URLs and Prefect notification blocks.

An alert carries ids and counts only: the district, the flow, the status, the
reason (the project's reasons name records by provider id only), the counts and
the links to the run.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import apprise
from prefect.settings import get_current_settings
from pydantic import BaseModel, ConfigDict, Field

from rostersync.results import SyncResult
from rostersync.settings import get_settings

logger = logging.getLogger("rostersync.alerts")

# Apprise logs an invalid URL whole at error level, and Apprise, urllib3 and httpx
# log request URLs at debug or info level, so a URL's token would reach the logs.
# Their records are dropped while this module sends, and send_alert logs each
# failure itself, naming only the URL's scheme or the block's slug.
_QUIET_LOGGERS = ("apprise", "urllib3.connectionpool", "httpx")
_sending = contextvars.ContextVar("rostersync_alert_sending", default=False)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_BLOCK_SLUG = re.compile(r"^[a-z0-9-]+/[^/]+$")


class _DropWhileSending(logging.Filter):
    """Drop the records logged while an alert is being sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _sending.get()


_QUIET_FILTER = _DropWhileSending()
for _name in _QUIET_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET_FILTER)


class Alert(BaseModel):
    """One operator alert about a district's run, in ids and counts only."""

    model_config = ConfigDict(frozen=True)

    district_id: str
    flow_name: str
    # Such as failed, held, suspended, skipped or contract-ending.
    status: str
    reason: str | None = None
    # Counts per entity and action, such as {"students": {"archived": 3}}.
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    # The store's run id (sync_runs) and the Prefect flow run id.
    run_id: str | None = None
    flow_run_id: str | None = None


@dataclass
class AlertDelivery:
    """Destinations of each kind that received an alert, and those that failed."""

    apprise_sent: int = 0
    apprise_failed: int = 0
    block_sent: int = 0
    block_failed: int = 0

    @property
    def sent(self) -> int:
        return self.apprise_sent + self.block_sent

    @property
    def failed(self) -> int:
        return self.apprise_failed + self.block_failed


def alert_from_result(result: SyncResult, flow_name: str) -> Alert:
    """Build the alert of a sync run from its result."""
    return Alert(
        district_id=result.district_id,
        flow_name=flow_name,
        status=result.status,
        reason=result.reason,
        counts=result.counts,
        run_id=result.run_id,
        flow_run_id=result.flow_run_id,
    )


def run_link(flow_run_id: str | None) -> str | None:
    """Return the Prefect UI link of a flow run, or None without an id or UI URL.

    The UI URL is Prefect's PREFECT_UI_URL setting, which Prefect infers from
    PREFECT_API_URL when it is not set.
    """
    if not flow_run_id:
        return None
    ui_url = get_current_settings().ui_url
    if not ui_url:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"


def render(alert: Alert) -> tuple[str, str]:
    """Render an alert as a title and a plain-text body."""
    title = (
        f"rostersync: district {alert.district_id} {alert.status} ({alert.flow_name})"
    )
    lines = [
        f"District: {alert.district_id}",
        f"Flow: {alert.flow_name}",
        f"Status: {alert.status}",
    ]
    if alert.reason:
        lines.append(f"Reason: {alert.reason}")
    lines += _count_lines(alert)
    if alert.run_id:
        lines.append(f"Store run: {alert.run_id}")
    link = run_link(alert.flow_run_id)
    if link:
        lines.append(f"Prefect flow run: {link}")
    elif alert.flow_run_id:
        lines.append(
            f"Prefect flow run: {alert.flow_run_id} (set PREFECT_UI_URL for a link)"
        )
    return title, "\n".join(lines)


def _count_lines(alert: Alert) -> list[str]:
    """Describe the non-zero counts, one line per entity."""
    entity_lines = []
    for entity, actions in alert.counts.items():
        done = [f"{count} {action}" for action, count in actions.items() if count]
        if done:
            entity_lines.append(f"  {entity}: {', '.join(done)}")
    if not entity_lines:
        return [] if not alert.counts else ["Changes: none"]
    if alert.status == "held":
        # A held run writes nothing, so its counts are what the plan would do.
        heading = "Changes the held plan would make (none written):"
    else:
        heading = "Changes:"
    return [heading, *entity_lines]


def split_setting(value: str) -> list[str]:
    """Split a comma-separated setting, without spaces around entries or empty ones.

    NOTE: an Apprise URL that contains a comma is split at the comma too.
    """
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def send_alert(alert: Alert) -> AlertDelivery:
    """Send an alert to every destination in the settings, logging each failure.

    The destinations are the Apprise URLs in ROSTERSYNC_ALERT_URLS and the Prefect
    notification blocks in ROSTERSYNC_ALERT_BLOCKS. A destination that fails is
    logged at error level, by the URL's scheme or the block's slug, and counted.
    No exception leaves this function, so an alert never fails the run.
    """
    delivery = AlertDelivery()
    try:
        settings = get_settings()
        urls = split_setting(settings.alert_urls)
        slugs = split_setting(settings.alert_blocks)
        if not urls and not slugs:
            logger.debug(
                "district %s: no alert destinations are set, so the %s alert is "
                "not sent",
                alert.district_id,
                alert.status,
            )
            return delivery
        title, body = render(alert)
        with _quiet_transport_logs():
            _send_to_urls(alert, urls, title, body, delivery)
            _send_to_blocks(alert, slugs, title, body, delivery)
    except Exception as exc:  # noqa: BLE001 - an alert must never fail the run
        logger.error(
            "district %s: the %s alert failed with %s before it reached every "
            "destination",
            alert.district_id,
            alert.status,
            type(exc).__name__,
        )
        return delivery
    logger.info(
        "district %s: %s alert sent to %d of %d destinations",
        alert.district_id,
        alert.status,
        delivery.sent,
        delivery.sent + delivery.failed,
    )
    return delivery


@contextmanager
def _quiet_transport_logs() -> Iterator[None]:
    token = _sending.set(True)
    try:
        yield
    finally:
        _sending.reset(token)


def _send_to_urls(
    alert: Alert, urls: list[str], title: str, body: str, delivery: AlertDelivery
) -> None:
    notify_type = (
        apprise.NotifyType.FAILURE
        if alert.status == "failed"
        else apprise.NotifyType.WARNING
    )
    for position, url in enumerate(urls, start=1):
        problem = _notify_url(url, title, body, notify_type)
        if problem is None:
            delivery.apprise_sent += 1
            continue
        delivery.apprise_failed += 1
        logger.error(
            "district %s: the %s alert was not sent to Apprise URL %d of %d (%s): "
            "%s. Check that entry of ROSTERSYNC_ALERT_URLS.",
            alert.district_id,
            alert.status,
            position,
            len(urls),
            url_scheme(url),
            problem,
        )


def _notify_url(
    url: str, title: str, body: str, notify_type: apprise.NotifyType
) -> str | None:
    """Send to one Apprise URL; return None, or what failed in words."""
    client = apprise.Apprise()
    try:
        if not client.add(url):
            return "the URL is not a valid Apprise URL"
        if not client.notify(body=body, title=title, notify_type=notify_type):
            return "the destination rejected the alert or could not be reached"
    except Exception as exc:  # noqa: BLE001 - one destination must not stop the rest
        # Only the class: the message of an HTTP library's error can contain the URL.
        return f"sending failed with {type(exc).__name__}"
    return None


def _send_to_blocks(
    alert: Alert, slugs: list[str], title: str, body: str, delivery: AlertDelivery
) -> None:
    for slug in slugs:
        problem = _notify_block(slug, title, body)
        if problem is None:
            delivery.block_sent += 1
            continue
        delivery.block_failed += 1
        logger.error(
            "district %s: the %s alert was not sent to Prefect block %s: %s. Check "
            "that entry of ROSTERSYNC_ALERT_BLOCKS.",
            alert.district_id,
            alert.status,
            slug,
            problem,
        )


def _notify_block(slug: str, title: str, body: str) -> str | None:
    """Send through one Prefect notification block; return None, or what failed."""
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block

    if not _BLOCK_SLUG.match(slug):
        return "the slug is not of the form block-type/block-name"
    try:
        block = _resolve(Block.load(slug))
    except ValueError:
        return "no block of that type and name exists on the Prefect API"
    except Exception as exc:  # noqa: BLE001 - such as an unreachable Prefect API
        return f"loading it failed with {type(exc).__name__}"
    if not isinstance(block, NotificationBlock):
        return "it is not a notification block"
    try:
        with block.raise_on_failure():
            _resolve(block.notify(body, subject=title))
    except Exception as exc:  # noqa: BLE001 - one destination must not stop the rest
        # Only the class: the message of an HTTP library's error can contain the URL.
        return f"sending failed with {type(exc).__name__}"
    return None


def _resolve(value: object) -> object:
    """Wait for a Prefect call that returned a coroutine inside an event loop."""
    if inspect.iscoroutine(value):
        from prefect.utilities.asyncutils import run_coro_as_sync

        return run_coro_as_sync(value)
    return value


def url_scheme(url: str) -> str:
    """Return the scheme of an Apprise URL, such as json or slack, never the rest."""
    match = _SCHEME.match(url)
    return f"{match.group(1).lower()}://" if match else "no scheme"
