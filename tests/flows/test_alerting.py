"""Alerts of the daily sync, received by a webhook on loopback: one per failed,
held or suspended run, with the run's fields and without student data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from rostersync.cli import run_sync
from rostersync.demo import DemoSize, write_demo_district
from rostersync.settings import get_settings
from tests import datasets
from tests.alert_receiver import AlertReceiver, alert_receiver
from tests.flows.test_safety import DISTRICT, make_district_from, students, teachers

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlertReceiver]:
    with alert_receiver() as running:
        monkeypatch.setenv(
            "ROSTERSYNC_ALERT_URLS", f"json://127.0.0.1:{running.port}/alerts"
        )
        get_settings.cache_clear()
        yield running
    get_settings.cache_clear()


def roster(tmp_path: Path) -> Path:
    return write_demo_district(
        tmp_path / "roster", DemoSize(students=60, schools=2), district=DISTRICT
    )


def personal_values(folder: Path) -> set[str]:
    """The names and emails of every user in the district's files."""
    values = set()
    for user in datasets.oneroster_users(folder):
        values.add(f"{user['givenname']} {user['familyname']}")
        values.add(user["familyname"])
        if user.get("email"):
            values.add(user["email"])
    return {value for value in values if len(value) > 3}


def assert_no_student_data(text: str, folder: Path) -> None:
    leaked = sorted(value for value in personal_values(folder) if value in text)
    assert leaked == []


def alert_text(request) -> str:
    return f"{request.body['title']}\n{request.body['message']}"


def test_held_run_alerts_once_with_its_fields(store_url, tmp_path, receiver):
    folder = roster(tmp_path)
    make_district_from(folder)
    run_sync(DISTRICT)
    datasets.remove_oneroster_users(folder, set(students(folder)[:15]))

    result = run_sync(DISTRICT)

    received = receiver.wait_for(1)
    assert len(received) == 1
    text = alert_text(received[0])
    assert f"District: {DISTRICT}" in text
    assert "Flow: daily-sync" in text
    assert "Status: held" in text
    assert "more than the threshold" in text
    assert "students: 15 archived" in text
    assert f"Store run: {result.run_id}" in text
    assert_no_student_data(text, folder)


def test_failed_run_alerts_once(store_url, tmp_path, receiver):
    folder = roster(tmp_path)
    make_district_from(folder)
    run_sync(DISTRICT)
    (folder / "users.csv").write_text(
        (folder / "users.csv").read_text().splitlines()[0] + "\n"
    )

    assert run_sync(DISTRICT).status == "failed"

    received = receiver.wait_for(1)
    assert len(received) == 1
    assert "Status: failed" in alert_text(received[0])
    assert received[0].body["type"] == "failure"


def test_suspended_run_alerts_once_per_run(store_url, tmp_path, receiver):
    folder = roster(tmp_path)
    manager = teachers(folder)[0]
    make_district_from(folder, data_manager_id=manager)
    run_sync(DISTRICT)
    datasets.remove_oneroster_users(folder, {manager})

    run_sync(DISTRICT)
    run_sync(DISTRICT)

    received = receiver.wait_for(2)
    assert len(received) == 2
    assert all("Status: suspended" in alert_text(r) for r in received)
    assert_no_student_data(alert_text(received[0]), folder)


def test_completed_run_sends_no_alert(store_url, tmp_path, receiver):
    make_district_from(roster(tmp_path))

    run_sync(DISTRICT)

    assert receiver.wait_for(1, timeout=1) == []


def test_contract_ending_is_announced_once(store_url, tmp_path, receiver):
    make_district_from(roster(tmp_path), contract_end=date.today() + timedelta(days=9))

    run_sync(DISTRICT)
    run_sync(DISTRICT)

    received = receiver.wait_for(2, timeout=2)
    assert len(received) == 1
    assert "Status: contract-ending" in alert_text(received[0])


def test_unreachable_alert_destination_keeps_the_result(
    store_url, tmp_path, monkeypatch
):
    from tests.alert_receiver import closed_loopback_port

    monkeypatch.setenv(
        "ROSTERSYNC_ALERT_URLS", f"json://127.0.0.1:{closed_loopback_port()}/x"
    )
    get_settings.cache_clear()
    folder = roster(tmp_path)
    make_district_from(folder)
    run_sync(DISTRICT)
    datasets.remove_oneroster_users(folder, set(students(folder)[:15]))

    assert run_sync(DISTRICT).status == "held"
